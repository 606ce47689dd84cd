"""Writing many rows at once, by primary key (insert or replace), the fast way for each database.

Batches arrive column by column (:func:`upsert_columns`). DuckDB gets one Arrow table per batch
and a single ``INSERT OR REPLACE ... SELECT`` over it (its ``executemany`` runs row by row and is
a trap); Arrow converts aware timestamps to naive UTC itself. The conversion (:func:`to_arrow`)
and the insert (:func:`insert_arrow`) can run apart, so a writer converts one batch while the
database takes the one before. SQLite and PostgreSQL get one
``executemany`` of an ``INSERT ... ON CONFLICT DO UPDATE``, which their drivers batch.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from functools import cache
from typing import Any, Mapping, Sequence

from sqlalchemy import Connection, Table
from sqlalchemy.sql.sqltypes import Boolean, DateTime, Float, Integer

from flowdapt.history.orm import JsonText, dump_json

Columns = Mapping[str, Sequence[Any]]  # column name -> values, one per row, every column of the table


def upsert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (by column name; a column left out is NULL) into ``table``, replacing rows with the
    same primary key."""
    if rows:
        upsert_columns(conn, table, {column.name: [row.get(column.name) for row in rows] for column in table.columns})


def upsert_columns(conn: Connection, table: Table, columns: Columns, *, replace: bool = True) -> None:
    """Insert a batch given column by column into ``table``, replacing rows with the same primary key.

    Timestamps may be aware (stored as naive UTC); JSON columns take plain data or pydantic models.
    ``replace=False`` is a plain insert, for keys known to be new: it fails on an existing key, and
    on DuckDB costs about half as much per row as the replacing one.
    """
    if not columns[table.columns[0].name]:
        return
    dialect = conn.dialect.name
    if dialect == "duckdb":
        insert_arrow(conn, table, to_arrow(table, columns), replace=replace)
        return
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    statement = insert(table)
    if replace:
        keys = [column.name for column in table.primary_key.columns]
        statement = statement.on_conflict_do_update(
            index_elements=keys,
            set_={column.name: statement.excluded[column.name] for column in table.columns
                  if column.name not in keys},
        )
    names = [column.name for column in table.columns]
    timestamps = _columns_of_type(table, DateTime)
    values = [[naive_utc(value) for value in columns[name]] if name in timestamps else columns[name] for name in names]
    conn.execute(statement, [dict(zip(names, row)) for row in zip(*values)])


@cache
def _columns_of_type(table: Table, kind: type) -> frozenset[str]:
    return frozenset(column.name for column in table.columns if isinstance(column.type, kind))


@cache
def _arrow_schema(table: Table) -> Any:
    import pyarrow as pa

    def arrow_type(kind: Any) -> Any:
        if isinstance(kind, DateTime):
            return pa.timestamp("us")
        if isinstance(kind, Boolean):
            return pa.bool_()
        if isinstance(kind, Integer):
            return pa.int64()
        if isinstance(kind, Float):
            return pa.float64()
        return pa.string()

    return pa.schema([(column.name, arrow_type(column.type)) for column in table.columns])


def to_arrow(table: Table, columns: Columns) -> Any:
    """A batch (column by column) as an Arrow table of ``table``'s schema; JSON columns dumped to text."""
    import pyarrow as pa  # only DuckDB needs Arrow

    schema = _arrow_schema(table)
    json_columns = _columns_of_type(table, JsonText)
    arrays = []
    for field in schema:
        values = columns[field.name]
        if field.name in json_columns:
            values = [None if value is None else dump_json(value) for value in values]
        arrays.append(pa.array(values, type=field.type))
        # Hand the GIL over between columns: a writer thread coming back from a DuckDB call takes it
        # now instead of after the interpreter's 5 ms switch interval (up to 5 ms per DuckDB call).
        time.sleep(0)
    return pa.Table.from_arrays(arrays, schema=schema)


def warm_up_arrow() -> None:
    """Import Arrow and make its first datetime conversion, which imports pandas: about half a second
    in all, better paid when a writer starts than by its first batch."""
    import pyarrow as pa

    pa.array([datetime.now(timezone.utc)], pa.timestamp("us"))


def insert_arrow(conn: Connection, table: Table, rows: Any, *, replace: bool = True) -> None:
    """Insert an Arrow table (see :func:`to_arrow`) into ``table`` on DuckDB, replacing by primary key."""
    if not rows.num_rows:
        return
    view = f"flowdapt_batch_{table.name}"
    duck = conn.connection.driver_connection
    duck.register(view, rows)
    try:
        names = ", ".join(f'"{name}"' for name in rows.schema.names)
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        # Straight to DuckDB, in the connection's open transaction: SQLAlchemy's statement machinery
        # costs about a millisecond, a third of a small batch's insert.
        duck.execute(f'{verb} INTO "{table.name}" ({names}) SELECT {names} FROM {view}')
    finally:
        duck.unregister(view)


def naive_utc(value: datetime | None) -> datetime | None:
    """A timestamp as stored: naive, in UTC."""
    if value is None or value.tzinfo is None:
        return value
    if value.tzinfo is timezone.utc:  # what the engine records: no conversion needed
        return value.replace(tzinfo=None)
    return value.astimezone(timezone.utc).replace(tzinfo=None)
