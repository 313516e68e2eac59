"""The failed sign-in limiter of the staff page.

It lives in memory: a restart forgets failures, and two page processes do not share
counts. That is acceptable for one page process per deployment (the supported set-up);
the window is short and argon2 makes each guess slow anyway. The accounts themselves are
in :mod:`bridge.services.accounts`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class LoginLimiter:
    """Failed sign-ins per account and per client address, in a sliding window, in memory.

    - An account name with ``max_failures`` failures in the last ``window`` seconds (from
      any address) is refused until the oldest leaves the window, even with the right
      password: that is what stops guessing one account's password.
    - An address with ``4 * max_failures`` failures (any names) is *over budget*: every
      failure from it is answered "too many attempts", yet a right password for an account
      that is not itself refused still signs in. So failures under made-up names from one
      address (a shared office NAT) never lock a real user out, and the answer to a wrong
      password does not tell whether the name exists.
    Made-up names are counted like real ones (under their own key), for the same reason.
    """

    #: Keys kept at most; the stalest are forgotten first.
    MAX_KEYS = 10_000

    def __init__(self, max_failures: int, window: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    @staticmethod
    def _account(username: str) -> str:
        return f"u:{username.strip().lower()}"

    @staticmethod
    def _address(address: str) -> str:
        return f"a:{address}"

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def _wait(self, key: str, limit: int) -> float | None:
        now = self.clock()
        with self._lock:
            times = self._recent(key, now)
            if len(times) >= limit:
                return times[len(times) - limit] + self.window - now
        return None

    def retry_after(self, username: str) -> float | None:
        """Seconds until the account may try again, or None if it may now."""
        return self._wait(self._account(username), self.max_failures)

    def address_over_budget(self, address: str) -> bool:
        return self._wait(self._address(address), 4 * self.max_failures) is not None

    def failed(self, username: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            for key in (self._account(username), self._address(address)):
                times = self._failures.setdefault(key, deque())
                times.append(now)
                self._failures.move_to_end(key)
            while len(self._failures) > self.MAX_KEYS:
                self._failures.popitem(last=False)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(self._account(username), None)
