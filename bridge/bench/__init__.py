"""How fast the bridge pulls, syncs and pushes, against the sandbox.

The command is :mod:`bridge.cli.bench`; the work is in :mod:`bridge.bench.run`
(orchestration), :mod:`bridge.bench.phases` (one phase per process) and
:mod:`bridge.bench.sandbox` (the sandbox in its own process).
"""
