"""The project's one base error.

Every error the bridge raises on purpose derives from :class:`BridgeError`, so that a
caller (a plugin, a script, the command line) can tell "the bridge refused or failed, and
says why in one line" from a bug. Errors that are also a kind of built-in error (a bad
value, a missing row) derive from that too, so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose; its message is one line."""


__all__ = ["BridgeError"]
