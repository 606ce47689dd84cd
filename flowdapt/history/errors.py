"""Errors of the run-history store."""

from __future__ import annotations

from flowdapt.errors import FlowdaptError


class HistoryError(FlowdaptError):
    """The history database cannot be opened or used (the message says why and what to do)."""


class DatabaseLockedError(HistoryError):
    """Another process holds the (DuckDB) database file."""


class DatabaseUnreachableError(HistoryError):
    """The database went away (a restart, a failover); the history waits for it to come back."""


class SchemaVersionError(HistoryError):
    """The database schema is not the version this flowdapt needs."""

    def __init__(self, found: int, needed: int) -> None:
        super().__init__(found, needed)
        self.found = found
        self.needed = needed

    def __str__(self) -> str:
        if self.found > self.needed:
            return (f"history database schema is version {self.found}, newer than this flowdapt "
                    f"understands ({self.needed}): upgrade flowdapt")
        return (f"history database schema is version {self.found}, this flowdapt needs {self.needed}: "
                f"run `flowdapt db upgrade`")
