"""Notifications queued by staff actions inside their own transaction (the class's team
told it has a case, the authority a class needs told of the escalation), rendered as the
sweep and triage render theirs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from bridge.domain import snapshot_from_row
from bridge.services.actions import NoticeHook
from bridge.services.triage import notify, renderer_for
from bridge.store.models import Case

if TYPE_CHECKING:
    from bridge.runtime import Runtime


def action_notices(rt: Runtime) -> NoticeHook:
    """The :data:`~bridge.services.actions.NoticeHook` of a deployment: renders with its
    renderer (nothing is queued when no channel plugin would deliver)."""

    def notice(session: Session, kind: str, case: Case, roles: list[str],
               context: dict[str, Any]) -> None:
        renderer = renderer_for(rt)
        notify(session, rt, renderer, kind, snapshot_from_row(case), roles, **context)

    return notice


__all__ = ["action_notices"]
