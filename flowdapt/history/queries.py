"""The queries the CLI, REST API and dashboard need, each one SQL statement run by the database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from sqlalchemy import Connection, Float, and_, case, cast, func, select

from flowdapt.errors import ResourceNotFoundError
from flowdapt.history import orm
from flowdapt.history.bulk import naive_utc
from flowdapt.history.models import DailyWorkflowStats, RunQuery, StageAttempt, StageStats, TriggerFiring
from flowdapt.history.sqlfuncs import day, percentiles
from flowdapt.resources.models import ErrorInfo, StageRun, WorkflowRun

_NOT_ENDED = ("pending", "running")  # every other run state is terminal; two comparisons instead of four
_MEDIAN_P95 = (0.5, 0.95)
Stats = TypeVar("Stats", DailyWorkflowStats, StageStats)
_RUN_COLUMNS = [c for c in orm.runs.c if c.name not in ("duration", "owner")]


def aware(value: datetime | None) -> datetime | None:
    """A stored (naive UTC) timestamp as an aware one."""
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def _run_from_row(row: Any, stages: list[StageRun] | None = None) -> WorkflowRun:
    data = dict(row._mapping)
    data["error"] = ErrorInfo(**data["error"]) if data["error"] else None
    data["input"] = data["input"] or {}
    data["started_at"], data["finished_at"] = aware(data["started_at"]), aware(data["finished_at"])
    return WorkflowRun(**data, stages=stages or [])


def _time_window(column: Any, since: datetime | None, until: datetime | None) -> list[Any]:
    clauses = []
    if since is not None:
        clauses.append(column >= naive_utc(since))
    if until is not None:
        clauses.append(column < naive_utc(until))
    return clauses


# Newest-first listings try these windows (days before the newest run) before scanning everything:
# on DuckDB a time filter prunes whole row groups by their min/max, so "last 50 runs" stays fast
# however long the history grows. DuckDB finds the newest run inside the same statement (it has no
# statement cache through duckdb-engine, so each extra statement costs a compile and a round trip).
_RECENT_WINDOWS_DAYS = (1, 30)


def list_runs(conn: Connection, query: RunQuery) -> list[WorkflowRun]:
    """Runs matching ``query``, newest first, without their stages."""
    runs = orm.runs.c
    clauses = _time_window(runs.started_at, query.since, query.until)
    for column, value in ((runs.workflow, query.workflow), (runs.state, query.state), (runs.source, query.source)):
        if value is not None:
            clauses.append(column == value)
    statement = (select(*_RUN_COLUMNS).order_by(runs.started_at.desc().nulls_first(), runs.uid)
                 .limit(query.limit).offset(query.offset))
    if query.since is None and query.until is None:
        newest: Any = select(func.max(runs.started_at)).scalar_subquery()
        if conn.dialect.name != "duckdb":  # SQLite stores text: no timestamp arithmetic in SQL
            newest = conn.execute(select(newest)).scalar()
        if newest is not None:
            for days in _RECENT_WINDOWS_DAYS:
                rows = conn.execute(statement.where(
                    runs.started_at >= newest - timedelta(days=days), *clauses)).all()
                if len(rows) == query.limit:
                    return [_run_from_row(row) for row in rows]
    return [_run_from_row(row) for row in conn.execute(statement.where(and_(True, *clauses)))]


def find_run_uid(conn: Connection, identifier: str) -> str:
    """The uid of the run with this uid or name; :class:`ResourceNotFoundError` otherwise."""
    runs = orm.runs.c
    # By primary key first (an index lookup everywhere), then by name.
    uid = conn.execute(select(runs.uid).where(runs.uid == identifier.replace("-", ""))).scalar()
    if uid is None:
        uid = conn.execute(select(runs.uid).where(runs.name == identifier).limit(1)).scalar()
    if uid is None:
        raise ResourceNotFoundError("workflow_run", identifier)
    return uid


def get_run(conn: Connection, identifier: str) -> WorkflowRun:
    """One run (by uid or name) with the record of each stage's latest attempt."""
    uid = find_run_uid(conn, identifier)
    row = conn.execute(select(*_RUN_COLUMNS).where(orm.runs.c.uid == uid)).one()
    stages = orm.stage_runs.c
    latest = (select(stages.stage, func.max(stages.attempt).label("attempt"))
              .where(stages.run_uid == uid).group_by(stages.stage).subquery())
    statement = (select(stages.stage, stages.type, stages.state, stages.attempt, stages.started_at,
                        stages.finished_at, stages.error, stages.items_total, stages.items_done,
                        stages.items_failed, stages.item_failures, stages.output_notebook)
                 .join(latest, and_(stages.stage == latest.c.stage, stages.attempt == latest.c.attempt))
                 .where(stages.run_uid == uid).order_by(stages.position))
    records = [
        StageRun(name=s.stage, type=s.type, state=s.state, attempts=s.attempt, started_at=aware(s.started_at),
                 finished_at=aware(s.finished_at), error=ErrorInfo(**s.error) if s.error else None,
                 items_total=s.items_total, items_done=s.items_done or 0, items_failed=s.items_failed or 0,
                 item_failures=s.item_failures or [], output_notebook=s.output_notebook)
        for s in conn.execute(statement)
    ]
    return _run_from_row(row, records)


