"""SQL functions the history queries need, compiled per database.

``day(ts)`` is a timestamp's date; ``percentiles(col, (q1, q2))`` is one column per fraction,
continuous percentiles exact everywhere, all read from one aggregate: DuckDB's
``quantile_cont(col, [q1, q2])[i]``, PostgreSQL's ``(percentile_cont(ARRAY[q1, q2]) WITHIN GROUP
(ORDER BY col))[i]``; SQLite has no percentile, so :func:`install_sqlite_functions` registers one
as an aggregate that runs inside SQLite (the rows never travel to the caller) and answers JSON.
"""

from __future__ import annotations

import json
import math
from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import Date, Float


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
