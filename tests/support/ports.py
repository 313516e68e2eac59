"""Loopback ports for tests that run beside other test processes (pytest-xdist workers).

Servers in tests bind port 0 and report the port they got. Two things cannot: a child
process whose command takes a port number (it gets :func:`free_port`, whose tiny race is
with ports handed out by the kernel, never with a fixed number another worker uses too),
and a test of "connection refused", which gets :func:`refused_port`: a port held bound for
the whole test but never listening, so nobody else can take it and every connect is refused.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


def free_port() -> int:
    """A port the kernel just handed out and released (for a child process to bind)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that refuses every connection while the block runs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, not listening: connects get ECONNREFUSED
        yield int(s.getsockname()[1])
