"""The queries the CLI, REST API and dashboard need, run by the database (SQLAlchemy Core).

DuckDB has no secondary indexes here (see :mod:`~flowdapt.history.orm`), so lookups lean on its
zone maps: rows are appended in roughly the order runs start, and a filter on ``started_at``
skips every row group whose min/max lies outside it. Newest-first listings and lookups by name
therefore try recent windows first (see :func:`list_runs`, :data:`RECENT_WINDOWS_DAYS`) and only
scan everything when a window does not hold the whole answer; the answer is the same either way.

duckdb-engine has no statement cache, so every SQLAlchemy statement costs a compile (≈ 0.5 ms)
and a begin/rollback round trip. The latency-sensitive DuckDB reads (:func:`list_runs`,
:func:`get_run`) therefore run SQL compiled once per statement shape straight on the driver
connection (:func:`_duckdb_rows`), and the statistics fetch their results column by column.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Callable, Iterable, Sequence

from pydantic import TypeAdapter
from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Integer,
    Interval,
    String,
    and_,
    bindparam,
    cast,
    func,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.sql import Select

from flowdapt.errors import ResourceNotFoundError
from flowdapt.history import orm
from flowdapt.history.bulk import naive_utc
from flowdapt.history.models import DailyWorkflowStats, LogLine, RunQuery, StageAttempt, StageStats, TriggerFiring
from flowdapt.history.sqlfuncs import day, percentiles
from flowdapt.resources.models import ErrorInfo, StageRun, WorkflowRun

_NOT_ENDED = ("pending", "running")  # every other run state is terminal; two comparisons instead of four
_MEDIAN_P95 = (0.5, 0.95)
_RUN_COLUMNS = [c for c in orm.runs.c if c.name not in ("duration", "owner")]
_STARTED = [c.name for c in _RUN_COLUMNS].index("started_at")
_STAGE_COLUMNS = [orm.stage_runs.c[name] for name in (
    "stage", "type", "state", "attempt", "position", "started_at", "finished_at", "error", "items_total",
    "items_done", "items_failed", "item_failures", "output_notebook", "cached_from")]

# Newest-first listings and lookups by name look in these windows (days before the newest run
# start) before scanning everything. A window also holds every run not started yet (NULL
# ``started_at``: queued runs sort first), so whatever a window answers is the exact answer.
RECENT_WINDOWS_DAYS = (1, 30)


def aware(value: datetime | None) -> datetime | None:
    """A stored (naive UTC) timestamp as an aware one."""
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _run_from_values(values: Sequence[Any], stages: list[StageRun] | None = None, *,
                     raw_json: bool = False) -> WorkflowRun:
    """A run from its ``_RUN_COLUMNS`` values; ``raw_json``: its JSON columns are still text."""
    (uid, name, workflow, source, state, executor, namespace, input_, result, error, started, finished, version,
     logical_time, rerun_of, resumed_from) = values
    if raw_json:
        input_, result, error = _loads(input_), _loads(result), _loads(error)
    return WorkflowRun(uid=uid, name=name, workflow=workflow, source=source, state=state, executor=executor,
                       namespace=namespace, input=input_ or {}, result=result,
                       error=ErrorInfo(**error) if error else None, started_at=aware(started),
                       finished_at=aware(finished), stages=stages or [], workflow_version=version,
                       logical_time=aware(logical_time), rerun_of=rerun_of, resumed_from=resumed_from)


def _time_window(column: Any, since: datetime | None, until: datetime | None) -> list[Any]:
    clauses = []
    if since is not None:
        clauses.append(column >= naive_utc(since))
    if until is not None:
        clauses.append(column < naive_utc(until))
    return clauses


# -- DuckDB: SQL compiled once per statement shape, run on the driver connection -------------------------
_DUCKDB_SQL: dict[Any, tuple[str, tuple[str, ...], dict[str, Any]]] = {}


def _duckdb_rows(conn: Connection, key: Any, build: Callable[[], Any], params: dict[str, Any]) -> list[tuple]:
    """Rows of the statement ``build()`` makes (its parameters named in ``params``), compiled once per ``key``.

    Runs on the connection's DuckDB connection, inside the caller's transaction if it has one.
    Values come back as the driver gives them (JSON columns as text).
    """
    compiled = _DUCKDB_SQL.get(key)
    if compiled is None:
        statement = build().compile(dialect=conn.dialect)
        # Parameters not named in ``params`` (literal values such as LIMIT 1) keep their compiled values.
        compiled = _DUCKDB_SQL[key] = (str(statement), tuple(statement.positiontup or ()), statement.params)
    sql, names, defaults = compiled
    values = [params[name] if name in params else defaults[name] for name in names]
    return conn.connection.driver_connection.execute(sql, values).fetchall()


def _recent(dialect: str) -> Any:
    """The lower bound of a recent window: ``max(started_at) - :window`` in SQL, or ``:cutoff`` (SQLite)."""
    if dialect == "sqlite":  # SQLite stores text: no timestamp arithmetic in SQL; the caller finds the newest
        return bindparam("cutoff", type_=DateTime())
    return select(func.max(orm.runs.c.started_at)).scalar_subquery() - bindparam("window", type_=Interval())


def _window_params(conn: Connection, days: int, newest: list[Any]) -> dict[str, Any] | None:
    """Parameters of the recent window of ``days``; ``None`` where there is no run start to count from."""
    if conn.dialect.name != "sqlite":
        return {"window": timedelta(days=days)}
    if not newest:
        newest.append(conn.execute(select(func.max(orm.runs.c.started_at))).scalar())
    return None if newest[0] is None else {"cutoff": newest[0] - timedelta(days=days)}


# -- runs ----------------------------------------------------------------------------------------------------
_FILTERS = ("workflow", "state", "source")


@lru_cache(maxsize=None)
def _list_statement(dialect: str, filters: tuple[str, ...], since: bool, until: bool, window: str | None) -> Select:
    """Runs newest first; ``window``: ``None`` (every run), ``"recent"`` (started within ``:window``
    of the newest start, or ``:cutoff`` on SQLite) or ``"since"`` (started at ``:cutoff`` or later);
    a window also holds every run not started yet.
    """
    runs = orm.runs.c
    clauses = [runs[name] == bindparam(name, type_=String()) for name in filters]
    if since:
        clauses.append(runs.started_at >= bindparam("since", type_=DateTime()))
    if until:
        clauses.append(runs.started_at < bindparam("until", type_=DateTime()))
    limit, offset = bindparam("limit", type_=Integer()), bindparam("offset", type_=Integer())
    if window is None:
        return (select(*_RUN_COLUMNS).where(and_(True, *clauses))
                .order_by(runs.started_at.desc().nulls_first(), runs.uid).limit(limit).offset(offset))
    lower = _recent(dialect) if window == "recent" else bindparam("cutoff", type_=DateTime())
    # Two branches rather than ``started_at >= x OR started_at IS NULL``: DuckDB prunes row groups
    # by each branch's filter, not by an OR of them.
    both = union_all(
        select(*_RUN_COLUMNS).where(runs.started_at >= lower, *clauses),
        select(*_RUN_COLUMNS).where(runs.started_at.is_(None), *clauses),
    ).subquery()
    return (select(*both.c).order_by(both.c.started_at.desc().nulls_first(), both.c.uid)
            .limit(limit).offset(offset))


_PAGE_HINTS = "flowdapt_page_starts"  # key in a DBAPI connection's ``info``
_PAGE_HINTS_KEPT = 256


def list_runs(conn: Connection, query: RunQuery) -> list[WorkflowRun]:
    """Runs matching ``query``, newest first (runs not started yet first of all); their stages only with
    ``query.stages`` (one more statement for the page).

    Without since/until, a page is looked for in windows of recent starts first: where the same
    listing's last full page began (a hint kept per connection; new runs only add to that window),
    then :data:`RECENT_WINDOWS_DAYS`, then the whole history. A window that holds a full page holds
    the exact page: every run outside it started before every run inside.
    """
    dialect = conn.dialect.name
    raw = dialect == "duckdb"
    filters = tuple(name for name in _FILTERS if getattr(query, name) is not None)
    params: dict[str, Any] = {name: getattr(query, name) for name in filters}
    params.update(since=naive_utc(query.since), until=naive_utc(query.until), limit=query.limit,
                  offset=query.offset)
    shape = (filters, query.since is not None, query.until is not None)

    def rows(window: str | None, extra: dict[str, Any]) -> list[Any]:
        if raw:
            return _duckdb_rows(conn, ("list_runs", *shape, window),
                                lambda: _list_statement(dialect, *shape, window), {**params, **extra})
        return conn.execute(_list_statement(dialect, *shape, window), {**params, **extra}).all()

    def page(found: list[Any]) -> list[WorkflowRun]:
        runs = [_run_from_values(row, raw_json=raw) for row in found]
        return _with_stages(conn, runs) if query.stages else runs

    if query.since is not None or query.until is not None:
        return page(rows(None, {}))
    hints = conn.info.setdefault(_PAGE_HINTS, {})
    key = (*((name, params[name]) for name in filters), query.limit, query.offset)
    attempts: list[tuple[str, Any]] = [("since", hints[key])] if key in hints else []
    attempts += [("recent", days) for days in RECENT_WINDOWS_DAYS]
    newest: list[Any] = []
    for window, value in attempts:
        extra = {"cutoff": value} if window == "since" else _window_params(conn, value, newest)
        if extra is None:
            break
        found = rows(window, extra)
        if len(found) == query.limit:
            starts = [row[_STARTED] for row in found if row[_STARTED] is not None]
            if starts:
                if len(hints) >= _PAGE_HINTS_KEPT and key not in hints:
                    hints.clear()
                hints[key] = min(starts)
            return page(found)
    return page(rows(None, {}))


def latest_runs(conn: Connection) -> list[WorkflowRun]:
    """The newest run of each workflow (a run not started yet counts as newest), without stages, by workflow."""
    runs = orm.runs.c
    rank = func.row_number().over(partition_by=runs.workflow,
                                  order_by=(runs.started_at.desc().nulls_first(), runs.uid)).label("rank")
    ranked = select(*_RUN_COLUMNS, rank).subquery()
    statement = select(*(ranked.c[column.name] for column in _RUN_COLUMNS)).where(ranked.c.rank == 1)
    return [_run_from_values(row) for row in conn.execute(statement.order_by(ranked.c.workflow)).all()]


@lru_cache(maxsize=None)
def _lookup_statement(dialect: str, windowed: bool, stages: bool) -> Select:
    """The run with uid ``:uid``, or else the newest run named ``:name`` (started in the recent window
    or not started yet, where ``windowed``): its uid, or with ``stages`` its row joined to every
    attempt of its stages.
    """
    runs = orm.runs.c
    named = runs.name == bindparam("name", type_=String())
    key = (runs.uid, runs.started_at)  # the lookup carries only these; the row is read once, by uid
    branches = [select(literal_column("0", Integer()).label("rank"), *key)
                .where(runs.uid == bindparam("uid", type_=String()))]
    if windowed:
        branches.append(select(literal_column("1", Integer()), *key).where(runs.started_at >= _recent(dialect), named))
        branches.append(select(literal_column("1", Integer()), *key).where(runs.started_at.is_(None), named))
    else:
        branches.append(select(literal_column("1", Integer()), *key).where(named))
    found = union_all(*branches).subquery("found")
    run = (select(found.c.uid).order_by(found.c.rank, found.c.started_at.desc().nulls_first())
           .limit(1).subquery("run"))
    if not stages:
        return select(run.c.uid)
    s = orm.stage_runs
    return (select(*_RUN_COLUMNS, *(column.label(f"stage_{column.name}") for column in _STAGE_COLUMNS))
            .select_from(run.join(orm.runs, orm.runs.c.uid == run.c.uid)
                         .outerjoin(s, s.c.run_uid == run.c.uid)))


def _lookup(conn: Connection, identifier: str, stages: bool) -> tuple[list[Any], bool]:
    """The rows of :func:`_lookup_statement` for ``identifier``, trying the recent windows first.

    Returns ``(rows, raw_json)``; raises :class:`ResourceNotFoundError` when no run matches.
    Each attempt is one statement, so the run and its stages come from one snapshot. A uid is
    found by the primary key (an index lookup everywhere); a name is mostly a recent run's
    (clicked in a dashboard), found in the first window without scanning the whole history.
    """
    dialect = conn.dialect.name
    raw = dialect == "duckdb"
    params = {"uid": identifier.replace("-", ""), "name": identifier}

    def rows(windowed: bool, extra: dict[str, Any]) -> list[Any]:
        if raw:
            return _duckdb_rows(conn, ("lookup", windowed, stages),
                                lambda: _lookup_statement(dialect, windowed, stages), {**params, **extra})
        return conn.execute(_lookup_statement(dialect, windowed, stages), {**params, **extra}).all()

    newest: list[Any] = []
    for days in RECENT_WINDOWS_DAYS:
        window = _window_params(conn, days, newest)
        if window is None:
            break
        found = rows(True, window)
        if found:
            return found, raw
    found = rows(False, {})
    if not found:
        raise ResourceNotFoundError("workflow_run", identifier)
    return found, raw


def find_run_uid(conn: Connection, identifier: str) -> str:
    """The uid of the run with this uid or name (the newest of that name); :class:`ResourceNotFoundError` otherwise."""
    return _lookup(conn, identifier, stages=False)[0][0][0]


def _latest_attempts(rows: Iterable[Sequence[Any]], raw_json: bool) -> list[StageRun]:
    """The record of each stage's latest attempt, in stage order, from the rows of all attempts."""
    latest: dict[str, Any] = {}
    for row in rows:
        seen = latest.get(row[0])
        if seen is None or row[3] > seen[3]:
            latest[row[0]] = row
    records = []
    for (stage, type_, state, attempt, _, started, finished, error, items_total, items_done, items_failed,
         item_failures, notebook, cached_from) in sorted(latest.values(), key=lambda row: (row[4], row[0])):
        if raw_json:
            error, item_failures = _loads(error), _loads(item_failures)
        records.append(StageRun(
            name=stage, type=type_, state=state, attempts=attempt, started_at=aware(started),
            finished_at=aware(finished), error=ErrorInfo(**error) if error else None, items_total=items_total,
            items_done=items_done or 0, items_failed=items_failed or 0, item_failures=item_failures or [],
            output_notebook=notebook, cached_from=cached_from))
    return records


