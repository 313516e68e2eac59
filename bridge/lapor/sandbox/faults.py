"""Fault switches of the sandbox and the seeded dice that apply them.

Faults apply to LAPOR! endpoints only, never to ``/_sandbox/``. Every decision comes from
one RNG seeded by :attr:`Faults.seed` (reset whenever the faults are set), so a test that
makes the same requests in the same order sees the same faults.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from email.utils import formatdate
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bridge.config import Share


class Faults(BaseModel):
    """What goes wrong, and how often. All rates are fractions of requests (0..1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Added to every LAPOR! request, plus a uniform 0..jitter_ms.
    latency_ms: float = Field(default=0.0, ge=0)
    jitter_ms: float = Field(default=0.0, ge=0)
    #: Answered 500, 502 (HTML, as a gateway does) or 503 (with Retry-After) before anything
    #: else happens: the request is never applied.
    error_rate: Share = 0.0
    #: 429 bursts: after every ``throttle_every`` requests, the next ``throttle_burst``
    #: requests get 429. Retry-After alternates between seconds and an HTTP date. 0 = off.
    throttle_every: int = Field(default=0, ge=0)
    throttle_burst: int = Field(default=3, ge=1)
    #: Seconds given in Retry-After (429 and 503).
    retry_after_s: int = Field(default=1, ge=0)
    #: Response headers with a Content-Length, then the connection closes without the
    #: body. For POSTs half of the drops happen after the write was applied.
    drop_rate: Share = 0.0
    #: POSTs: the write is applied, then the answer is a 500 -- or, when
    #: ``slow_after_apply_s`` > 0, half of the time the answer comes that late instead.
    apply_then_fail_rate: Share = 0.0
    slow_after_apply_s: float = Field(default=0.0, ge=0)
    #: Share of inbox items replaced by a malformed copy (missing id, wrong types,
    #: huge content, bad date).
    malformed_rate: Share = 0.0
    #: Chance, after an inbox page that has more pages after it, that one report moves to
    #: the end (its updated_at is bumped). ``change_target`` picks it from the pages still
    #: to come ("later") or from the page just served ("served", which makes offset paging
    #: skip an item).
    change_between_pages: Share = 0.0
    change_target: Literal["later", "served"] = "later"
    #: Seed of the fault dice.
    seed: int = 0


MALFORMED_KINDS = ("missing_id", "wrong_types", "huge_content", "bad_date")
#: Longer than the client's default ``max_content_chars`` (100,000).
HUGE_CONTENT_CHARS = 150_000


class FaultInjector:
    """Thread-safe dice and counters for one sandbox."""

    def __init__(self, faults: Faults) -> None:
        self._lock = threading.Lock()
        self.faults = faults
        self._rng = random.Random(faults.seed)
        self._throttle_seen = 0
        self._throttled = 0
        self.counters: Counter[str] = Counter()

    def set(self, faults: Faults) -> None:
        with self._lock:
            self.faults = faults
            self._rng = random.Random(faults.seed)
            self._throttle_seen = 0
            self._throttled = 0

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self.counters.items()))

    def reset_counters(self) -> None:
        with self._lock:
            self.counters.clear()

    def _roll(self, rate: float) -> bool:
        # Caller holds the lock.
        if rate <= 0:
            return False
        return rate >= 1 or self._rng.random() < rate

    def roll(self, rate: float, counter: str | None = None) -> bool:
        with self._lock:
            hit = self._roll(rate)
            if hit and counter:
                self.counters[counter] += 1
            return hit

    def randrange(self, start: int, stop: int) -> int:
        with self._lock:
            return self._rng.randrange(start, stop)

    def choice(self, options: tuple[str, ...]) -> str:
        with self._lock:
            return options[self._rng.randrange(len(options))]

    def latency(self) -> float:
        """Seconds to wait before answering."""
        f = self.faults
        if f.latency_ms <= 0 and f.jitter_ms <= 0:
            return 0.0
        with self._lock:
            self.counters["latency"] += 1
            return (f.latency_ms + self._rng.random() * f.jitter_ms) / 1000.0

    def error(self) -> int | None:
        """A 5xx status to answer with before doing anything, or None."""
        with self._lock:
            if not self._roll(self.faults.error_rate):
                return None
            status = (500, 502, 503)[self._rng.randrange(3)]
            self.counters[f"error_{status}"] += 1
            return status

    def throttle(self) -> str | None:
        """The Retry-After value when this request falls in a 429 burst, else None."""
        with self._lock:
            f = self.faults
            if f.throttle_every <= 0:
                return None
            position = self._throttle_seen % (f.throttle_every + f.throttle_burst)
            self._throttle_seen += 1
            if position < f.throttle_every:
                return None
            self._throttled += 1
            if self._throttled % 2:
                self.counters["throttle_429_seconds"] += 1
                return str(f.retry_after_s)
            self.counters["throttle_429_http_date"] += 1
            # Rounded up so that a client honouring the date waits at least retry_after_s.
            return formatdate(math.ceil(time.time()) + f.retry_after_s, usegmt=True)

    def drop(self, write: bool) -> Literal["before", "after"] | None:
        """Whether to drop the connection, and for a POST whether after applying it."""
        with self._lock:
            if not self._roll(self.faults.drop_rate):
                return None
            if write and self._rng.random() < 0.5:
                self.counters["drop_after_apply"] += 1
                return "after"
            self.counters["drop"] += 1
            return "before"

    def after_apply(self) -> Literal["fail", "slow"] | None:
        """For an applied POST: answer 500, answer too late, or answer normally."""
        with self._lock:
            f = self.faults
            if not self._roll(f.apply_then_fail_rate):
                return None
            if f.slow_after_apply_s > 0 and self._rng.random() < 0.5:
                self.counters["slow_after_apply"] += 1
                return "slow"
            self.counters["apply_then_fail_500"] += 1
            return "fail"

    def malform(self, item: dict[str, Any]) -> dict[str, Any]:
        """A broken copy of an inbox item (``item`` is a copy the caller may spoil)."""
        kind = self.choice(MALFORMED_KINDS)
        self.count(f"malformed_{kind}")
        if kind == "missing_id":
            item.pop("id", None)
        elif kind == "wrong_types":
            item["is_anonymous"] = "tidak"
            item["status_code"] = None
            item["attachments"] = "lampiran.jpg"
        elif kind == "huge_content":
            text = str(item.get("content") or "isi laporan ") + " "
            item["content"] = (text * (HUGE_CONTENT_CHARS // len(text) + 1))[:HUGE_CONTENT_CHARS]
        else:
            item["updated_at"] = "31-02-2024 25:61:00"
        return item
