"""The project's one base error.

Every error the bridge raises on purpose derives from :class:`BridgeError`, so that a
caller (a plugin, a script, the command line) can tell "the bridge refused or failed, and
says why in one line" from a bug. Errors that are also a kind of built-in error (a bad
value, a missing row) derive from that too, so ``except ValueError`` keeps working.
"""

from __future__ import annotations

import os


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose; its message is one line."""


class ConfigError(BridgeError):
    """A configuration problem, with a one-line message naming file, key and expectation.

    Re-exported by :mod:`bridge.config`, where it is usually imported from."""

    def __init__(self, file: str | os.PathLike[str], key: str, problem: str) -> None:
        self.file = str(file)
        self.key = key
        self.problem = problem
        super().__init__(f"{self.file}: {key}: {problem}")


__all__ = ["BridgeError", "ConfigError"]
