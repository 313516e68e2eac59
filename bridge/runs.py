"""What every run of a sync step (pull, tracking, push, internal forwards) reports: its
figures as plain values, for ``sync --json``, the daemon's job records and the bench."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

#: Field metadata of what a run keeps for its caller but leaves out of its JSON (the ids
#: it touched, the errors its summary already counts).
NOT_IN_JSON = {"json": False}


@dataclass
class RunRecord:
    """The base of a run's result: its fields, in their order, are its JSON."""

    def as_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.metadata.get("json", True)}


@dataclass
class Deliveries(RunRecord):
    """The counts of a run that works through an outbox (to LAPOR!, to another body of the
    deployment): rows delivered, rows left to retry, rows given up on, and why the run
    stopped early (credentials refused)."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)


__all__ = ["NOT_IN_JSON", "Deliveries", "RunRecord"]
