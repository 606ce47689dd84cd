"""The event listener that turns engine events into history rows.

It runs in the emitting (runner's) thread and competes with it for the GIL, so for almost every
event it only queues a reference to the live record, ``(LIVE, record, run)``: the writer thread
reads the record's row when it writes the batch (:meth:`HistoryRecorder.live_rows`), after every
reference in the batch was queued, so the row is as new as the newest event or newer. A stage's
start and finish in one batch cost one row; a change made while the row is read has its event
queued after the read, so the next batch writes it. Rows that must keep a past state are
snapshotted at once and win over what a reference reads in the same batch: the failed attempt of
a retried stage, and every event of a later attempt (its own start time; the record keeps the first).

Trigger firings arrive as events of type :data:`TRIGGER_FIRED` whose ``data`` is
``{"trigger", "action", "run_uid", "ok", "error", "scheduled_for"}`` (the trigger service publishes them;
``scheduled_for`` is the schedule time fired, ISO 8601, absent for condition triggers).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from flowdapt.events.models import (
    Event,
    ItemsProgress,
    RunFinished,
    RunStarted,
    StageFailed,
    StageFinished,
    StageLogs,
    StageRetried,
    StageStarted,
)
from flowdapt.history import orm
from flowdapt.resources.models import StageRun, WorkflowRun

TRIGGER_FIRED = "com.event.trigger.trigger_fired"
_log = logging.getLogger("flowdapt.history")
READ_CHUNK = 2048  # stage records read between two hand-overs of the GIL (see _stage_columns_in_chunks)
LIVE = "live"  # queue marker: (LIVE, record, run), a live stage or run record whose row is read when written
Values = tuple[Any, ...]  # a complete row: values in column order, primary key first
LiveRef = tuple[str, "StageRun | WorkflowRun", WorkflowRun]
_STAGE_EVENTS = (StageStarted, StageFinished, StageFailed, StageRetried, ItemsProgress)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class HistoryRecorder:
    """Listener (``events.subscribe``) that sends one row per run, stage attempt and trigger firing.

    Parameters
    ----------
    put : the writer's queue; receives ``(table, values)`` rows and ``(LIVE, record, run)`` references
    owner : ``host:pid`` recorded on runs, so a later start can tell crashed runs from live ones
    on_run : called with each live run on its start and finish (the writer tracks cancel requests)
    queued : ids of the live records queued and not read yet (the writer empties it when it takes a
        batch, before reading): a record already waiting is not queued again, so a stage's start
        and finish usually cost one queued reference
    """

    def __init__(self, put: Callable[[Any], None], owner: str,
                 on_run: Callable[[WorkflowRun], None] | None = None, queued: set[int] | None = None) -> None:
        self.put = put
        self.owner = owner
        self.on_run = on_run
        self.queued: set[int] = set() if queued is None else queued
        self._attempt_started: dict[tuple[str, str], datetime] = {}
        self._versions: set[str] = set()  # workflow versions queued by this recorder

    def __call__(self, event: Event) -> None:
        kind = type(event)
        if kind in _STAGE_EVENTS:
            stage: StageRun = event.stage  # type: ignore[attr-defined]
            if stage.attempts > 1 or kind is StageRetried:
                self.put((orm.stage_runs, self._attempt_values(event.run, stage, kind)))  # type: ignore[attr-defined]
            else:
                self.queue_live(stage, event.run)  # type: ignore[attr-defined]
        elif kind is StageLogs:
            self.log_lines(event.run.uid, event.stage.name, event.attempt, event.first, event.lines)  # type: ignore[attr-defined]
        elif kind is RunStarted or kind is RunFinished:
            run: WorkflowRun = event.run  # type: ignore[attr-defined]
            self.queue_live(run, run)
            if kind is RunStarted and run.workflow_version not in self._versions and run.definition is not None:
                self.workflow_version(run.workflow_version, run.definition.to_document())  # type: ignore[arg-type]
            if self.on_run is not None:
                self.on_run(run)
        elif event.type == TRIGGER_FIRED:
            self.put((orm.trigger_firings, orm.row_values(orm.trigger_firings, firing_row(event))))

    def log_lines(self, run_uid: str, stage: str, attempt: int, first: int, lines: Iterable[Any]) -> None:
        """Queue ``stage_logs`` rows: ``lines`` are ``(time, stream, level, logger, message)``, numbered from ``first``."""
        put, table = self.put, orm.stage_logs
        for seq, (when, stream, level, logger, message) in enumerate(lines, first):
            put((table, (f"{run_uid}:{seq}", run_uid, seq, stage, attempt,
                         datetime.fromtimestamp(when, timezone.utc), stream, level, logger, message)))

    def workflow_version(self, version: str | None, document: dict[str, Any]) -> None:
        """Queue the document of a workflow version a run ran (once per version)."""
        if version and version not in self._versions:
            self._versions.add(version)
            self.put((orm.workflow_versions, (version, document["metadata"]["name"], document, _now())))

    def queue_live(self, record: StageRun | WorkflowRun, run: WorkflowRun) -> None:
        """Have the writer read ``record``'s row (``record`` is ``run`` for the run's own row)."""
        key = id(record)
        if key not in self.queued:  # a waiting reference will be read after this change: enough
            self.queued.add(key)
            self.put((LIVE, record, run))

    def live_rows(self, refs: Iterable[LiveRef]) -> tuple[list[Values], dict[str, list[Any]]]:
        """The rows of live records as they stand now: ``runs`` rows, and ``stage_runs`` rows column by
        column (one list per column but ``duration``: no tuple per row, the writer's hot path).

        The writer thread calls this once per batch; a record that cannot be read is logged and left out.
        """
        run_rows: list[Values] = []
        stages: list[StageRun] = []
        stage_runs: list[WorkflowRun] = []
        for _, record, run in refs:
            if record is run:
                try:
                    run_rows.append(self.run_values(run))
                except Exception:  # noqa: BLE001 - one bad record must not cost the batch its other rows
                    _log.exception("could not read the history row of run %s", getattr(run, "uid", "?"))
            else:
                stages.append(record)  # type: ignore[arg-type]
                stage_runs.append(run)
        try:
            columns = _stage_columns_in_chunks(stages, stage_runs)
        except Exception:  # noqa: BLE001 - find the bad record by reading them one by one
            readable = [(stage, run) for stage, run in zip(stages, stage_runs) if _readable(stage, run)]
            columns = _stage_columns([stage for stage, _ in readable], [run for _, run in readable])
        return run_rows, columns

    def snapshot(self, run: WorkflowRun) -> None:
        """Queue ``run``'s row and the current attempt of each stage that started, as they are now: for a
        run another process runs and reports, whose copies replace each other (newest row per key)."""
        self.put((orm.runs, self.run_values(run)))
        started = [stage for stage in run.stages if stage.attempts]
        if started:
            columns = _stage_columns(started, [run] * len(started))
            for index in range(len(started)):
                row = {name: values[index] for name, values in columns.items()}
                self.put((orm.stage_runs, orm.row_values(orm.stage_runs, {**row, "duration": None})))

    def run_values(self, run: WorkflowRun) -> Values:
        """The ``runs`` row of ``run`` as it stands now, in column order (duration is the writer's)."""
        return (run.uid, run.name, run.workflow, run.source, run.state, run.executor, run.namespace,
                run.input, run.result, run.error, run.started_at, run.finished_at, None, self.owner,
                run.workflow_version, run.logical_time, run.rerun_of, run.resumed_from)

    def _attempt_values(self, run: WorkflowRun, stage: StageRun, kind: type) -> Values:
        """A snapshot of the current attempt's row, with that attempt's own start time."""
        attempt = stage.attempts
        state, started_at, finished_at = stage.state, stage.started_at, stage.finished_at
        if attempt > 1:
            key = (run.uid, stage.name)
            if kind is StageStarted:
                self._attempt_started[key] = _now()
            started_at = self._attempt_started.get(key, started_at)
            if kind is not StageStarted and kind is not ItemsProgress and kind is not StageRetried:
                self._attempt_started.pop(key, None)
        if kind is StageRetried:
            state, finished_at = "failed", _now()  # this attempt failed; the next one gets its own row
        row = {name: values[0] for name, values in _stage_columns([stage], [run]).items()}
        row.update(state=state, started_at=started_at, finished_at=finished_at, duration=None)
        return orm.row_values(orm.stage_runs, row)


def _stage_columns(stages: list[StageRun], runs: list[WorkflowRun]) -> dict[str, list[Any]]:
    """The ``stage_runs`` rows of stage records (``runs[i]`` holds ``stages[i]``) as columns."""
    positions: dict[str, dict[int, int]] = {}  # run uid -> {id(stage record): position}
    for run in runs:
        if run.uid not in positions:
            positions[run.uid] = {id(stage): number for number, stage in enumerate(run.stages)}
    uids = [run.uid for run in runs]
    names = [stage.name for stage in stages]
    attempts = [stage.attempts for stage in stages]
    return {
        "id": [f"{uid}:{name}:{attempt}" for uid, name, attempt in zip(uids, names, attempts)],
        "run_uid": uids, "workflow": [run.workflow for run in runs], "stage": names,
        "position": [positions[uid][id(stage)] for uid, stage in zip(uids, stages)],
        "type": [stage.type for stage in stages], "attempt": attempts, "state": [stage.state for stage in stages],
        "started_at": [stage.started_at for stage in stages], "finished_at": [stage.finished_at for stage in stages],
        "error": [stage.error for stage in stages], "items_total": [stage.items_total for stage in stages],
        "items_done": [stage.items_done for stage in stages], "items_failed": [stage.items_failed for stage in stages],
        "item_failures": [list(stage.item_failures) if stage.item_failures else None for stage in stages],
        "output_notebook": [stage.output_notebook for stage in stages],
        "cached_from": [stage.cached_from for stage in stages],
    }


def _stage_columns_in_chunks(stages: list[StageRun], runs: list[WorkflowRun]) -> dict[str, list[Any]]:
    """:func:`_stage_columns`, :data:`READ_CHUNK` records at a time, handing the GIL over between chunks:
    the writer's committing thread, back from a DuckDB call, takes it then instead of after the
    interpreter's 5 ms switch interval (as :func:`flowdapt.history.bulk.to_arrow` does between columns)."""
    columns = _stage_columns(stages[:READ_CHUNK], runs[:READ_CHUNK])
    for start in range(READ_CHUNK, len(stages), READ_CHUNK):
        time.sleep(0)
        for name, values in _stage_columns(stages[start:start + READ_CHUNK], runs[start:start + READ_CHUNK]).items():
            columns[name].extend(values)
    return columns


def _readable(stage: StageRun, run: WorkflowRun) -> bool:
    try:
        _stage_columns([stage], [run])
    except Exception:  # noqa: BLE001 - logged and left out of the batch
        _log.exception("could not read the history row of stage %s of run %s", getattr(stage, "name", "?"),
                       getattr(run, "uid", "?"))
        return False
    return True


def firing_row(event: Event) -> dict[str, Any]:
    """The ``trigger_firings`` row of a :data:`TRIGGER_FIRED` event."""
    data = event.data if isinstance(event.data, dict) else {}
    return {"id": event.id, "trigger": str(data.get("trigger", "?")),
            "fired_at": datetime.fromtimestamp(event.time, timezone.utc), "action": str(data.get("action", "")),
            "run_uid": data.get("run_uid"), "ok": bool(data.get("ok", True)), "error": data.get("error"),
            "scheduled_at": _timestamp(data.get("scheduled_for"))}


def _timestamp(text: Any) -> datetime | None:
    """An ISO 8601 time from an event's data; ``None`` when absent or not a time."""
    try:
        return datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None