def _with_stages(conn: Connection, runs: list[WorkflowRun]) -> list[WorkflowRun]:
    """``runs`` with the record of each stage's latest attempt, read in one statement."""
    if not runs:
        return runs
    s = orm.stage_runs.c
    rows = conn.execute(select(s.run_uid, *_STAGE_COLUMNS).where(s.run_uid.in_([run.uid for run in runs]))).all()
    by_run: dict[str, list[Sequence[Any]]] = {}
    for row in rows:
        by_run.setdefault(row[0], []).append(row[1:])
    for run in runs:
        run.stages = _latest_attempts(by_run.get(run.uid, ()), raw_json=False)
    return runs


def get_run(conn: Connection, identifier: str) -> WorkflowRun:
    """One run (by uid, or else the newest by name) with the record of each stage's latest attempt.

    One statement: the run joined to its stage rows (the stage scan is what costs on DuckDB,
    where ``stage_runs`` has no index on ``run_uid``; see :mod:`~flowdapt.history.orm`).
    """
    rows, raw = _lookup(conn, identifier, stages=True)
    width = len(_RUN_COLUMNS)
    stages = [row[width:] for row in rows if row[width] is not None]
    return _run_from_values(rows[0][:width], _latest_attempts(stages, raw), raw_json=raw)


