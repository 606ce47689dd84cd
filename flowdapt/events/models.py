"""Events: small records with an id, a time, a type and a source.

The engine emits the workflow events below; users publish :class:`Event` with their own ``type``.
Type strings follow Flowdapt (``com.event.workflow.workflow_finished``) so its condition triggers
keep matching. Engine events refer to live run records: a listener that keeps an event beyond the
call must copy what it needs (``event.to_dict()``).
"""

from __future__ import annotations

import itertools
import os
from time import time as _time
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
    """A unique 32-hex-digit id: a random per-process prefix and a counter."""
    return f"{_prefix}{next(_counter):012x}"


# The types the engine and the trigger service emit; their events drive run bookkeeping, so nobody
# else may publish them (``POST events`` refuses them).
ENGINE_TYPE_PREFIXES = ("com.event.workflow.", "com.event.trigger.")


class Event:
    """A user or system event. ``time`` is seconds since the epoch.

    A plain slotted class rather than a dataclass: the engine emits about twenty events per run
    and a stage's two events are most of what the history costs per stage, so construction is kept
    to a few slot stores. The id (a random per-process prefix and a counter) is formatted only
    when read: ``uuid4()`` (4.4 µs) or formatting every id (0.5 µs) would be most of an event's cost.
    """

    __slots__ = ("type", "source", "channel", "data", "time", "_id", "_prefix")

    def __init__(self, *, type: str = "com.event.custom", source: str = "user", channel: str = "events",
                 data: Any = None, id: str | None = None, time: float | None = None) -> None:
        self.type = type
        self.source = source
        self.channel = channel
        self.data = data
        self._id = next(_counter) if id is None else id
        self._prefix = _prefix
        self.time = _time() if time is None else time

    @property
    def id(self) -> str:
        value = self._id
        if value.__class__ is int:
            value = self._id = f"{self._prefix}{value:012x}"
        return value

    def to_dict(self) -> dict[str, Any]:
        """The event as plain data (what condition triggers evaluate)."""
        return {"id": self.id, "time": self.time, "type": self.type, "source": self.source,
                "channel": self.channel, "data": self.payload()}

    def payload(self) -> Any:
        return self.data

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} {self.type} id={self.id}>"


class RunEvent(Event):
    """Base of the engine's events about one run; ``type``, ``source`` and ``channel`` are per class."""

    __slots__ = ("run",)
    TYPE: ClassVar[str] = ""
    type = ""  # type: ignore[assignment] - a class constant shadowing Event's slot
    source = "compute"  # type: ignore[assignment]
    channel = "workflows"  # type: ignore[assignment]
    data = None

    def __init__(self, *, run: "WorkflowRun") -> None:
        self.run = run
        self._id = next(_counter)
        self._prefix = _prefix
        self.time = _time()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.type = cls.TYPE  # type: ignore[assignment]

    def payload(self) -> dict[str, Any]:
        run = self.run
        return {"uid": run.uid, "name": run.name, "workflow": run.workflow, "state": run.state,
                "source": run.source, "executor": run.executor, "namespace": run.namespace}


class RunStarted(RunEvent):
    __slots__ = ()
    TYPE: ClassVar[str] = "com.event.workflow.workflow_started"


class RunFinished(RunEvent):
    """A run reached a terminal state (finished, failed or cancelled)."""

    __slots__ = ()
    TYPE: ClassVar[str] = "com.event.workflow.workflow_finished"

    def payload(self) -> dict[str, Any]:
        data = RunEvent.payload(self)
        data["result"] = self.run.result
        data["error"] = self.run.error.model_dump() if self.run.error else None
        data["duration"] = self.run.duration
        return data


class StageEvent(RunEvent):
    __slots__ = ("stage",)

    def __init__(self, *, run: "WorkflowRun", stage: "StageRun") -> None:
        self.run = run
        self.stage = stage
        self._id = next(_counter)
        self._prefix = _prefix
        self.time = _time()

    def payload(self) -> dict[str, Any]:
        data = RunEvent.payload(self)
        data["stage"] = self.stage.model_dump(mode="json")
        return data


class StageStarted(StageEvent):
    __slots__ = ()
    TYPE: ClassVar[str] = "com.event.workflow.stage_started"


class StageFinished(StageEvent):
    """A stage finished, or was cancelled or skipped (see ``stage.state``)."""

    __slots__ = ()
    TYPE: ClassVar[str] = "com.event.workflow.stage_finished"


class StageFailed(StageEvent):
    __slots__ = ()
    TYPE: ClassVar[str] = "com.event.workflow.stage_failed"


class StageRetried(StageEvent):
    """An attempt failed and the stage will run again after ``delay`` seconds."""

    __slots__ = ("error", "delay")
    TYPE: ClassVar[str] = "com.event.workflow.stage_retried"

    def __init__(self, *, run: "WorkflowRun", stage: "StageRun", error: "ErrorInfo", delay: float = 0.0) -> None:
        StageEvent.__init__(self, run=run, stage=stage)
        self.error = error
        self.delay = delay


class ItemsProgress(StageEvent):
    """Progress of a parameterized stage: ``stage.items_done`` of ``stage.items_total``."""

    __slots__ = ()
    TYPE: ClassVar[str] = "com.event.workflow.stage_progress"
