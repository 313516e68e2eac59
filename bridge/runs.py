"""What every run of a sync step (pull, tracking, push, internal forwards) reports: its
figures as plain values, for ``sync --json``, the daemon's job records and the bench."""

from __future__ import annotations

from dataclasses import dataclass, fields
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


__all__ = ["NOT_IN_JSON", "RunRecord"]
