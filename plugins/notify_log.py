"""Reference plugin: a notification channel that writes one log line per notification.

Useful as a first channel (nothing to set up) and as an audit trail beside e-mail. The
line holds the kind, the case's register number, the recipients and the subject -- never
the body's details, and never a reporter's identity (notifications carry none).

Configuration (all optional)::

    [plugins]
    enable = ["notify_log"]

    [notify_log]
    logger = "bridge.notifications"
    level = "INFO"
    kinds = []            # only these kinds; empty: all
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bridge.domain import Notification
from bridge.hookspecs import declare_section, hookimpl

__version__ = "1.0"


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    logger: str = "bridge.notifications"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    kinds: list[str] = Field(default_factory=list)


config_section = declare_section("notify_log", Config)


@hookimpl
def notify(notification: Notification, config: Config) -> None:
    if config.kinds and notification.kind not in config.kinds:
        return
    logging.getLogger(config.logger).log(
        logging.getLevelName(config.level),
        "notification %s case=%s to=%s: %s",
        notification.kind,
        notification.register_no or notification.case_id or "-",
        ",".join(notification.recipients) or "-",
        notification.subject,
    )
