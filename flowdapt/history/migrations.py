"""Schema versions of the history database and the steps between them.

A new database is created at the newest version (:data:`~flowdapt.history.orm.SCHEMA_VERSION`)
straight from the table definitions. An existing one is brought forward by :func:`upgrade`, one
step per version, each in the same transaction as the version bump. Every step only adds
(nullable columns, tables), so an upgrade never rewrites stored runs.
"""

from __future__ import annotations

from typing import Callable

from sqlalchemy import Connection, inspect, select, update

from flowdapt.history import orm
from flowdapt.history.errors import SchemaVersionError

_ROW_ID = "flowdapt"


def _v2_owner_and_cancel_requests(conn: Connection) -> None:
    """v2: ``runs.owner`` (which process runs it, for crash recovery) and ``cancel_requests``."""
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN owner VARCHAR")
    orm.cancel_requests.create(conn)


def _v3_trigger_state(conn: Connection) -> None:
    """v3: ``trigger_state`` (last fire time and firing lease per trigger, so schedules never fire twice)."""
    orm.trigger_state.create(conn)


def _v4_firing_schedule_times(conn: Connection) -> None:
    """v4: ``trigger_firings.scheduled_at`` (the schedule time a firing was for, so lateness can be shown)."""
    conn.exec_driver_sql("ALTER TABLE trigger_firings ADD COLUMN scheduled_at TIMESTAMP")


# STEPS[v] upgrades a database from version v to v + 1.
STEPS: dict[int, Callable[[Connection], None]] = {1: _v2_owner_and_cancel_requests, 2: _v3_trigger_state,
                                                  3: _v4_firing_schedule_times}


def current_version(conn: Connection) -> int | None:
    """The schema version stored in the database; ``None`` for a database without flowdapt tables."""
    if not inspect(conn).has_table(orm.schema_info.name):
        return None
    return conn.execute(select(orm.schema_info.c.version).where(orm.schema_info.c.id == _ROW_ID)).scalar_one()


def create_schema(conn: Connection) -> None:
    """Create every table at the newest version."""
    orm.metadata.create_all(conn)
    conn.execute(orm.schema_info.insert().values(id=_ROW_ID, version=orm.SCHEMA_VERSION))


def upgrade(conn: Connection) -> tuple[int | None, int]:
    """Bring the schema to the newest version (creating it if absent); returns (from, to)."""
    found = current_version(conn)
    if found is None:
        create_schema(conn)
        return None, orm.SCHEMA_VERSION
    if found > orm.SCHEMA_VERSION:
        raise SchemaVersionError(found, orm.SCHEMA_VERSION)
    for version in range(found, orm.SCHEMA_VERSION):
        STEPS[version](conn)
        conn.execute(update(orm.schema_info).where(orm.schema_info.c.id == _ROW_ID).values(version=version + 1))
    return found, orm.SCHEMA_VERSION


def ensure_current(conn: Connection) -> None:
    """Create the schema in an empty database; fail with what to do if it is at another version."""
    found = current_version(conn)
    if found is None:
        create_schema(conn)
    elif found != orm.SCHEMA_VERSION:
        raise SchemaVersionError(found, orm.SCHEMA_VERSION)
