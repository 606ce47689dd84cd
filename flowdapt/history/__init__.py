"""Run history: resources, runs, stage attempts and trigger firings in SQL (DuckDB, SQLite, PostgreSQL)."""

from flowdapt.history.errors import HistoryError, SchemaVersionError
from flowdapt.history.models import RunQuery
from flowdapt.history.recorder import TRIGGER_FIRED
from flowdapt.history.store import HistoryStore, open_store

__all__ = ["HistoryStore", "open_store", "RunQuery", "HistoryError", "SchemaVersionError", "TRIGGER_FIRED"]
