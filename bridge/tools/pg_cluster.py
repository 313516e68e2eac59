"""A throwaway PostgreSQL cluster for tests and benchmarks (initdb + pg_ctl, loopback only).

Each test process (each pytest-xdist worker) starts its own cluster on a free port, so
workers never share a database. Tests that need a migrated schema copy a template database
(``CREATE DATABASE ... TEMPLATE``, a file copy inside the server) instead of running every
migration again.

PostgreSQL refuses to run as root, so when we are root the cluster is created and run as
an unprivileged system user (``postgres`` when it exists, else ``nobody``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bridge.errors import BridgeError


class NoPostgres(BridgeError, RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
            return user
        except KeyError:
            continue
    raise NoPostgres("running as root and no unprivileged user (postgres/nobody) to run it")


@dataclass
class PgCluster:
    directory: Path
    port: int
    user: str | None
    pg_ctl: str
    owns_directory: bool = True

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new database ``name`` (dropped first if it exists), empty or a copy of ``template``.

        The template must have no open connection (dispose its engine first).
        """
        # Lazy: only the PostgreSQL tests and the bench need the driver.
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            copy_of = f' TEMPLATE "{template}"' if template else ""
            if template and conn.info.server_version >= 150000:
                # A file copy of a small template is about twice as fast as the default
                # (WAL_LOG, block by block through the WAL) on a cluster without fsync.
                copy_of += " STRATEGY FILE_COPY"
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"{copy_of}')
        return self.url_for(name)

    def stop(self) -> None:
        _cmd([self.pg_ctl, "-D", str(self.directory / "data"), "-m", "immediate", "stop"],
             self.user, check=False)
        if self.owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)


def _cmd(args: list[str], user: str | None, check: bool = True) -> subprocess.CompletedProcess[str]:
    if user is not None:
        args = ["runuser", "-u", user, "--", *args]
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=120)


def start_cluster(base: Path | None = None) -> PgCluster:
    """initdb a fresh cluster in a temporary directory and start it on a free port."""
    initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise NoPostgres("no PostgreSQL server binaries (initdb/pg_ctl) on this machine")
    user = _run_as()
    directory = Path(tempfile.mkdtemp(prefix="lapor-bridge-pg-", dir=base))
    data = directory / "data"
    if user is not None:
        pw = pwd.getpwnam(user)
        os.chmod(directory, 0o755)
        os.chown(directory, pw.pw_uid, pw.pw_gid)
    try:
        _cmd([initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync",
              "-E", "UTF8", "--locale=C"], user)
        port = _free_port()
        opts = (f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        _cmd([pg_ctl, "-D", str(data), "-o", opts, "-l", str(directory / "log"), "-w",
              "-t", "60", "start"], user)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(directory, ignore_errors=True)
        raise NoPostgres(f"could not start PostgreSQL: {exc.stderr.strip()[:500]}") from exc
    return PgCluster(directory=directory, port=port, user=user, pg_ctl=pg_ctl)
