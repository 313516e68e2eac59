"""The daemon's log: plain or JSON lines on stderr, with every secret scrubbed.

The LAPOR! client already keeps credentials out of what it logs; the formatter here
scrubs them again from every finished line (message, extra fields and traceback), so a
secret that reaches a log call by any other road still never reaches the log.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from pydantic import SecretStr

from bridge.config import Settings
from bridge.daemon.settings import LoggingSettings
from bridge.redact import Scrubber

#: LogRecord attributes that are not "extra" fields.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class PlainFormatter(logging.Formatter):
    def __init__(self, scrub: Scrubber) -> None:
        super().__init__(PLAIN_FORMAT)
        self.scrub = scrub

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        # UTC with its zone, whatever the server's local time is.
        moment = datetime.fromtimestamp(record.created, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def format(self, record: logging.LogRecord) -> str:
        return self.scrub(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, extra fields, exc."""

    def __init__(self, scrub: Scrubber) -> None:
        super().__init__()
        self.scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            data.setdefault(key, value)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exc"] = record.exc_text
        return self.scrub(json.dumps(data, ensure_ascii=False, default=str))


def secrets_of(settings: Settings) -> list[SecretStr | None]:
    s = settings.secrets
    return [s.bearer, s.token, s.database_password]


def configure(settings: Settings, cfg: LoggingSettings, stream: IO[str] | None = None
              ) -> logging.Handler:
    """Replace the root handlers with one that writes ``cfg``'s format to ``stream``."""
    scrub = Scrubber(secrets_of(settings))
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(scrub) if cfg.format == "json" else PlainFormatter(scrub))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    level = getattr(logging, cfg.level)
    root.setLevel(level)
    quiet(level)
    return handler


def quiet(level: int) -> None:
    """Keep the log to one line per job run at INFO.

    APScheduler's own lines ("Running job...", exceptions) are replaced by the daemon's
    job lines and event listeners; the pull and push summaries by the job line, which
    carries the same counts. Their warnings and errors still show.
    """
    floor = max(level, logging.WARNING)
    logging.getLogger("apscheduler").setLevel(max(level, logging.ERROR))
    # Job errors and misfires are reported by the daemon's listeners instead.
    logging.getLogger("apscheduler.executors").setLevel(logging.CRITICAL)
    logging.getLogger("apscheduler.scheduler").setLevel(logging.CRITICAL)
    for name in ("bridge.sync.pull", "bridge.sync.push", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(floor if level > logging.DEBUG else level)


__all__ = ["JsonFormatter", "PlainFormatter", "Scrubber", "configure", "quiet", "secrets_of"]