def stage_attempts(conn: Connection, identifier: str) -> list[StageAttempt]:
    """Every attempt of every stage of one run, in stage order."""
    uid = find_run_uid(conn, identifier)
    s = orm.stage_runs.c
    statement = (select(s.stage, s.attempt, s.type, s.state, s.started_at, s.finished_at, s.duration, s.error,
                        s.items_total, s.items_done, s.items_failed)
                 .where(s.run_uid == uid).order_by(s.position, s.attempt))
    return [StageAttempt(**{**row._mapping, "started_at": aware(row.started_at), "finished_at": aware(row.finished_at)})
            for row in conn.execute(statement)]


# -- statistics ----------------------------------------------------------------------------------------------
def _columns(conn: Connection, statement: Any) -> list[list[Any]]:
    """A result column by column (in the statement's order), as Python values.

    DuckDB hands the whole result over as NumPy arrays (one conversion per column instead of a
    Python object per value and a row object per row): thousands of rows (a year of days per
    workflow) must not pay a cursor call and a row mapping each.
    """
    result = conn.execute(statement)
    if conn.dialect.name == "duckdb":
        dates = [str(column[1]) == "DATE" for column in result.cursor.description]
        arrays = result.cursor.fetchnumpy()
        result.close()
        columns = []
        for array, is_date in zip(arrays.values(), dates):
            if is_date:  # DATE arrives as datetime64[us]; TIMESTAMP stays one
                array = array.astype("datetime64[D]")
            columns.append(array.tolist())  # masked (NULL) values become None
        return columns
    rows = result.all()
    return [[row[index] for row in rows] for index in range(len(result.keys()))]


