"""argon2 at its smallest cost in the test processes.

Each sign-in verifies an argon2 hash, and the product's parameters (64 MiB, three passes,
four lanes) cost ~145 ms of CPU per check: the web tests sign people in (and fail to)
hundreds of times, which alone took tens of seconds of the suite's CPU. The tests check who
may sign in and what the limiter does, never the hash's strength, so the test processes
hash with the cheapest parameters argon2 allows. Processes the tests start (``lapor-bridge
web``, ``run``) keep the product's; a hash of either kind verifies in both, since argon2
stores its parameters in the hash.
"""

from __future__ import annotations

from argon2 import PasswordHasher

#: Use this wherever a test hashes a password itself, so that signing in does not rehash.
TEST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def cheap_password_hashing() -> None:
    """Swap the accounts' hasher (and the dummy hash checked for unknown names, which must
    cost what a real check costs) for :data:`TEST_HASHER`."""
    from bridge.services import accounts

    accounts._hasher = TEST_HASHER
    accounts._DUMMY_HASH = TEST_HASHER.hash("lapor-bridge-no-such-user")
