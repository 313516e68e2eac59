"""``quarantine retry`` with the deployment's parts: the client's validation of a listing
item, the pull's upsert, then triage and plugin events for what arrived (as a sync does)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from bridge.lapor.models import RejectedItem, RemoteComplaint
from bridge.runtime import Runtime
from bridge.services.triage import triage_new_cases
from bridge.sync.pull import INBOX, PullResult
from bridge.sync.quarantine import RetryResult, retry


def retry_quarantined(rt: Runtime, ids: Sequence[int] | None = None
                      ) -> tuple[RetryResult, PullResult]:
    """Retry ``ids`` (every waiting item when None); returns the retry's outcome and what
    the store did with the items that passed (created, changed, unchanged, stale)."""

    stored = PullResult(stream=INBOX)
    with rt.client() as client:
        puller = rt.puller(client)

        def parse(raw: Any) -> tuple[RemoteComplaint | None, RejectedItem | None]:
            return client.parse_item(raw, RemoteComplaint)

        def store(session: Session, items: list[RemoteComplaint],
                  sources: dict[str, Any]) -> None:
            puller.store(session, items, sources, stored)

        result = retry(rt.sessions, parse, store, ids, streams=(INBOX,))
    if stored.created_ids:
        triage_new_cases(rt, stored.created_ids)
    rt.dispatch_events()
    return result, stored


__all__ = ["retry_quarantined"]
