"""SQL functions the history queries need, compiled per database.

``day(ts)`` is a timestamp's date; ``time_bucket(ts, "hour"|"day")`` the start of its hour or day;
``json_text(col, key)`` a top-level field of a JSON text column as text; ``seconds_between(later,
earlier)`` an interval in seconds; :func:`json_array_items` the elements of a JSON array column as
rows; ``percentiles(col, (q1, q2))`` is one column per fraction,
continuous percentiles exact everywhere, all read from one aggregate: DuckDB's
``quantile_cont(col, [q1, q2])[i]``, PostgreSQL's ``(percentile_cont(ARRAY[q1, q2]) WITHIN GROUP
(ORDER BY col))[i]``; SQLite has no percentile, so :func:`install_sqlite_functions` registers one
as an aggregate that runs inside SQLite (the rows never travel to the caller) and answers JSON.
"""

from __future__ import annotations

import json
import math
from typing import Any

from sqlalchemy import JSON, cast, func
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import Date, DateTime, Float, String


class day(FunctionElement):
    """A timestamp's (UTC) day as a date; SQLite answers text ``YYYY-MM-DD``."""

    type = Date()
    inherit_cache = True
    name = "day"


@compiles(day)
def _day_default(element: day, compiler: Any, **kw: Any) -> str:
    # A DATE (4 bytes) groups faster than date_trunc's TIMESTAMP on DuckDB and means the same on
    # PostgreSQL (naive UTC timestamps); both hand back dates, not midnight timestamps.
    return f"CAST({compiler.process(element.clauses, **kw)} AS DATE)"


