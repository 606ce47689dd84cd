"""Events: small records with an id, a time, a type and a source.

The engine emits the workflow events below; users publish :class:`Event` with their own ``type``.
Type strings follow Flowdapt (``com.event.workflow.workflow_finished``) so its condition triggers
keep matching. Engine events refer to live run records: a listener that keeps an event beyond the
call must copy what it needs (``event.to_dict()``).
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import uuid4

if TYPE_CHECKING:
    from flowdapt.resources.models import ErrorInfo, StageRun, WorkflowRun


def _reseed() -> None:
    global _prefix, _counter
    _prefix = uuid4().hex[:20]
    _counter = itertools.count()


_reseed()
os.register_at_fork(after_in_child=_reseed)


def _new_id() -> str:
    """A unique 32-hex-digit id: a random per-process prefix and a counter.

    The engine emits about twenty events per run; ``uuid4()`` (4.4 µs) would be most of an event's cost.
    """
    return f"{_prefix}{next(_counter):012x}"


@dataclass(slots=True, kw_only=True)
class Event:
    """A user or system event. ``time`` is seconds since the epoch."""

    type: str = "com.event.custom"
    source: str = "user"
    channel: str = "events"
    data: Any = None
    id: str = field(default_factory=_new_id)
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """The event as plain data (what condition triggers evaluate)."""
        return {"id": self.id, "time": self.time, "type": self.type, "source": self.source,
                "channel": self.channel, "data": self.payload()}

    def payload(self) -> Any:
        return self.data


@dataclass(slots=True, kw_only=True)
class RunEvent(Event):
    """Base of the engine's events about one run."""

    TYPE: ClassVar[str] = ""
    run: "WorkflowRun"
    source: str = "compute"
    channel: str = "workflows"

    def __post_init__(self) -> None:
        self.type = self.TYPE

    def payload(self) -> dict[str, Any]:
        run = self.run
        return {"uid": run.uid, "name": run.name, "workflow": run.workflow, "state": run.state,
                "source": run.source, "executor": run.executor, "namespace": run.namespace}


@dataclass(slots=True, kw_only=True)
class RunStarted(RunEvent):
    TYPE: ClassVar[str] = "com.event.workflow.workflow_started"


@dataclass(slots=True, kw_only=True)
class RunFinished(RunEvent):
    """A run reached a terminal state (finished, failed or cancelled)."""

    TYPE: ClassVar[str] = "com.event.workflow.workflow_finished"

    def payload(self) -> dict[str, Any]:
        data = RunEvent.payload(self)
        data["result"] = self.run.result
        data["error"] = self.run.error.model_dump() if self.run.error else None
        data["duration"] = self.run.duration
        return data


@dataclass(slots=True, kw_only=True)
class StageEvent(RunEvent):
    stage: "StageRun"

    def payload(self) -> dict[str, Any]:
        data = RunEvent.payload(self)
        data["stage"] = self.stage.model_dump(mode="json")
        return data


@dataclass(slots=True, kw_only=True)
class StageStarted(StageEvent):
    TYPE: ClassVar[str] = "com.event.workflow.stage_started"


@dataclass(slots=True, kw_only=True)
class StageFinished(StageEvent):
    """A stage finished, or was cancelled or skipped (see ``stage.state``)."""

    TYPE: ClassVar[str] = "com.event.workflow.stage_finished"


@dataclass(slots=True, kw_only=True)
class StageFailed(StageEvent):
    TYPE: ClassVar[str] = "com.event.workflow.stage_failed"


@dataclass(slots=True, kw_only=True)
class StageRetried(StageEvent):
    """An attempt failed and the stage will run again after ``delay`` seconds."""

    TYPE: ClassVar[str] = "com.event.workflow.stage_retried"
    error: "ErrorInfo"
    delay: float = 0.0


@dataclass(slots=True, kw_only=True)
class ItemsProgress(StageEvent):
    """Progress of a parameterized stage: ``stage.items_done`` of ``stage.items_total``."""

    TYPE: ClassVar[str] = "com.event.workflow.stage_progress"
