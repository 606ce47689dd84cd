"""The run context a stage sees through :func:`get_run_context`."""

from __future__ import annotations

import threading
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Identity of the run a stage belongs to."""

    uid: str
    name: str
    workflow: str
    logical_time: str | None = None  # the schedule time a run is for (ISO 8601; scheduled and backfilled runs)


@dataclass(slots=True)
class RunContext:
    """What a stage knows about its run.

    Attributes
    ----------
    input : the run input (always reachable, also from non-root stages)
    config : merged ``data`` of the config resources selecting this workflow
    namespace : object-store namespace of the run
    run : name, uid and workflow of the run
    executor : kind of executor running the stage (``local``, ``dask``, ``ray``)
    stage : name of the stage being executed, when inside a stage
    cancel_event : set once the run is cancelled (the runner's; None in worker processes, where
        :meth:`is_cancelled` is always False)
    attempt : which attempt of the stage this is (1, then 2, ... on retries)
    logical_time : the schedule time the run is for (a datetime; None unless a schedule or a backfill
        started the run)
    """

    input: dict[str, Any]
    config: dict[str, Any]
    namespace: str
    run: RunInfo
    executor: str
    stage: str | None = None
    cancel_event: threading.Event | None = field(default=None, repr=False, compare=False)
    attempt: int = 1

    def is_cancelled(self) -> bool:
        """True once the run was cancelled (threads only; a stage may poll this to stop early)."""
        return self.cancel_event is not None and self.cancel_event.is_set()

    @property
    def logical_time(self) -> datetime | None:
        return datetime.fromisoformat(self.run.logical_time) if self.run.logical_time else None

    def __getstate__(self):
        return (self.input, self.config, self.namespace, self.run, self.executor, self.stage, self.attempt)

    def __setstate__(self, state) -> None:
        self.input, self.config, self.namespace, self.run, self.executor, self.stage, self.attempt = state
        self.cancel_event = None  # an Event does not cross processes


_current: ContextVar[RunContext | None] = ContextVar("flowdapt_run_context", default=None)


def get_run_context() -> RunContext:
    """The context of the run whose stage is executing now.

    Raises ``RuntimeError`` outside a stage.
    """
    context = _current.get()
    if context is None:
        raise RuntimeError("get_run_context() was called outside a running stage")
    return context


def current_run_context() -> RunContext | None:
    """Like :func:`get_run_context` but ``None`` outside a stage."""
    return _current.get()


# Make ``context`` the current one (returns a token for reset_run_context), and undo that: the
# context variable's own methods, called once or twice per stage, without a frame of ours around them.
set_run_context: Callable[[RunContext | None], Token] = _current.set
reset_run_context: Callable[[Token], None] = _current.reset
