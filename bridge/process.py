"""Process-wide settings every bridge process applies once at start (the command line,
and the bench's phase processes so that they time what users run)."""

from __future__ import annotations

import atexit
import gc
from pathlib import Path

#: Net container allocations between two young-generation collections (CPython's
#: default is 700).
GC_GENERATION0 = 100_000


def tune_gc() -> None:
    """Collect garbage less often, not never.

    A sync allocates tens of thousands of short-lived containers per page of reports
    while the loaded modules, the ORM and the config stay alive. At CPython's default
    threshold the collector took about a fifth of the CPU of a first sync of 20,000
    reports (2,144 young, 195 middle and 17 full collections); at 100,000 it runs 72 young
    collections and no full one, for a few percent of the CPU and the same peak memory
    (what such a sync frees is acyclic and goes at once by reference counting).
    """
    gc.set_threshold(GC_GENERATION0, *gc.get_threshold()[1:])
    global _freeze_at_exit
    if not _freeze_at_exit:
        _freeze_at_exit = True
        atexit.register(gc.freeze)


#: Whether :func:`tune_gc` has registered :func:`gc.freeze` to run at exit (once per
#: process, however often a command runs in it).
#:
#: The interpreter's finalization runs full collections over everything still alive at
#: exit (the modules, the ORM's mappers, the config): 0.2 s of every command on this
#: project's machine, a twentieth of a 20,000-report ``sync --once``. Frozen, those
#: objects are left to the operating system, as Python leaves any object alive at exit
#: without a promise that its finalizer runs: by then the command has closed its store
#: and clients, the exit handlers registered before this one (logging's flush among
#: them) still run after it, and the interpreter flushes the standard streams itself.
_freeze_at_exit = False


def compile_bytecode(*extra: Path) -> bool:
    """Compile the bridge's and the reference plugins' modules (and ``extra`` folders) as
    pip does when it installs a package; False when some could not be written (a
    read-only install). Where bytecode is not written as modules load
    (``PYTHONDONTWRITEBYTECODE``, a source tree), every fresh process would otherwise
    compile them again: 0.2 s of a 20,000-report ``sync --once`` on this project's
    machine, and about 6 s of CPU per test worker."""
    # Lazy: every bridge process imports this module at start; only the bench and the
    # test suite compile.
    import compileall
    import importlib.util

    folders = [Path(spec.origin).parent for name in ("bridge", "lapor_bridge_plugins")
               if (spec := importlib.util.find_spec(name)) is not None and spec.origin]
    return all([compileall.compile_dir(str(folder), quiet=1) for folder in [*folders, *extra]])
