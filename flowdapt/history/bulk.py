"""Writing many rows at once, by primary key (insert or replace), the fast way for each database.

DuckDB gets one Arrow table per batch and a single ``INSERT OR REPLACE ... SELECT`` (its
``executemany`` runs row by row and is a trap); SQLite and PostgreSQL get one ``executemany``
of an ``INSERT ... ON CONFLICT DO UPDATE``, which their drivers batch.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Sequence

from sqlalchemy import Connection, Table
from sqlalchemy.sql.sqltypes import Boolean, DateTime, Float, Integer

from flowdapt.history.orm import JsonText, dump_json


def upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (complete rows) into ``table``, replacing rows with the same primary key."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "duckdb":
        _upsert_arrow(conn, table, rows)
        return
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    statement = insert(table)
    keys = [column.name for column in table.primary_key.columns]
    statement = statement.on_conflict_do_update(
        index_elements=keys,
        set_={column.name: statement.excluded[column.name] for column in table.columns if column.name not in keys},
    )
    conn.execute(statement, list(rows))


def _arrow_type(column: Any) -> Any:
    import pyarrow as pa

    kind = column.type
    if isinstance(kind, DateTime):
        return pa.timestamp("us")
    if isinstance(kind, Boolean):
        return pa.bool_()
    if isinstance(kind, Integer):
        return pa.int64()
    if isinstance(kind, Float):
        return pa.float64()
    return pa.string()


def _upsert_arrow(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    import pyarrow as pa  # only DuckDB needs Arrow

    names = [column.name for column in table.columns]
    json_columns = {column.name for column in table.columns if isinstance(column.type, JsonText)}
    arrays = []
    for column in table.columns:
        name = column.name
        values = [row[name] for row in rows]
        if name in json_columns:
            values = [None if value is None else dump_json(value) for value in values]
        arrays.append(pa.array(values, type=_arrow_type(column)))
    batch = pa.Table.from_arrays(arrays, names=names)
    view = f"flowdapt_batch_{table.name}"
    duck = conn.connection.driver_connection
    duck.register(view, batch)
    try:
        columns = ", ".join(f'"{name}"' for name in names)
        conn.exec_driver_sql(f'INSERT OR REPLACE INTO "{table.name}" ({columns}) SELECT {columns} FROM {view}')
    finally:
        duck.unregister(view)


def naive_utc(value: datetime | None) -> datetime | None:
    """A timestamp as stored: naive, in UTC."""
    if value is None or value.tzinfo is None:
        return value
    if value.tzinfo is timezone.utc:  # what the engine records: no conversion needed
        return value.replace(tzinfo=None)
    return value.astimezone(timezone.utc).replace(tzinfo=None)
