"""One pull of a runtime against its LAPOR!."""

from __future__ import annotations

from typing import Any


def pull(rt: Any) -> Any:
    with rt.client() as client:
        return rt.puller(client).run()
