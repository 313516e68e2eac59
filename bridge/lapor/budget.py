"""A request budget: a thread-safe token bucket that paces calls to LAPOR!.

LAPOR! publishes no rate limit, so the bridge keeps itself to a configured rate
(``settings.lapor.requests_per_second``) and still honours 429/Retry-After on top.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RequestBudget:
    """Token bucket of ``rate_per_second`` tokens a second, holding at most
    ``max(1, rate_per_second)`` (the burst).

    :meth:`acquire` takes one token, sleeping until it is due. A caller that finds the
    bucket empty *reserves* its token (the balance goes negative) and sleeps outside the
    lock, so concurrent callers queue in order without spinning and the lock is never held
    across a sleep. One budget may be shared by several clients: they then share the rate.
    """

    def __init__(
        self,
        rate_per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate_per_second > 0:
            raise ValueError(f"rate_per_second must be positive, got {rate_per_second!r}")
        self.rate = float(rate_per_second)
        self.burst = max(1.0, self.rate)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._last = clock()
        self.acquired = 0
        self.waited_seconds = 0.0

    def acquire(self) -> float:
        """Take one token; return how long this call slept for it (0.0 if none)."""
        with self._lock:
            now = self._clock()
            # A clock that steps back (a fake clock in tests, or a broken one) must not
            # drain the bucket.
            elapsed = max(0.0, now - self._last)
            self._last = max(self._last, now)
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._tokens -= 1.0
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
            self.acquired += 1
            self.waited_seconds += wait
        if wait > 0:
            self._sleep(wait)
        return wait

    def drain(self) -> None:
        """Empty the bucket: the next call waits a full interval, as if the burst had just
        been spent (a worker taking a body over from another one that may have spent it)."""
        with self._lock:
            now = self._clock()
            self._last = max(self._last, now)
            self._tokens = min(self._tokens, 0.0)

    def __repr__(self) -> str:
        return f"RequestBudget(rate_per_second={self.rate!r})"
