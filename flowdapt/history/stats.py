"""The run-history dashboard's statistics, aggregated by the database (SQLAlchemy Core).

Every function takes a connection and a filter model from :mod:`~flowdapt.history.models` and
answers wire models; the same SQL runs on DuckDB, SQLite and PostgreSQL (the few functions that
differ are compiled per database in :mod:`~flowdapt.history.sqlfuncs`). Only aggregates and short
lists leave the database: counts per bucket, percentiles, the top error groups, never the runs
themselves. :class:`HistoryStats` runs them on an open :class:`~flowdapt.history.store.HistoryStore`
(the REST API's ``stats/`` routes and the dashboard without a server); :data:`VIEWS` names them.

Time filters (``since``/``until``) apply to a run's or attempt's start, so runs that never started
(cancelled while queued) appear only without a time filter. All times are UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, get_args

from pydantic import BaseModel, ConfigDict, TypeAdapter
from sqlalchemy import Connection, Integer, and_, case, cast, func, select, true

from flowdapt.history import orm, queries
from flowdapt.history.bulk import naive_utc
from flowdapt.history.models import (
    ActiveRun,
    DailyWorkflowStats,
    ErrorGroup,
    FiringRecord,
    HistoryFilter,
    HistoryVersion,
    ItemFailureCount,
    MissedFiring,
    PunctualityQuery,
    PunctualityReport,
    RunBucket,
    RunSummary,
    StageStats,
    TimelineQuery,
    TopQuery,
    TriggerPunctuality,
    WorkflowSummary,
)
from flowdapt.history.queries import _columns, aware
from flowdapt.history.sqlfuncs import json_array_items, json_text, percentiles, seconds_between, time_bucket
from flowdapt.resources.models import RunState, TriggerRule

STATES: tuple[str, ...] = get_args(RunState)
ACTIVE = ("pending", "running")
ERROR_STATES = ("failed", "interrupted")
MEDIAN_P95 = (0.5, 0.95)
MISSED_AFTER = timedelta(seconds=60)  # a schedule time with no firing this long after it counts as missed
MISSED_CHECKED = 200  # newest schedule times checked per trigger for missed firings (a croniter step each)
ACTIVE_LIMIT = 200


def run_clauses(query: HistoryFilter, *, state: bool = True, window: bool = True) -> list[Any]:
    """The WHERE clauses on ``runs`` for a filter (without its state or time window if asked)."""
    r = orm.runs.c
    clauses = [r[name] == getattr(query, name) for name in ("workflow", "source", "state")
               if getattr(query, name) is not None and (state or name != "state")]
    if window:
        clauses += _window(r.started_at, query.since, query.until)
    return clauses


def _window(column: Any, since: datetime | None, until: datetime | None) -> list[Any]:
    clauses = []
    if since is not None:
        clauses.append(column >= naive_utc(since))
    if until is not None:
        clauses.append(column < naive_utc(until))
    return clauses


def _ended_duration() -> Any:
    r = orm.runs.c
    return case((r.state.not_in(ACTIVE), r.duration))


# -- runs -----------------------------------------------------------------------------------------------------
_BUCKETS = TypeAdapter(list[RunBucket])


def run_timeline(conn: Connection, query: TimelineQuery) -> list[RunBucket]:
    """Runs per (hour or day of their start, state), oldest bucket first."""
    r = orm.runs.c
    bucket = time_bucket(r.started_at, query.bucket).label("start")
    statement = (select(bucket, r.state, func.count())
                 .where(r.started_at.is_not(None), *run_clauses(query))
                 .group_by(bucket, r.state).order_by(bucket, r.state))
    return _BUCKETS.validate_python([{"start": aware(start), "state": state, "runs": runs}
                                     for start, state, runs in zip(*_columns(conn, statement))])


def run_summary(conn: Connection, query: HistoryFilter) -> RunSummary:
    """Counts by state, success rate (finished of ended) and duration percentiles of ended runs, in one pass."""
    r = orm.runs.c
    duration = _ended_duration()
    statement = select(func.count(), *(func.count().filter(r.state == state) for state in STATES),
                       func.avg(duration), *percentiles(duration, MEDIAN_P95)).where(*run_clauses(query))
    total, *counts, mean, p50, p95 = conn.execute(statement).one()
    states = dict(zip(STATES, counts))
    ended = total - sum(states[state] for state in ACTIVE)
    return RunSummary(runs=total, states=states, ended=ended, finished=states["finished"], failed=states["failed"],
                      success_rate=states["finished"] / ended if ended else None, mean_duration=mean,
                      p50_duration=p50, p95_duration=p95)


_WORKFLOWS = TypeAdapter(list[WorkflowSummary])


def workflow_summary(conn: Connection, query: HistoryFilter) -> list[WorkflowSummary]:
    """Per workflow: runs, ended, finished, failed, active, success rate, duration percentiles, latest start."""
    r = orm.runs.c
    duration = _ended_duration()
    statement = (
        select(r.workflow, func.count(), func.count().filter(r.state.not_in(ACTIVE)),
               func.count().filter(r.state == "finished"), func.count().filter(r.state == "failed"),
               func.avg(duration), *percentiles(duration, MEDIAN_P95), func.max(r.started_at))
        .where(*run_clauses(query)).group_by(r.workflow).order_by(r.workflow)
    )
    return _WORKFLOWS.validate_python([
        {"workflow": name, "runs": runs, "ended": ended, "finished": finished, "failed": failed,
         "active": runs - ended, "success_rate": finished / ended if ended else None, "mean_duration": mean,
         "p50_duration": p50, "p95_duration": p95, "last_started_at": aware(last)}
        for name, runs, ended, finished, failed, mean, p50, p95, last in zip(*_columns(conn, statement))
    ])


def daily_stats(conn: Connection, query: HistoryFilter) -> list[DailyWorkflowStats]:
    """Per workflow and UTC day: success rate and duration percentiles (see :func:`queries.daily_workflow_stats`)."""
    return queries.daily_workflow_stats(conn, query.workflow, query.since, query.until, source=query.source,
                                        state=query.state)


_ERRORS = TypeAdapter(list[ErrorGroup])


def error_groups(conn: Connection, query: TopQuery) -> list[ErrorGroup]:
    """Failed and interrupted runs grouped by error type and message, most frequent first, each with its
    latest run (by end time; the smallest uid among runs that ended at the same instant).

    The error JSON is read once per run (a CTE); the groups are counted, the top ``limit`` kept, and
    only their runs are looked at again for the latest one (cheaper than ranking every run by window);
    the latest runs' names come by key.
    """
    r = orm.runs.c
    errors = (select(r.uid, r.finished_at.label("at"), json_text(r.error, "type").label("type"),
                     json_text(r.error, "message").label("message"))
              .where(r.error.is_not(None), r.state.in_(ERROR_STATES), *run_clauses(query)).cte("errors"))
    e = errors.c
    top = (select(e.type, e.message, func.count().label("runs"), func.max(e.at).label("last"))
           .group_by(e.type, e.message).order_by(func.count().desc(), func.max(e.at).desc().nulls_last())
           .limit(query.limit).subquery("top"))
    same = and_(e.type.is_not_distinct_from(top.c.type), e.message.is_not_distinct_from(top.c.message),
                e.at.is_not_distinct_from(top.c.last))
    groups = conn.execute(select(top.c.type, top.c.message, top.c.runs, top.c.last, func.min(e.uid))
                          .select_from(top.join(errors, same))
                          .group_by(top.c.type, top.c.message, top.c.runs, top.c.last)
                          .order_by(top.c.runs.desc(), top.c.last.desc().nulls_last(), func.min(e.uid))).all()
    # The latest runs' names in a second statement: a key lookup, where a join would scan the runs again.
    latest = {uid: (name, workflow, stage) for uid, name, workflow, stage in conn.execute(
        select(r.uid, r.name, r.workflow, json_text(r.error, "stage")).where(r.uid.in_([row[4] for row in groups])))}
    return _ERRORS.validate_python([
        {"type": kind, "message": message, "runs": runs, "last_at": aware(at), "last_run_uid": uid,
         "last_run_name": latest[uid][0], "last_workflow": latest[uid][1], "stage": latest[uid][2]}
        for kind, message, runs, at, uid in groups
    ])


_ACTIVE = TypeAdapter(list[ActiveRun])


def active_runs(conn: Connection, query: HistoryFilter) -> list[ActiveRun]:
    """Runs queued or running now (of the filter's workflow and source), queued first, then newest start."""
    r = orm.runs.c
    statement = (select(r.uid, r.name, r.workflow, r.state, r.source, r.executor, r.started_at)
                 .where(r.state.in_(ACTIVE), *run_clauses(query, state=False, window=False))
                 .order_by(r.started_at.desc().nulls_first(), r.uid).limit(ACTIVE_LIMIT))
    return _ACTIVE.validate_python([{**row._mapping, "started_at": aware(row.started_at)}
                                    for row in conn.execute(statement)])


# -- stages ---------------------------------------------------------------------------------------------------
def stage_stats(conn: Connection, query: HistoryFilter) -> list[StageStats]:
    """Per stage: the duration distribution, failures and retries of ended attempts started in the window.

    Stage rows carry their workflow, not their run's state or source: the workflow and time window
    apply, the run state and source filters do not (joining ten stage rows per run to their runs
    would cost more than the statistic itself).
    """
    return queries.stage_stats(conn, query.workflow, query.since, query.until)


_ITEMS = TypeAdapter(list[ItemFailureCount])


def item_failures(conn: Connection, query: TopQuery) -> list[ItemFailureCount]:
    """Per parameterized stage and item index: how many attempts that item failed in, most first, with the
    latest failure's type, message and run. Only attempts with failed items are expanded (workflow and
    time window apply, as for :func:`stage_stats`)."""
    s = orm.stage_runs.c
    item = json_array_items(s.item_failures, conn.dialect.name)
    clauses = [s.items_failed > 0, s.item_failures.is_not(None), *_window(s.started_at, query.since, query.until)]
    if query.workflow is not None:
        clauses.append(s.workflow == query.workflow)
    failures = (select(s.workflow, s.stage, s.run_uid, s.started_at,
                       cast(json_text(item.c.value, "index"), Integer).label("item"),
                       json_text(item.c.value, "type").label("type"), json_text(item.c.value, "message").label("message"))
                .select_from(orm.stage_runs.join(item, true())).where(*clauses).cte("failures"))
    group = (failures.c.workflow, failures.c.stage, failures.c.item)
    ranked = select(failures, func.count().over(partition_by=group).label("failures"), func.row_number().over(
        partition_by=group, order_by=(failures.c.started_at.desc().nulls_last(), failures.c.run_uid)).label("rank")
    ).subquery()
    c = ranked.c
    statement = (select(c.workflow, c.stage, c.item, c.failures, c.started_at, c.run_uid, c.type, c.message)
                 .where(c.rank == 1).order_by(c.failures.desc(), c.workflow, c.stage, c.item).limit(query.limit))
    return _ITEMS.validate_python([
        {"workflow": workflow, "stage": stage, "item": index, "failures": count, "last_at": aware(at),
         "last_run_uid": run_uid, "type": kind, "message": message}
        for workflow, stage, index, count, at, run_uid, kind, message in conn.execute(statement)
    ])


# -- triggers -------------------------------------------------------------------------------------------------
def trigger_punctuality(conn: Connection, query: PunctualityQuery, triggers: list[TriggerRule],
                        now: datetime | None = None) -> PunctualityReport:
    """Per trigger: firings, failures, lateness percentiles (SQL), late and missed schedule times; the newest
    firings with their lateness; the missed schedule times.

    A firing is late when it fired more than ``late_after`` seconds after its schedule time. A schedule
    time is missed when an enabled schedule trigger had it due (after the trigger's last change, in the
    window, at least :data:`MISSED_AFTER` ago) and no firing was for it; the newest
    :data:`MISSED_CHECKED` due times of each trigger are checked.
    """
    now = now or datetime.now(timezone.utc)
    t = orm.trigger_firings.c
    lateness = seconds_between(t.fired_at, t.scheduled_at)
    clauses = _window(t.fired_at, query.since, query.until)
    if query.trigger is not None:
        clauses.append(t.trigger == query.trigger)
    per_trigger = (select(t.trigger, func.count(), func.count().filter(t.ok.is_(False)),
                          func.count().filter(lateness > query.late_after), *percentiles(lateness, MEDIAN_P95),
                          func.max(lateness), func.max(t.fired_at))
                   .where(*clauses).group_by(t.trigger).order_by(t.trigger))
    summaries = {name: TriggerPunctuality(trigger=name, firings=firings, failed=failed, late=late, missed=0,
                                          p50_lateness=p50, p95_lateness=p95, max_lateness=longest,
                                          last_fired_at=aware(last))
                 for name, firings, failed, late, p50, p95, longest, last in conn.execute(per_trigger)}
    newest = select(orm.trigger_firings).where(*clauses).order_by(t.fired_at.desc(), t.id).limit(query.limit)
    firings = [_firing_record(row, query.late_after) for row in conn.execute(newest)]
    missed = _missed_times(conn, query, [trigger for trigger in triggers if _scheduled(trigger, query)], now)
    for miss in missed:
        summary = summaries.setdefault(miss.trigger, TriggerPunctuality(
            trigger=miss.trigger, firings=0, failed=0, late=0, missed=0, p50_lateness=None, p95_lateness=None,
            max_lateness=None, last_fired_at=None))
        summary.missed += 1
    return PunctualityReport(late_after=query.late_after, missed_checked=MISSED_CHECKED,
                             triggers=sorted(summaries.values(), key=lambda s: s.trigger), firings=firings, missed=missed)


def _firing_record(row: Any, late_after: float) -> FiringRecord:
    fired, scheduled = aware(row.fired_at), aware(row.scheduled_at)
    lateness = (fired - scheduled).total_seconds() if scheduled is not None else None
    return FiringRecord(**{**row._mapping, "fired_at": fired, "scheduled_at": scheduled, "lateness": lateness,
                           "late": lateness is not None and lateness > late_after})


def _scheduled(trigger: TriggerRule, query: PunctualityQuery) -> bool:
    return (trigger.spec.type == "schedule" and trigger.spec.enabled
            and query.trigger in (None, trigger.name, trigger.uid))


def _missed_times(conn: Connection, query: PunctualityQuery, schedules: list[TriggerRule],
                  now: datetime) -> list[MissedFiring]:
    """Due times of ``schedules`` without a firing; the firings' schedule times are read in one statement."""
    from flowdapt.triggers.schedule import due_times_before

    due: dict[str, list[datetime]] = {}
    for trigger in schedules:
        start, end = aware(trigger.metadata.updated_at), now - MISSED_AFTER
        if query.since is not None:
            start = max(start, query.since)
        if query.until is not None:
            end = min(end, query.until)
        if start < end:
            times = due_times_before(list(trigger.spec.rule), end, start, trigger.spec.timezone, MISSED_CHECKED)
            if times:
                due[trigger.name] = times
    if not due:
        return []
    t = orm.trigger_firings.c
    fired = conn.execute(select(t.trigger, t.scheduled_at).where(
        t.trigger.in_(list(due)), t.scheduled_at >= naive_utc(min(times[-1] for times in due.values())),
        t.scheduled_at <= naive_utc(max(times[0] for times in due.values()))))
    seen = {(name, round((when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when).timestamp()))
            for name, when in fired}
    missed = [MissedFiring(trigger=name, scheduled_at=when.astimezone(timezone.utc))
              for name, times in due.items() for when in times if (name, round(when.timestamp())) not in seen]
    missed.sort(key=lambda miss: miss.scheduled_at, reverse=True)
    return missed


# -- changes --------------------------------------------------------------------------------------------------
def history_version(conn: Connection) -> HistoryVersion:
    """Counts and newest times of runs and firings: equal answers mean nothing the dashboard shows changed."""
    r, t = orm.runs.c, orm.trigger_firings.c
    runs, started, finished = conn.execute(select(func.count(), func.max(r.started_at), func.max(r.finished_at))).one()
    firings, fired = conn.execute(select(func.count(), func.max(t.fired_at))).one()
    return HistoryVersion(runs=runs, last_started_at=aware(started), last_finished_at=aware(finished),
                          firings=firings, last_fired_at=aware(fired))


# -- the views, by name ---------------------------------------------------------------------------------------
class NoQuery(BaseModel):
    """A statistic without parameters."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class StatsView:
    """One statistic: its query model, its answer type, what it shows (``GET stats/{name}``)."""

    query: type[BaseModel]
    answer: Any
    summary: str

    @cached_property
    def adapter(self) -> TypeAdapter:
        """Validates and dumps answers (``adapter.dump_python(answer, mode="json")`` is the wire form)."""
        return TypeAdapter(self.answer)


VIEWS: dict[str, StatsView] = {
    "timeline": StatsView(TimelineQuery, list[RunBucket], "Runs per hour or day of their start, by state"),
    "summary": StatsView(HistoryFilter, RunSummary, "Run counts by state, success rate, p50/p95 duration"),
    "workflows": StatsView(HistoryFilter, list[WorkflowSummary], "Per workflow: runs, success rate, p50/p95 duration"),
    "daily": StatsView(HistoryFilter, list[DailyWorkflowStats], "Per workflow and day: success rate, p50/p95 duration"),
    "errors": StatsView(TopQuery, list[ErrorGroup], "The most frequent errors (type and message) with their latest run"),
    "active": StatsView(HistoryFilter, list[ActiveRun], "Runs queued or running now"),
    "stages": StatsView(HistoryFilter, list[StageStats], "Per stage: duration distribution, failures, retries"),
    "items": StatsView(TopQuery, list[ItemFailureCount], "Per item of parameterized stages: how often it failed"),
    "triggers": StatsView(PunctualityQuery, PunctualityReport,
                          "Trigger firings with lateness; late and missed schedule times"),
    "version": StatsView(NoQuery, HistoryVersion, "Changes when runs start, end or are deleted, or triggers fire"),
}


class HistoryStats:
    """The :data:`VIEWS` over an open history store; :meth:`answer` runs one by name.

    Parameters
    ----------
    store : an open :class:`~flowdapt.history.store.HistoryStore` (its resources give the triggers' schedules)
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self._queries: dict[str, Callable[[Connection, Any], Any]] = {
            "timeline": run_timeline, "summary": run_summary, "workflows": workflow_summary, "daily": daily_stats,
            "errors": error_groups, "active": active_runs, "stages": stage_stats, "items": item_failures,
            "triggers": self._punctuality, "version": lambda conn, _query: history_version(conn),
        }

    def answer(self, view: str, query: BaseModel | None = None, **params: Any) -> Any:
        """The answer of view ``view`` for ``query`` (or the query built from ``params``)."""
        query = query if query is not None else VIEWS[view].query.model_validate(params)
        with self.store.engine.connect() as conn:
            return self._queries[view](conn, query)

    def _punctuality(self, conn: Connection, query: PunctualityQuery) -> PunctualityReport:
        return trigger_punctuality(conn, query, self.store.list("trigger_rule"))
