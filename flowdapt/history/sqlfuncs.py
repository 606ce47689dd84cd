"""SQL functions the history queries need, compiled per database.

``day(ts)`` truncates a timestamp to its date; ``percentiles(col, (q1, q2))`` is the list of
continuous percentiles, exact everywhere: DuckDB's ``quantile_cont(col, [q1, q2])``, PostgreSQL's
``percentile_cont(ARRAY[q1, q2]) WITHIN GROUP (ORDER BY col)``; SQLite has no percentile, so
:func:`install_sqlite_functions` registers one as an aggregate that runs inside SQLite (the rows
never travel to the caller).
"""

from __future__ import annotations

import json
import math
from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy import literal
from sqlalchemy.types import DateTime, Float, Text, TypeDecorator


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


class _FloatList(TypeDecorator):
    """A list of floats: DuckDB and PostgreSQL return arrays, the SQLite aggregate JSON text."""

    impl = Text
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> list[float | None] | None:
        return json.loads(value) if isinstance(value, str) else value


class percentiles(FunctionElement):
    """``percentiles(column, (f1, f2, ...))``: continuous percentiles (linear interpolation) as one list.

    One aggregate for all fractions, so each group's values are sorted once, not once per fraction.
    Every database computes it exactly (no approximate quantiles).
    """

    type = _FloatList()
    inherit_cache = True
    name = "percentiles"

    def __init__(self, column: Any, fractions: tuple[float, ...]) -> None:
        super().__init__(column, *(literal(float(fraction), Float()) for fraction in fractions))


def _parts(element: percentiles, compiler: Any, **kw: Any) -> tuple[str, str]:
    column, *fractions = (compiler.process(clause, **kw) for clause in element.clauses)
    return column, ", ".join(fractions)


@compiles(percentiles)
def _percentiles_duckdb(element: percentiles, compiler: Any, **kw: Any) -> str:
    column, fractions = _parts(element, compiler, **kw)
    return f"quantile_cont({column}, [{fractions}])"


@compiles(percentiles, "postgresql")
def _percentiles_postgresql(element: percentiles, compiler: Any, **kw: Any) -> str:
    column, fractions = _parts(element, compiler, **kw)
    return f"percentile_cont(ARRAY[{fractions}]) WITHIN GROUP (ORDER BY {column})"


@compiles(percentiles, "sqlite")
def _percentiles_sqlite(element: percentiles, compiler: Any, **kw: Any) -> str:
    column, fractions = _parts(element, compiler, **kw)
    return f"flowdapt_percentiles({column}, {fractions})"


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
