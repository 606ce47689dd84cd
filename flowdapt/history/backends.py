"""History backends: how an engine is made for each kind of SQL database, by the URL's backend name.

Built in: ``duckdb`` (the default, embedded), ``sqlite`` and ``postgresql``. A plugin adds one through
the ``flowdapt.history_backends`` entry-point group (a :class:`HistoryBackend` class or instance named
after the SQLAlchemy backend it serves); its SQLAlchemy dialect is installed as SQLAlchemy expects.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import URL

from flowdapt.history.sqlfuncs import install_sqlite_functions
from flowdapt.registry import Registry, instance_of_class


class HistoryBackend:
    """The engine options and connection set-up of one SQL backend (the base adds none)."""

    def url(self, url: URL) -> URL:
        """The URL to connect with (e.g. with the driver chosen)."""
        return url

    def engine_options(self, url: URL) -> dict[str, Any]:
        """Keyword arguments of ``sqlalchemy.create_engine``."""
        return {}

    def connected(self, engine: Engine) -> None:
        """Set up ``engine`` once it is made (e.g. listen to ``connect`` events)."""


class SQLiteBackend(HistoryBackend):
    def engine_options(self, url: URL) -> dict[str, Any]:
        return {"connect_args": {"timeout": 30}}

    def connected(self, engine: Engine) -> None:
        event.listen(engine, "connect", install_sqlite_functions)
        event.listen(engine, "connect", _sqlite_wal)


class PostgreSQLBackend(HistoryBackend):
    def url(self, url: URL) -> URL:
        return url.set(drivername="postgresql+psycopg") if url.drivername == "postgresql" else url

    def engine_options(self, url: URL) -> dict[str, Any]:
        return {"pool_pre_ping": True}  # a connection from before a restart is replaced, not used and failed


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets other processes read (flowctl get runs) while a run is being recorded.
    dbapi_connection.execute("PRAGMA journal_mode=WAL")


HISTORY_BACKENDS: Registry[HistoryBackend] = Registry("history backend", "flowdapt.history_backends",
                                                      adapt=instance_of_class)
HISTORY_BACKENDS.register("duckdb", HistoryBackend())
HISTORY_BACKENDS.register("sqlite", SQLiteBackend())
HISTORY_BACKENDS.register("postgresql", PostgreSQLBackend())