# Statistics are validated as one list (one call into pydantic, not one ``__init__`` per row).
_DAILY = TypeAdapter(list[DailyWorkflowStats])
_STAGE_STATS = TypeAdapter(list[StageStats])


def daily_workflow_stats(conn: Connection, workflow: str | None = None, since: datetime | None = None,
                         until: datetime | None = None, *, source: str | None = None,
                         state: str | None = None) -> list[DailyWorkflowStats]:
    """Per workflow and UTC day: runs ended, successes, success rate, mean/p50/p95 duration (exact percentiles).

    A run counts on the day it started, once it has ended (any state but pending/running); runs
    that never started have no day and are not counted. ``source`` and ``state`` narrow the runs counted.
    """
    r = orm.runs.c
    # A run that never started (cancelled while queued) has no day to count on.
    clauses = [r.state.not_in(_NOT_ENDED), r.started_at.is_not(None), *_time_window(r.started_at, since, until)]
    for column, value in ((r.workflow, workflow), (r.source, source), (r.state, state)):
        if value is not None:
            clauses.append(column == value)
    bucket = day(r.started_at).label("day")
    statement = (
        select(r.workflow, bucket, func.count(), func.count().filter(r.state == "finished"),
               func.count().filter(r.state == "failed"), func.avg(r.duration), *percentiles(r.duration, _MEDIAN_P95))
        .where(*clauses).group_by(r.workflow, bucket).order_by(r.workflow, bucket)
    )
    return _DAILY.validate_python([
        {"workflow": name, "day": started_on, "runs": runs, "finished": finished, "failed": failed,
         "success_rate": finished / runs, "mean_duration": mean, "p50_duration": p50, "p95_duration": p95}
        for name, started_on, runs, finished, failed, mean, p50, p95 in zip(*_columns(conn, statement))
    ])


