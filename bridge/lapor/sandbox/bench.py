"""How fast the sandbox seeds and serves: ``python -m bridge.lapor.sandbox bench``.

Prints figures; asserts nothing about time (the machine decides those).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from bridge.lapor.sandbox.server import SandboxServer


@dataclass
class BenchResult:
    reports: int
    seed_s: float
    page_size: int
    pages: int
    items: int
    first_pass_s: float
    second_pass_s: float

    def lines(self) -> list[str]:
        def rate(seconds: float) -> str:
            return f"{self.items / seconds:,.0f} items/s ({self.pages / seconds:,.1f} pages/s)"

        return [
            f"seeded {self.reports:,} reports in {self.seed_s:.2f} s",
            f"paged the inbox with page_size {self.page_size}: {self.items:,} items, "
            f"{self.pages} pages",
            f"  first pass  (JSON of each report encoded): {self.first_pass_s:.2f} s, "
            f"{rate(self.first_pass_s)}",
            f"  second pass (cached JSON):                 {self.second_pass_s:.2f} s, "
            f"{rate(self.second_pass_s)}",
        ]


def _page_through(client: httpx.Client, path: str, page_size: int) -> tuple[int, int]:
    """Follow next_page_url to the end, parsing every page as a client would."""
    url: str | None = path
    params: dict[str, int] | None = {"page_size": page_size}
    pages = items = 0
    while url:
        response = client.get(url, params=params)
        response.raise_for_status()
        results = response.json()["results"]
        items += len(results["data"])
        pages += 1
        url = results["next_page_url"]
        params = None
    return pages, items


def run(reports: int = 100_000, page_size: int = 1000, seed: int = 0,
        out: Callable[[str], None] = print) -> BenchResult:
    started = time.perf_counter()
    server = SandboxServer(seed, reports)
    seed_s = time.perf_counter() - started
    with server, httpx.Client(headers=server.auth_headers(), timeout=60) as client:
        path = server.url + "/complaints/inbox"
        t0 = time.perf_counter()
        pages, items = _page_through(client, path, page_size)
        t1 = time.perf_counter()
        _page_through(client, path, page_size)
        t2 = time.perf_counter()
    result = BenchResult(reports, seed_s, page_size, pages, items, t1 - t0, t2 - t1)
    for line in result.lines():
        out(line)
    return result
