"""Database URLs for the history contract tests: DuckDB and SQLite files, and a real PostgreSQL.

The PostgreSQL server is started once per session from Debian's binaries, as the ``postgres`` user
when the tests run as root (PostgreSQL refuses root). Where the binaries are absent the PostgreSQL
tests are skipped with the reason, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

import pytest

BACKENDS = ("duckdb", "sqlite", "postgresql")


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("pg_ctl")
    return Path(which).parent if which else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", "postgres", "--", *args]


class PostgresServer:
    """A throw-away PostgreSQL server from Debian's binaries; ``url`` is its ``postgresql+psycopg://`` URL
    (no database part). It can be restarted under its clients."""

    def __init__(self) -> None:
        bindir = _pg_bin()
        if bindir is None:
            raise FileNotFoundError("PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql")
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="flowdapt-pg-"))
        self.data = self.root / "data"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self.port = _free_port()
        subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                                     "-E", "UTF8", "--no-sync"]), check=True, capture_output=True)
        self.start()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"

    def _ctl(self, *args: str, check: bool = True) -> None:
        subprocess.run(_as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.data), *args]), check=check,
                       capture_output=True)

    def start(self) -> None:
        """Start the server (nothing if it runs)."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        running = subprocess.run(_as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.data), "status"]),
                                 capture_output=True).returncode == 0
        if not running:
            self._ctl("-o", options, "-l", str(self.root / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop", check=False)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A throw-away PostgreSQL server, removed afterwards."""
    server = PostgresServer()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def flowdapt_postgres_server():
    """``postgresql+psycopg://...`` of a PostgreSQL server for this session (stopped at the end)."""
    if _pg_bin() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("PostgreSQL binaries (initdb, pg_ctl) not found; CI must install Debian's postgresql")
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    with postgres_server() as server:
        yield server.url


def new_postgres_database(server: str) -> str:
    """Create an empty database on the server; returns its URL."""
    import psycopg

    name = f"flowdapt_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{server.replace('postgresql+psycopg', 'postgresql')}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


def database_url(backend: str, tmp_path: Path, request) -> str:
    """A fresh, empty database of ``backend`` for one test."""
    if backend == "duckdb":
        return f"duckdb:///{tmp_path / 'history.duckdb'}"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'history.db'}"
    return new_postgres_database(request.getfixturevalue("flowdapt_postgres_server"))