_BOX = (0.05, 0.25, 0.5, 0.75, 0.95)


def stage_stats(conn: Connection, workflow: str | None = None, since: datetime | None = None,
                until: datetime | None = None) -> list[StageStats]:
    """Per workflow and stage: attempts, failures, retries, failed items and the duration distribution
    (min, p5, p25, p50, p75, p95, max, mean; exact percentiles) of ended attempts, in stage order."""
    s = orm.stage_runs.c
    clauses = [s.state.in_(("finished", "failed")), *_time_window(s.started_at, since, until)]
    if workflow is not None:
        clauses.append(s.workflow == workflow)
    statement = (
        select(s.workflow, s.stage, func.count(), func.count().filter(s.state == "failed"),
               func.count().filter(s.attempt > 1), func.min(s.position), func.avg(s.duration), func.min(s.duration),
               *percentiles(s.duration, _BOX), func.max(s.duration),
               # BIGINT: DuckDB sums into a 128-bit integer, which NumPy would hand over as a float.
               cast(func.coalesce(func.sum(s.items_failed), 0), BigInteger()),
               cast(func.coalesce(func.sum(s.items_total), 0), BigInteger()))
        .where(*clauses).group_by(s.workflow, s.stage).order_by(s.workflow, func.min(s.position), s.stage)
    )
    return _STAGE_STATS.validate_python([
        {"workflow": name, "stage": stage, "attempts": attempts, "failed": failed, "retried": retried,
         "position": position, "mean_duration": mean, "min_duration": shortest, "p05_duration": p05,
         "p25_duration": p25, "p50_duration": p50, "p75_duration": p75, "p95_duration": p95,
         "max_duration": longest, "items_failed": items_failed, "items_total": items_total}
        for (name, stage, attempts, failed, retried, position, mean, shortest, p05, p25, p50, p75, p95, longest,
             items_failed, items_total) in zip(*_columns(conn, statement))
    ])


