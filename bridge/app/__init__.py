"""The application layer: the sync cycle (pull, track, triage, push) and the quarantine
retry, run on a :class:`bridge.runtime.Runtime`.

They sit above the services and sync, which they drive, and below the faces (the command
line, the daemon, the staff page) that start them.
"""
