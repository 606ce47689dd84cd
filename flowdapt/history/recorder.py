"""The event listener that turns engine events into history rows.

It runs in the emitting (runner's) thread and competes with it for the GIL, so it only snapshots
the fields it needs into one tuple per event, in the table's column order, and queues it: no
dicts, no serialising, no timestamp conversion (the writer thread does those for a whole batch
at once). Every row it makes is complete, so the writer can keep only the newest row per key.

Trigger firings arrive as events of type :data:`TRIGGER_FIRED` whose ``data`` is
``{"trigger", "action", "run_uid", "ok", "error"}`` (the trigger service publishes them).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

from flowdapt.events.models import (
    Event,
    ItemsProgress,
    RunFinished,
    RunStarted,
    StageFailed,
    StageFinished,
    StageRetried,
    StageStarted,
)
from flowdapt.history import orm
from flowdapt.resources.models import StageRun, WorkflowRun

TRIGGER_FIRED = "com.event.trigger.trigger_fired"
Row = tuple[Any, tuple[Any, ...]]  # (table, complete row: values in column order, primary key first)
_STAGE_EVENTS = (StageStarted, StageFinished, StageFailed, StageRetried, ItemsProgress)
RUN_COLUMNS = tuple(column.name for column in orm.runs.columns)
_NO_POSITIONS: dict[int, int] = {}


def _now() -> datetime:
    return datetime.now(timezone.utc)


class HistoryRecorder:
    """Listener (``events.subscribe``) that sends one row per run, stage attempt and trigger firing.

    Parameters
    ----------
    put : receives ``(table, values)``; the writer's queue
    owner : ``host:pid`` recorded on runs, so a later start can tell crashed runs from live ones
    on_run : called with each live run on its start and finish (the writer tracks cancel requests)
    """

    def __init__(self, put: Callable[[Row], None], owner: str,
                 on_run: Callable[[WorkflowRun], None] | None = None) -> None:
        self.put = put
        self.owner = owner
        self.on_run = on_run
        self._attempt_started: dict[tuple[str, str], datetime] = {}
        self._positions: dict[str, dict[int, int]] = {}  # run uid -> {id(stage record): position}

    def __call__(self, event: Event) -> None:
        kind = type(event)
        if kind in _STAGE_EVENTS:
            self.put((orm.stage_runs, self._stage_values(event, kind)))  # type: ignore[arg-type]
        elif kind is RunStarted or kind is RunFinished:
            run: WorkflowRun = event.run  # type: ignore[attr-defined]
            self.put((orm.runs, self.run_values(run)))
            if kind is RunFinished:
                self._positions.pop(run.uid, None)
            if self.on_run is not None:
                self.on_run(run)
        elif event.type == TRIGGER_FIRED:
            self.put((orm.trigger_firings, orm.row_values(orm.trigger_firings, firing_row(event))))

    def run_values(self, run: WorkflowRun) -> tuple[Any, ...]:
        """The ``runs`` row of ``run`` as it stands now, in column order (duration is the writer's)."""
        return (run.uid, run.name, run.workflow, run.source, run.state, run.executor, run.namespace,
                run.input, run.result, run.error, run.started_at, run.finished_at, None, self.owner)

    def run_row(self, run: WorkflowRun) -> dict[str, Any]:
        """The ``runs`` row of ``run`` as it stands now, by column name."""
        return dict(zip(RUN_COLUMNS, self.run_values(run)))

    def _stage_values(self, event: Any, kind: type) -> tuple[Any, ...]:
        run: WorkflowRun = event.run
        stage: StageRun = event.stage
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
        position = self._positions.get(run.uid, _NO_POSITIONS).get(id(stage))
        if position is None:  # once per run, instead of a search of run.stages per event
            positions = self._positions[run.uid] = {id(record): index for index, record in enumerate(run.stages)}
            position = positions[id(stage)]
        failures = stage.item_failures
        return (f"{run.uid}:{stage.name}:{attempt}", run.uid, run.workflow, stage.name, position,
                stage.type, attempt, state, started_at, finished_at, None, stage.error, stage.items_total,
                stage.items_done, stage.items_failed, list(failures) if failures else None, stage.output_notebook)


def firing_row(event: Event) -> dict[str, Any]:
    """The ``trigger_firings`` row of a :data:`TRIGGER_FIRED` event."""
    data = event.data if isinstance(event.data, dict) else {}
    return {"id": event.id, "trigger": str(data.get("trigger", "?")),
            "fired_at": datetime.fromtimestamp(event.time, timezone.utc), "action": str(data.get("action", "")),
            "run_uid": data.get("run_uid"), "ok": bool(data.get("ok", True)), "error": data.get("error")}