def stage_attempts(conn: Connection, identifier: str) -> list[StageAttempt]:
    """Every attempt of every stage of one run, in stage order."""
    uid = find_run_uid(conn, identifier)
    s = orm.stage_runs.c
    statement = (select(s.stage, s.attempt, s.type, s.state, s.started_at, s.finished_at, s.duration, s.error,
                        s.items_total, s.items_done, s.items_failed)
                 .where(s.run_uid == uid).order_by(s.position, s.attempt))
    return [StageAttempt(**{**row._mapping, "started_at": aware(row.started_at), "finished_at": aware(row.finished_at)})
            for row in conn.execute(statement)]


def _stats(conn: Connection, statement: Any, model: type[Stats]) -> list[Stats]:
    """Rows of a statistics query as ``model``s; its ``durations`` list becomes p50/p95.

    One ``fetchall`` and one key list for the whole result: thousands of rows (a year of days per
    workflow) must not pay a cursor call and a row mapping each.
    """
    result = conn.execute(statement)
    names = list(result.keys())
    stats = []
    for row in result.all():
        data = dict(zip(names, row))
        data["p50_duration"], data["p95_duration"] = data.pop("durations") or (None, None)
        stats.append(model(**data))
    return stats


def daily_workflow_stats(conn: Connection, workflow: str | None = None, since: datetime | None = None,
                         until: datetime | None = None) -> list[DailyWorkflowStats]:
    """Per workflow and UTC day: runs ended, successes, success rate, mean/p50/p95 duration (exact percentiles)."""
    r = orm.runs.c
    clauses = [r.state.not_in(_NOT_ENDED), *_time_window(r.started_at, since, until)]
    if workflow is not None:
        clauses.append(r.workflow == workflow)
    bucket = day(r.started_at).label("day")
    finished = func.sum(case((r.state == "finished", 1), else_=0))
    statement = (
        select(r.workflow, bucket, func.count().label("runs"), finished.label("finished"),
               func.sum(case((r.state == "failed", 1), else_=0)).label("failed"),
               (cast(finished, Float) / func.count()).label("success_rate"),
               func.avg(r.duration).label("mean_duration"),
               percentiles(r.duration, _MEDIAN_P95).label("durations"))
        .where(*clauses).group_by(r.workflow, bucket).order_by(r.workflow, bucket)
    )
    return _stats(conn, statement, DailyWorkflowStats)


def stage_stats(conn: Connection, workflow: str | None = None, since: datetime | None = None,
                until: datetime | None = None) -> list[StageStats]:
    """Per workflow and stage: attempts, failures and duration statistics of finished attempts (exact percentiles)."""
    s = orm.stage_runs.c
    clauses = [s.state.in_(("finished", "failed")), *_time_window(s.started_at, since, until)]
    if workflow is not None:
        clauses.append(s.workflow == workflow)
    statement = (
        select(s.workflow, s.stage, func.count().label("attempts"),
               func.sum(case((s.state == "failed", 1), else_=0)).label("failed"),
               func.avg(s.duration).label("mean_duration"),
               percentiles(s.duration, _MEDIAN_P95).label("durations"),
               func.max(s.duration).label("max_duration"),
               func.coalesce(func.sum(s.items_failed), 0).label("items_failed"))
        .where(*clauses).group_by(s.workflow, s.stage).order_by(s.workflow, s.stage)
    )
    return _stats(conn, statement, StageStats)


def trigger_firings(conn: Connection, trigger: str | None = None, since: datetime | None = None,
                    limit: int = 50, offset: int = 0) -> list[TriggerFiring]:
    """The trigger firing log, newest first."""
    t = orm.trigger_firings.c
    clauses = _time_window(t.fired_at, since, None)
    if trigger is not None:
        clauses.append(t.trigger == trigger)
    statement = (select(orm.trigger_firings).where(and_(True, *clauses))
                 .order_by(t.fired_at.desc(), t.id).limit(limit).offset(offset))
    return [TriggerFiring(**{**row._mapping, "fired_at": aware(row.fired_at)}) for row in conn.execute(statement)]
