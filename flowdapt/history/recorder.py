"""The event listener that turns engine events into history rows.

It runs in the runner's thread, so it only copies the fields it needs into plain dicts and hands
them to the writer; serialising and writing happen in the writer's thread. Every row it makes is
complete, so the writer can keep only the newest row per key.

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
Row = tuple[Any, dict[str, Any]]  # (table, complete row)
_STAGE_EVENTS = (StageStarted, StageFinished, StageFailed, StageRetried, ItemsProgress)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class HistoryRecorder:
    """Listener (``events.subscribe``) that sends one row per run, stage attempt and trigger firing.

    Parameters
    ----------
    put : receives ``(table, row)``; the writer's queue
    owner : ``host:pid`` recorded on runs, so a later start can tell crashed runs from live ones
    on_run : called with each live run on its start and finish (the writer tracks cancel requests)
    """

    def __init__(self, put: Callable[[Row], None], owner: str,
                 on_run: Callable[[WorkflowRun], None] | None = None) -> None:
        self.put = put
        self.owner = owner
        self.on_run = on_run
        self._attempt_started: dict[tuple[str, str], datetime] = {}

    def __call__(self, event: Event) -> None:
        kind = type(event)
        if kind in _STAGE_EVENTS:
            self.put((orm.stage_runs, self._stage_row(event, kind)))  # type: ignore[arg-type]
        elif kind is RunStarted or kind is RunFinished:
            self.put((orm.runs, self.run_row(event.run)))  # type: ignore[attr-defined]
            if self.on_run is not None:
                self.on_run(event.run)  # type: ignore[attr-defined]
        elif event.type == TRIGGER_FIRED:
            self.put((orm.trigger_firings, firing_row(event)))

    def run_row(self, run: WorkflowRun) -> dict[str, Any]:
        """The ``runs`` row of ``run`` as it stands now."""
        return {"uid": run.uid, "name": run.name, "workflow": run.workflow, "source": run.source,
                "state": run.state, "executor": run.executor, "namespace": run.namespace,
                "input": run.input, "result": run.result, "error": run.error,
                "started_at": run.started_at, "finished_at": run.finished_at, "duration": None,
                "owner": self.owner}

    def _stage_row(self, event: Any, kind: type) -> dict[str, Any]:
        run: WorkflowRun = event.run
        stage: StageRun = event.stage
        attempt = stage.attempts
        key = (run.uid, stage.name)
        state, finished_at = stage.state, stage.finished_at
        if attempt > 1:
            if kind is StageStarted:
                self._attempt_started[key] = _now()
            started_at = self._attempt_started.get(key, stage.started_at)
        else:
            started_at = stage.started_at
        if kind is StageRetried:
            state, finished_at = "failed", _now()  # this attempt failed; the next one gets its own row
        elif kind is not StageStarted and kind is not ItemsProgress and attempt > 1:
            self._attempt_started.pop(key, None)
        position = next(index for index, record in enumerate(run.stages) if record is stage)
        return {"id": f"{run.uid}:{stage.name}:{attempt}", "run_uid": run.uid, "workflow": run.workflow,
                "stage": stage.name, "position": position, "type": stage.type, "attempt": attempt,
                "state": state, "started_at": started_at, "finished_at": finished_at, "duration": None,
                "error": stage.error, "items_total": stage.items_total, "items_done": stage.items_done,
                "items_failed": stage.items_failed, "item_failures": stage.item_failures or None,
                "output_notebook": stage.output_notebook}


def firing_row(event: Event) -> dict[str, Any]:
    """The ``trigger_firings`` row of a :data:`TRIGGER_FIRED` event."""
    data = event.data if isinstance(event.data, dict) else {}
    return {"id": event.id, "trigger": str(data.get("trigger", "?")),
            "fired_at": datetime.fromtimestamp(event.time, timezone.utc), "action": str(data.get("action", "")),
            "run_uid": data.get("run_uid"), "ok": bool(data.get("ok", True)), "error": data.get("error")}