@compiles(day, "sqlite")
def _day_sqlite(element: day, compiler: Any, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"


BUCKET_FORMATS = {"hour": "%Y-%m-%d %H:00:00", "day": "%Y-%m-%d 00:00:00"}  # SQLite's strftime


class time_bucket(FunctionElement):
    """``time_bucket(ts, unit)``: the start of the hour or day (``unit``) a timestamp falls in."""

    type = DateTime()
    inherit_cache = True
    name = "time_bucket"
    _traverse_internals = FunctionElement._traverse_internals + [("unit", InternalTraversal.dp_plain_obj)]

    def __init__(self, column: Any, unit: str) -> None:
        if unit not in BUCKET_FORMATS:
            raise ValueError(f"bucket: expected one of {', '.join(BUCKET_FORMATS)}, got '{unit}'")
        self.unit = unit
        super().__init__(column)


@compiles(time_bucket)
def _time_bucket_default(element: time_bucket, compiler: Any, **kw: Any) -> str:
    return f"date_trunc('{element.unit}', {compiler.process(element.clauses, **kw)})"


@compiles(time_bucket, "sqlite")
def _time_bucket_sqlite(element: time_bucket, compiler: Any, **kw: Any) -> str:
    return f"strftime('{BUCKET_FORMATS[element.unit]}', {compiler.process(element.clauses, **kw)})"


class json_text(FunctionElement):
    """``json_text(column, key)``: the top-level field ``key`` of a JSON document (text or JSON) as text."""

    type = String()
    inherit_cache = True
    name = "json_text"
    _traverse_internals = FunctionElement._traverse_internals + [("key", InternalTraversal.dp_plain_obj)]

    def __init__(self, column: Any, key: str) -> None:
        if not key.isidentifier():  # written into the SQL: never user input, and checked
            raise ValueError(f"json_text: '{key}' is not a plain key")
        self.key = key
        super().__init__(column)


@compiles(json_text)
def _json_text_duckdb(element: json_text, compiler: Any, **kw: Any) -> str:
    return f"json_extract_string({compiler.process(element.clauses, **kw)}, '$.{element.key}')"


@compiles(json_text, "sqlite")
def _json_text_sqlite(element: json_text, compiler: Any, **kw: Any) -> str:
    return f"json_extract({compiler.process(element.clauses, **kw)}, '$.{element.key}')"


@compiles(json_text, "postgresql")
def _json_text_postgresql(element: json_text, compiler: Any, **kw: Any) -> str:
    return f"(CAST({compiler.process(element.clauses, **kw)} AS JSON) ->> '{element.key}')"


class seconds_between(FunctionElement):
    """``seconds_between(later, earlier)``: ``later - earlier`` in seconds (a float)."""

    type = Float()
    inherit_cache = True
    name = "seconds_between"


def _two(element: seconds_between, compiler: Any, **kw: Any) -> tuple[str, str]:
    later, earlier = list(element.clauses)
    return compiler.process(later, **kw), compiler.process(earlier, **kw)


@compiles(seconds_between)
def _seconds_between_duckdb(element: seconds_between, compiler: Any, **kw: Any) -> str:
    later, earlier = _two(element, compiler, **kw)
    return f"(epoch({later}) - epoch({earlier}))"


@compiles(seconds_between, "postgresql")
def _seconds_between_postgresql(element: seconds_between, compiler: Any, **kw: Any) -> str:
    later, earlier = _two(element, compiler, **kw)
    return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"


@compiles(seconds_between, "sqlite")
def _seconds_between_sqlite(element: seconds_between, compiler: Any, **kw: Any) -> str:
    later, earlier = _two(element, compiler, **kw)
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"


def json_array_items(column: Any, dialect: str) -> Any:
    """A table-valued expression with one row per element of the JSON array in ``column`` (a lateral
    join partner of ``column``'s table); its ``value`` column is each element, for :class:`json_text`."""
    if dialect == "sqlite":
        return func.json_each(column).table_valued("value").alias("item")
    if dialect == "postgresql":
        return func.json_array_elements(cast(column, JSON)).table_valued("value").alias("item")
    return func.unnest(func.json_extract(column, "$[*]")).table_valued("value").render_derived("item")


class percentile(FunctionElement):
    """``percentile(column, fractions, index)``: the continuous percentile (linear interpolation) at
    ``fractions[index]``, read from one aggregate that computes all ``fractions`` at once.

    Use :func:`percentiles`: its columns repeat the very same aggregate call (the fractions are
    written into the SQL, not bound), which every database evaluates once per group, so each
    group's values are sorted once, not once per fraction. Exact everywhere (no approximation).
    """

    type = Float()
    inherit_cache = True
    name = "percentile"
    _traverse_internals = FunctionElement._traverse_internals + [
        ("fractions", InternalTraversal.dp_plain_obj), ("index", InternalTraversal.dp_plain_obj)]

    def __init__(self, column: Any, fractions: tuple[float, ...], index: int) -> None:
        self.fractions = tuple(float(fraction) for fraction in fractions)
        self.index = index
        super().__init__(column)


def percentiles(column: Any, fractions: tuple[float, ...]) -> list[percentile]:
    """One column per fraction: the continuous percentiles of ``column``, one aggregate for all."""
    return [percentile(column, fractions, index) for index in range(len(fractions))]


def _parts(element: percentile, compiler: Any, **kw: Any) -> tuple[str, str]:
    # Literal constants (never user input), so the repeated aggregate calls are textually identical.
    return compiler.process(element.clauses, **kw), ", ".join(repr(fraction) for fraction in element.fractions)


@compiles(percentile)
def _percentile_duckdb(element: percentile, compiler: Any, **kw: Any) -> str:
    column, fractions = _parts(element, compiler, **kw)
    return f"quantile_cont({column}, [{fractions}])[{element.index + 1}]"


@compiles(percentile, "postgresql")
def _percentile_postgresql(element: percentile, compiler: Any, **kw: Any) -> str:
    column, fractions = _parts(element, compiler, **kw)
    return f"(percentile_cont(ARRAY[{fractions}]) WITHIN GROUP (ORDER BY {column}))[{element.index + 1}]"


@compiles(percentile, "sqlite")
def _percentile_sqlite(element: percentile, compiler: Any, **kw: Any) -> str:
    column, fractions = _parts(element, compiler, **kw)
    return f"json_extract(flowdapt_percentiles({column}, {fractions}), '$[{element.index}]')"


class _SqlitePercentiles:
    """SQLite aggregate with ``percentile_cont`` semantics; answers a JSON list, one value per fraction."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.fractions: tuple[float, ...] = ()

    def step(self, value: float | None, *fractions: float) -> None:
        self.fractions = fractions
        if value is not None:
            self.values.append(value)

    def finalize(self) -> str | None:
        values = sorted(self.values)
        if not values:
            return None
        answers = []
        for fraction in self.fractions:
            position = (len(values) - 1) * fraction
            low, high = math.floor(position), math.ceil(position)
            answers.append(values[low] + (values[high] - values[low]) * (position - low))
        return json.dumps(answers)


def install_sqlite_functions(dbapi_connection: Any, _record: Any = None) -> None:
    """Register ``flowdapt_percentiles`` on a new sqlite3 connection (a ``connect`` event hook)."""
    dbapi_connection.create_aggregate("flowdapt_percentiles", -1, _SqlitePercentiles)
