"""The scheduled sync daemon (``lapor-bridge run``) and its health (``lapor-bridge status``).

- :mod:`bridge.daemon.settings`: the ``[daemon]`` and ``[logging]`` sections.
- :mod:`bridge.daemon.scheduler`: :class:`~bridge.daemon.scheduler.Daemon` (APScheduler).
- :mod:`bridge.daemon.jobs`: the job bodies (pull, push, events, deadlines, refresh,
  reconcile, recaps).
- :mod:`bridge.daemon.lease`: one active syncer per database.
- :mod:`bridge.daemon.status`: the ``daemon_status`` heartbeat table.
- :mod:`bridge.daemon.health`: status, ``/healthz`` and ``/metrics``.
- :mod:`bridge.daemon.logging_setup`: plain or JSON logs, secrets scrubbed.
"""
