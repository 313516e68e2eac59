"""The ``sync_cursors`` rows that say when each sync stream last succeeded or failed.

The pull keeps its own row (its cursor, ``INBOX``); the push has row :data:`PUSH_STREAM`.
``sync --once`` and the daemon's push job both record through :func:`record_stream`, so
``lapor-bridge status`` reads one record whoever pushed.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from bridge.store.models import SyncCursor, utcnow

#: The sync_cursors row where the push records its last successful run.
PUSH_STREAM = "push"


def record_stream(sessions: sessionmaker[Session], stream: str, error: str | None = None
                  ) -> None:
    """Mark a success (``error=None``) or a failure of ``stream`` in ``sync_cursors``."""
    now = utcnow()
    with sessions() as session, session.begin():
        row = session.get(SyncCursor, stream)
        if row is None:
            row = SyncCursor(stream=stream)
            session.add(row)
        if error is None:
            row.last_success_at = now
            row.last_error = None
        else:
            row.last_error = error[:2000]
            row.last_error_at = now