def trigger_firings(conn: Connection, trigger: str | None = None, since: datetime | None = None,
                    limit: int = 50, offset: int = 0) -> list[TriggerFiring]:
    """The trigger firing log, newest first."""
    t = orm.trigger_firings.c
    clauses = _time_window(t.fired_at, since, None)
    if trigger is not None:
        clauses.append(t.trigger == trigger)
    statement = (select(orm.trigger_firings).where(and_(True, *clauses))
                 .order_by(t.fired_at.desc(), t.id).limit(limit).offset(offset))
    return [TriggerFiring(**{**row._mapping, "fired_at": aware(row.fired_at), "scheduled_at": aware(row.scheduled_at)})
            for row in conn.execute(statement)]


# -- operations: logs, workflow versions -------------------------------------------------------------------
def run_logs(conn: Connection, identifier: str, *, stage: str | None = None, attempt: int | None = None,
             after: int = -1, limit: int = 10_000) -> list[LogLine]:
    """The lines one run's stages printed and logged, numbered in the order the run received them:
    those numbered after ``after``, of one stage (and attempt) when given, at most ``limit``."""
    uid = find_run_uid(conn, identifier)
    logs = orm.stage_logs.c
    clauses = [logs.run_uid == uid, logs.seq > after]
    if stage is not None:
        clauses.append(logs.stage == stage)
    if attempt is not None:
        clauses.append(logs.attempt == attempt)
    statement = (select(logs.seq, logs.stage, logs.attempt, logs.time, logs.stream, logs.level, logs.logger,
                        logs.message).where(*clauses).order_by(logs.seq).limit(limit))
    return [LogLine(seq=seq, stage=name, attempt=number, time=aware(when), stream=stream, level=level, logger=logger,
                    message=message)
            for seq, name, number, when, stream, level, logger, message in conn.execute(statement)]


def workflow_document(conn: Connection, version: str) -> dict[str, Any] | None:
    """The workflow document of a version runs recorded (``None`` if it was never recorded here)."""
    versions = orm.workflow_versions.c
    return conn.execute(select(versions.document).where(versions.version == version)).scalar()
