"""The run-history tables (SQLAlchemy Core), portable across DuckDB, SQLite and PostgreSQL.

Keys are text (resource uids, run uids, ``run:stage:attempt``): DuckDB has no autoincrement.
Timestamps are naive UTC. JSON documents are stored as text so every backend reads them alike.
Each table's primary key is its first column: the writer keys rows by ``values[0]``.
Secondary indexes are created on SQLite and PostgreSQL only: DuckDB scans with zone maps and
refuses upserts that touch indexed columns (a run's ``state`` changes while it runs).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic_core import to_json
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

SCHEMA_VERSION = 4
metadata = MetaData()


class JsonText(TypeDecorator):
    """JSON stored as text; values that JSON cannot express are written with ``repr``."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else dump_json(value)

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value is None else json.loads(value)


def dump_json(value: Any) -> str:
    """Compact JSON; pydantic models (rows carry live ``ErrorInfo``/``ItemFailure``s) as their JSON dump,
    dates in ISO 8601, anything else JSON cannot express as its ``repr``."""
    return to_json(value, fallback=repr).decode()


def row_values(table: Table, row: Any) -> tuple[Any, ...]:
    """A row given by column name (a mapping) as its values in column order, as the writer queues rows."""
    return tuple(row[column.name] for column in table.columns)


schema_info = Table(
    "flowdapt_schema", metadata,
    Column("id", String, primary_key=True),
    Column("version", Integer, nullable=False),
)

resources = Table(
    "resources", metadata,
    Column("uid", String, primary_key=True),
    Column("kind", String, nullable=False),
    Column("name", String, nullable=False),
    Column("document", JsonText, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("kind", "name", name="uq_resources_kind_name"),
)

runs = Table(
    "runs", metadata,
    Column("uid", String, primary_key=True),
    Column("name", String, nullable=False),
    Column("workflow", String, nullable=False),
    Column("source", String, nullable=False),
    Column("state", String, nullable=False),
    Column("executor", String),
    Column("namespace", String),
    Column("input", JsonText),
    Column("result", JsonText),
    Column("error", JsonText),
    Column("started_at", DateTime),
    Column("finished_at", DateTime),
    Column("duration", Double),
    Column("owner", String),  # host:pid of the process running it (schema v2)
)

stage_runs = Table(
    "stage_runs", metadata,
    Column("id", String, primary_key=True),  # run_uid:stage:attempt
    Column("run_uid", String, nullable=False),
    Column("workflow", String, nullable=False),
    Column("stage", String, nullable=False),
    Column("position", Integer, nullable=False),
    Column("type", String, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("state", String, nullable=False),
    Column("started_at", DateTime),
    Column("finished_at", DateTime),
    Column("duration", Double),
    Column("error", JsonText),
    Column("items_total", Integer),
    Column("items_done", Integer),
    Column("items_failed", Integer),
    Column("item_failures", JsonText),
    Column("output_notebook", String),
)

trigger_firings = Table(
    "trigger_firings", metadata,
    Column("id", String, primary_key=True),
    Column("trigger", String, nullable=False),
    Column("fired_at", DateTime, nullable=False),
    Column("action", String, nullable=False),
    Column("run_uid", String),
    Column("ok", Boolean, nullable=False),
    Column("error", Text),
    Column("scheduled_at", DateTime),  # schema v4: the schedule time fired (NULL for condition triggers)
)

trigger_state = Table(  # schema v3: the last fire time and the firing lease of each trigger
    "trigger_state", metadata,
    Column("trigger_uid", String, primary_key=True),
    Column("last_fire_time", DateTime),
    Column("lease_owner", String),
    Column("lease_until", DateTime),
)

cancel_requests = Table(
    "cancel_requests", metadata,
    Column("run_uid", String, primary_key=True),
    Column("requested_at", DateTime, nullable=False),
)

for _index in (
    Index("ix_runs_workflow_started", runs.c.workflow, runs.c.started_at),
    Index("ix_runs_state", runs.c.state),
    Index("ix_runs_started", runs.c.started_at),
    Index("ix_stage_runs_run", stage_runs.c.run_uid),
    Index("ix_trigger_firings_trigger", trigger_firings.c.trigger, trigger_firings.c.fired_at),
):
    _index.ddl_if(dialect=("sqlite", "postgresql"))
