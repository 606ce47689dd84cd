"""SQL functions the history queries need, compiled per database.

``day(ts)`` truncates a timestamp to its date; ``percentile(col, q)`` is a continuous percentile.
PostgreSQL and DuckDB share the SQL-standard ``percentile_cont(q) WITHIN GROUP (ORDER BY col)``;
SQLite has no percentile, so :func:`install_sqlite_functions` registers one as an aggregate that
runs inside SQLite (the rows never travel to the caller).
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.types import DateTime, Float


class day(FunctionElement):
    """A timestamp truncated to its (UTC) day; SQLite answers text ``YYYY-MM-DD``."""

    type = DateTime()
    inherit_cache = True
    name = "day"


@compiles(day)
def _day_default(element: day, compiler: Any, **kw: Any) -> str:
    # date_trunc groups faster than a cast to DATE on DuckDB and means the same on PostgreSQL.
    return f"date_trunc('day', {compiler.process(element.clauses, **kw)})"


@compiles(day, "sqlite")
def _day_sqlite(element: day, compiler: Any, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"


class percentile(FunctionElement):
    """``percentile(column, fraction)``: the continuous percentile of ``column`` (linear interpolation)."""

    type = Float()
    inherit_cache = True
    name = "percentile"


@compiles(percentile)
def _percentile_default(element: percentile, compiler: Any, **kw: Any) -> str:
    column, fraction = list(element.clauses)
    return (f"percentile_cont({compiler.process(fraction, **kw)}) "
            f"WITHIN GROUP (ORDER BY {compiler.process(column, **kw)})")


@compiles(percentile, "sqlite")
def _percentile_sqlite(element: percentile, compiler: Any, **kw: Any) -> str:
    return f"flowdapt_percentile({compiler.process(element.clauses, **kw)})"


class _SqlitePercentile:
    """SQLite aggregate with ``percentile_cont`` semantics."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.fraction = 0.5

    def step(self, value: float | None, fraction: float) -> None:
        self.fraction = fraction
        if value is not None:
            self.values.append(value)

    def finalize(self) -> float | None:
        values = sorted(self.values)
        if not values:
            return None
        position = (len(values) - 1) * self.fraction
        low, high = math.floor(position), math.ceil(position)
        return values[low] + (values[high] - values[low]) * (position - low)


def install_sqlite_functions(dbapi_connection: Any, _record: Any = None) -> None:
    """Register ``flowdapt_percentile`` on a new sqlite3 connection (a ``connect`` event hook)."""
    dbapi_connection.create_aggregate("flowdapt_percentile", 2, _SqlitePercentile)
