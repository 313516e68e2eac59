"""lapor-bridge: keeps a regency's complaint queue and SP4N-LAPOR! in step.

Plugin authors need only ``from bridge import hookimpl`` (see docs/plugins.md).
"""

from bridge.hookspecs import hookimpl

__all__ = ["hookimpl"]
