"""The runner: walks a workflow graph on an executor and keeps the run record.

One :class:`Runner` executes one run. Executors report from any thread; each report is a small typed
message (the ``NamedTuple`` classes below) and each kind of message has one transition method
(:attr:`Runner.TRANSITIONS`). Reports are handled one at a time, under the runner's lock, and the
runner emits events (:mod:`flowdapt.events`); it knows nothing about storage or UIs.

State
-----
Held by the runner and changed only by its transitions, under its lock:

- ``run.state``: ``pending`` -> ``running`` -> ``finished`` | ``failed`` | ``cancelled``
- ``records``: stage -> its :class:`StageRun`, what users see. ``pending`` -> ``running`` ->
  ``finished`` | ``cached`` | ``failed``; a failed attempt with retries left stays ``running`` while
  its retry waits; when the run stops early, ``running`` -> ``cancelled`` and ``pending`` -> ``skipped``
- ``waiting_on``: stage -> its dependencies not finished yet; the stage starts when this reaches 0
- ``upstream``: stage -> its dependencies' outputs (stages started or about to start)
- ``outputs``: stage -> output, kept until every dependent has started (sinks keep theirs for the result)
- ``unstarted_consumers``: stage -> its dependents not started yet (its output is dropped at 0)
- ``live``: stage -> the attempt whose outcome is awaited; absent while a retry waits, so a late
  report of an attempt that timed out or was cancelled is recognised and dropped
- ``handles``: stage -> the executor's :class:`TaskHandle` of its live attempt
- ``ahead``: stage -> handle of a stage queued on the cluster before its dependencies finished
  (executors that queue work ahead, Dask and Ray: the cluster starts it the moment its inputs exist)
- ``early``: stage -> outcome of a stage queued ahead that came before the runner saw it start
- ``deadlines``: heap of ``(when, sequence, message)``: timeouts, retries and log flushes due
- ``active``: stages running or waiting for a retry; the run ends when it reaches 0

Reports and transitions
-----------------------
Each report, who sends it, and its transition:

- ``RunBegins`` (:meth:`Runner.execute`): the run ``pending`` -> ``running``; the roots start.
- ``StageValue`` (a worker that continues calls, on local threads): the stage ``running`` ->
  ``finished`` (or ``cached``); the dependents it made ready start, the first one possibly as the
  worker's continuation.
- ``StageDone`` (the executor's ``on_done``): the same on success; on failure the stage waits for a
  ``RetryDue`` deadline if it has retries left, else ``running`` -> ``failed`` and the run fails.
- ``StageProgress`` (a parameterized stage's ``on_progress``): its item counts.
- ``CancelRequested`` (:meth:`RunControl.cancel`): the run ``running`` -> ``cancelled``.
- ``LogsArrived`` (:meth:`Runner.execute`, woken by the capture): a ``FlushLogs`` deadline is set.
- ``DeadlinesDue`` (:meth:`Runner.execute`, woken at the earliest deadline): each deadline that is
  due is handled as the report it holds, one of

  - ``StageTimedOut``: the attempt is cancelled on the executor and fails with ``StageTimeoutError``;
  - ``RetryDue``: the stage's next attempt starts;
  - ``FlushLogs``: the captured lines are emitted as ``StageLogs`` events.

A report about an attempt that is no longer ``live`` (it timed out, was cancelled, or the run
stopped) changes nothing. After each report, a run with no stage active is finished (``running``
-> ``finished``, the sinks' outputs resolved as its result) and closed: its end is recorded, its
last log lines and ``RunFinished`` emitted, and :meth:`RunControl.wait` returns. A transition that
raises fails the run (``ErrorInfo`` of the exception) rather than leaving it hanging.

Threads
-------
Reports are posted to a queue and drained by whichever thread posts while no other thread is
draining (a trampoline): a worker thread that finishes a stage thus starts the stage's dependents
itself, with no hop through another thread, and a report posted from inside a transition is queued,
never handled recursively. A worker of an executor that continues calls (local threads, see
``BaseExecutor.continues_calls``) hands a simple stage's value straight to the runner instead
(waiting for the lock) and runs the dependent it gets back at once, on the same thread and capacity.
The thread that called :meth:`Runner.execute` only sleeps until the next deadline or the end.
"""

from __future__ import annotations

import functools
import heapq
import threading
import time
import weakref
from collections import deque
from datetime import datetime, timezone
from typing import Any, Callable, ClassVar, Literal, NamedTuple, Union

from flowdapt.compute import logs
from flowdapt.compute.context import RunContext
from flowdapt.compute.executors.base import BaseExecutor, Continuation, Outcome, TaskHandle
from flowdapt.compute.graph import WorkflowGraph
from flowdapt.compute.invoke import StageCall, TaskError
from flowdapt.compute.outputs import StageExtras
from flowdapt.compute.stages import StageType, get_stage_type
from flowdapt.errors import StageTimeoutError
from flowdapt.events import (
    Event,
    ItemsProgress,
    Listener,
    RunFailed,
    RunFinished,
    RunStarted,
    StageFailed,
    StageFinished,
    StageLogs,
    StageRetried,
    StageStarted,
    dispatch,
)
from flowdapt.settings import get_settings
from flowdapt.resources.models import ErrorInfo, ItemFailure, StageRun, WorkflowRun

LOG_FLUSH_SECONDS = 0.25  # how long captured lines wait before they are emitted while a run goes on


# -- reports ------------------------------------------------------------------------------------------
# NamedTuples: the cheapest typed message to build (one is built per stage on the hot path).
class RunBegins(NamedTuple):
    """:meth:`Runner.execute` was called: the run starts."""


class StageValue(NamedTuple):
    """A continuing worker's ``then``: ``attempt`` of ``stage`` returned ``value``."""

    stage: str
    attempt: int
    value: Any


class StageDone(NamedTuple):
    """An executor's ``on_done``: ``attempt`` of ``stage`` is over."""

    stage: str
    attempt: int
    outcome: Outcome


class StageProgress(NamedTuple):
    """A parameterized stage's ``on_progress``: its item counts so far."""

    stage: str
    attempt: int
    done: int
    failed: int
    total: int


class CancelRequested(NamedTuple):
    """:meth:`RunControl.cancel` was called."""


class DeadlinesDue(NamedTuple):
    """The earliest deadline has passed."""


class LogsArrived(NamedTuple):
    """A stage wrote lines to the run's capture."""


class StageTimedOut(NamedTuple):
    """Deadline: ``attempt`` of ``stage`` ran past its ``timeout``."""

    stage: str
    attempt: int


class RetryDue(NamedTuple):
    """Deadline: the retry delay after ``attempt`` of ``stage`` failed is over."""

    stage: str
    attempt: int


class FlushLogs(NamedTuple):
    """Deadline: the captured lines have waited :data:`LOG_FLUSH_SECONDS`."""


Report = Union[RunBegins, StageValue, StageDone, StageProgress, CancelRequested, DeadlinesDue, LogsArrived,
               StageTimedOut, RetryDue, FlushLogs]
Deadline = Union[StageTimedOut, RetryDue, FlushLogs]
_RUN_BEGINS, _CANCEL_REQUESTED, _DEADLINES_DUE, _LOGS_ARRIVED, _FLUSH_LOGS = (
    RunBegins(), CancelRequested(), DeadlinesDue(), LogsArrived(), FlushLogs())


_now = functools.partial(datetime.now, timezone.utc)  # the current UTC time, with no Python frame per call


def _ignore_progress(done: int, failed: int, total: int) -> None:
    """Progress callback of stages that report none (simple stages, calls queued ahead)."""


def error_info(error: TaskError, stage: str | None) -> ErrorInfo:
    """The run record's form of a task's error."""
    return ErrorInfo(type=error.type, message=error.message, traceback=error.traceback, stage=stage)


def _drop_report(report: Report) -> None:
    """Where a finished run's control sends reports: nowhere."""


def _every_attempt(stage: str, attempt: int) -> bool:
    """Every attempt is over (the run is)."""
    return True


def _late_logs(runner: "weakref.ref[Runner]") -> None:
    """Lines that arrive once a run is over are emitted at once, from the thread that brings them."""
    alive = runner()
    if alive is not None:
        with alive._lock:
            alive._flush_logs(_every_attempt)


class _StageTypes(dict):
    """Stage types by name, looked up in the registry once per run (a dict read per stage after that)."""

    def __missing__(self, name: str) -> StageType:
        stage_type = self[name] = get_stage_type(name)
        return stage_type


class RunControl:
    """Lets other threads wait for a run and cancel it.

    ``cancelled`` is set once cancellation was asked for (stages read it through
    ``RunContext.is_cancelled``); ``finished`` once the run is over.
    """

    def __init__(self) -> None:
        self.finished = threading.Event()
        self.cancelled = threading.Event()
        self.post: Callable[[Report], None] = _drop_report  # the runner's, while it runs

    def cancel(self) -> None:
        if not self.finished.is_set():
            self.cancelled.set()
            self.post(_CANCEL_REQUESTED)

    def wait(self, timeout: float | None = None) -> bool:
        return self.finished.wait(timeout)


class Runner:
    """Executes one run of a workflow graph; :meth:`execute` returns when the run is over.

    The module docstring describes the run's state, the reports and their transitions.
    """

    def __init__(self, graph: WorkflowGraph, executor: BaseExecutor, run: WorkflowRun, context: RunContext,
                 listeners: tuple[Listener, ...] = (), control: RunControl | None = None,
                 extras: dict[str, StageExtras] | None = None) -> None:
        self.graph = graph
        self.executor = executor
        self.run = run
        self.listeners = listeners
        self.control = control or RunControl()
        self.control.post = self._post
        self.context = context  # the stages' contexts are made from it (see _call)
        self.settings = get_settings()  # the run's stages write artifacts where this run started to
        self.extras = extras or None  # per stage: keep, cache or reuse its output (flowdapt.compute.outputs)
        self.queues_ahead = executor.queues_ahead
        self.continues = executor.continues_calls
        self.stage_types = _StageTypes()
        logs.ensure_capture()
        limit = self.settings.logs.max_bytes if self.settings.logs.capture else 0
        self.capture = logs.RunCapture(run.uid, limit, self._logs_waiting)
        self.cached_from = self.capture.cached_from  # (stage, attempt) -> where an output came from
        self.log_sequence = 0  # lines emitted so far (each line's number in the run)
        self.logs_waiting = False  # lines arrived: the thread of execute() posts the report
        self.flush_pending = False  # a FlushLogs deadline is on the heap
        # The run's state (see the module docstring).
        run.stages = StageRun.pending(graph.typed_order)
        self.records = {record.name: record for record in run.stages}
        self.waiting_on = dict(graph.dependency_counts)
        self.upstream: dict[str, list[Any]] = {}
        self.outputs: dict[str, Any] = {}
        self.unstarted_consumers = dict(graph.dependent_counts)
        self.live: dict[str, int] = {}
        self.handles: dict[str, TaskHandle] = {}
        self.ahead: dict[str, TaskHandle] = {}
        self.early: dict[str, Outcome] = {}
        self.deadlines: list[tuple[float, int, Deadline]] = []
        self.sequence = 0  # orders deadlines due at the same time
        self.active = 0
        self.closed = False
        self._queue: deque[Report] = deque()
        self._lock = threading.Lock()
        self._wakeup = threading.Event()  # the deadline sleeper re-reads the heap

    # -- events ---------------------------------------------------------------------------------
    def _emit(self, event_type: type[Event], **fields: Any) -> None:
        if self.listeners:
            dispatch(event_type(run=self.run, **fields), self.listeners)

    # -- handling reports -------------------------------------------------------------------------
    def _post(self, report: Report) -> None:
        self._queue.append(report)
        self._drain()

    def _drain(self) -> None:
        """Handle queued reports unless another thread is at it (it re-checks after releasing the lock)."""
        queue = self._queue
        while queue:
            if not self._lock.acquire(blocking=False):
                return  # the draining thread re-checks the queue after releasing the lock
            try:
                while queue:
                    self._handle(queue.popleft())
            finally:
                self._lock.release()

    def _report(self, name: str, attempt: int, outcome: Outcome) -> None:
        """An executor's ``on_done`` for ``attempt`` of ``name`` (bound with functools.partial)."""
        self._post(StageDone(name, attempt, outcome))

    def _value(self, name: str, attempt: int, value: Any) -> Continuation | None:
        """A continuing executor's ``then`` for ``attempt`` of ``name`` (bound with functools.partial):
        handled at once on the worker, which runs the continuation returned."""
        with self._lock:
            following = self._handle(StageValue(name, attempt, value))
        if self._queue:
            self._drain()
        return following

    def _handle(self, report: Report) -> Continuation | None:
        """Apply one report's transition (under the lock), then end the run if no stage is active.
        A stage's value may return the dependent its worker runs next."""
        if self.closed:
            return None
        try:
            following = self.TRANSITIONS[type(report)](self, report)
            if self.active == 0:
                if self.run.state == "running":
                    self._finish()
                self._close()
        except BaseException as exc:  # noqa: BLE001 - a runner bug must still end the run, not hang it
            self._stop("failed", ErrorInfo.from_exception(exc))
            self._close()
            return None
        return following

    # -- the thread of execute() ----------------------------------------------------------------
    def execute(self) -> WorkflowRun:
        """Run the workflow; returns the run once it is over (cancelled on KeyboardInterrupt)."""
        self._post(_RUN_BEGINS)
        try:
            while not self.control.finished.is_set():
                deadline = self.deadlines[0][0] if self.deadlines else None
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                self._wakeup.wait(timeout)
                self._wakeup.clear()
                if self.logs_waiting:
                    self.logs_waiting = False
                    self._post(_LOGS_ARRIVED)
                if self.deadlines and self.deadlines[0][0] <= time.monotonic():
                    self._post(_DEADLINES_DUE)
        except KeyboardInterrupt:
            self.control.cancel()
            self.control.finished.wait()
            raise
        return self.run

    def _logs_waiting(self) -> None:
        """The capture's ``on_lines``: lines wait to be emitted. It is called by whatever thread brings
        them (a stage's, or a cluster client's event loop), which must not run the runner's work: the
        thread of :meth:`execute` is woken to post the report."""
        self.logs_waiting = True
        self._wakeup.set()

    # -- transitions of the run -----------------------------------------------------------------
    def _begin(self, report: RunBegins) -> None:
        """``pending`` -> ``running``: the root stages start."""
        run = self.run
        run.state = "running"
        run.started_at = _now()
        logs.register(self.capture)  # where the stages' writes in this process find it
        self._emit(RunStarted)
        for name in self.graph.roots:
            self.upstream[name] = []
            self._start(name)

    def _finish(self) -> None:
        """``running`` -> ``finished``: every stage finished; the sinks' outputs are the result."""
        sinks = self.graph.sinks
        values = self.executor.resolve([self.outputs[name] for name in sinks])
        self.run.result = values[0] if len(sinks) == 1 else dict(zip(sinks, values))
        self.run.state = "finished"

    def _stop(self, state: Literal["failed", "cancelled"], error: ErrorInfo | None) -> None:
        """``running`` -> ``state``: running stages are cancelled, the ones not started skipped."""
        run = self.run
        if run.state != "running":
            return
        run.state = state
        run.error = error
        now = _now()
        for handle in [*self.handles.values(), *self.ahead.values()]:
            self.executor.cancel(handle)
        self.handles.clear()
        self.ahead.clear()
        self.early.clear()
        for record in run.stages:
            if record.state == "running":
                record.state = "cancelled"
                record.finished_at = now
                self._emit(StageFinished, stage=record)
            elif record.state == "pending":
                record.state = "skipped"
        self.live.clear()
        self.deadlines.clear()
        self.active = 0

    def _close(self) -> None:
        """The run is over: its end recorded, its last lines and events emitted, its waiters woken."""
        if self.closed:
            return
        self.closed = True
        run = self.run
        run.finished_at = _now()
        self.outputs.clear()
        self.upstream.clear()
        self._flush_logs(_every_attempt)
        # A stage thread that outlived its timeout, a late cluster event: their lines are emitted as they come,
        # while the runner lives (a weak reference: the capture must not keep a dropped run alive).
        self.capture.on_lines = functools.partial(_late_logs, weakref.ref(self))
        logs.unregister(self.capture)
        self._emit(RunFinished)
        if run.state == "failed":
            self._emit(RunFailed)
        # The control outlives the run (run.wait/cancel): unhooking the runner from it breaks the
        # run <-> runner cycle, so a finished run's records are freed as soon as the caller drops
        # the run, not left to the cyclic garbage collector (which then scans the whole heap).
        self.control.post = _drop_report
        self.control.finished.set()
        self._wakeup.set()

    def _on_cancel(self, report: CancelRequested) -> None:
        self._stop("cancelled", None)

    # -- transitions of a stage -----------------------------------------------------------------
    def _start(self, name: str, continuing: TaskHandle | None = None, now: datetime | None = None) -> Continuation | None:
        """``pending`` (or waiting for a retry) -> ``running``: the next attempt of ``name`` starts (at
        ``now``, default: now). With ``continuing`` (the handle of a call whose worker asks what to
        run next), a stage that can go on there is returned as that worker's continuation instead."""
        stage = self.graph.stages[name]
        record = self.records[name]
        attempt = record.attempts + 1
        if attempt == 1:
            self.active += 1
            record.attempt_started(attempt, now or _now())
        else:
            record.attempt_started(attempt, None)
        self.live[name] = attempt
        if self.listeners:
            self._emit(StageStarted, stage=record)
        on_done = functools.partial(self._report, name, attempt)
        following = None
        handle = self.ahead.pop(name, None) if self.queues_ahead else None
        if handle is None:
            stage_type = self.stage_types[stage.type]
            then = functools.partial(self._value, name, attempt) if self.continues and stage_type.continues else None
            if then is not None and continuing is not None:
                handle = continuing
                following = (self._call(name, attempt), self.upstream[name], stage.resources.as_dict(), then, on_done)
            else:
                on_progress = self._progress_reporter(name, attempt) if stage_type.reports_progress else _ignore_progress
                start = (self.executor, stage, self._call(name, attempt), self.upstream[name], on_progress, on_done)
                try:
                    handle = stage_type.start(*start) if then is None else stage_type.start(*start, then)
                except Exception as exc:  # noqa: BLE001 - e.g. a resource the executor cannot provide
                    on_done(Outcome(error=TaskError.capture(exc)))
                    return None
        elif name in self.early:
            self._post(StageDone(name, attempt, self.early.pop(name)))  # handled after this report, not recursively
        self.handles[name] = handle
        if stage.options.timeout:
            self._deadline(stage.options.timeout, StageTimedOut(name, attempt))
        if handle.output is not None:
            self._queue_ahead(name)
        return following

    def _stage_succeeded(self, name: str, value: Any, continuing: TaskHandle | None = None) -> Continuation | None:
        """``running`` -> ``finished`` (or ``cached``): the dependents it made ready start. With
        ``continuing`` (its call's handle), the first that can go on in that call is returned instead."""
        record = self.records[name]
        now = _now()  # also when the dependents it makes ready start
        record.succeeded(now, self.cached_from.get((name, record.attempts)) if self.cached_from else None)
        self.active -= 1
        self.outputs[name] = value
        del self.upstream[name]
        if self.listeners:
            self._emit(StageFinished, stage=record)
        graph = self.graph
        stages, sinks = graph.stages, graph.sinks
        waiting_on, outputs, unstarted_consumers = self.waiting_on, self.outputs, self.unstarted_consumers
        following = None
        for child in graph.dependents[name]:
            waiting_on[child] -= 1
            if waiting_on[child] == 0:
                upstream = self.upstream[child] = []
                for dependency in stages[child].depends_on:
                    upstream.append(outputs[dependency])
                    # Drop an output once every consumer has started (sinks keep theirs for the result).
                    unstarted_consumers[dependency] -= 1
                    if unstarted_consumers[dependency] == 0 and dependency not in sinks:
                        outputs.pop(dependency, None)
                if continuing is not None and following is None:
                    following = self._start(child, continuing, now)
                else:
                    self._start(child, None, now)
        if self.queues_ahead:
            self._queue_ahead(name)
        return following

    def _stage_failed(self, name: str, attempt: int, error: TaskError) -> None:
        """``running`` -> waiting for a retry (a :class:`RetryDue` deadline), or -> ``failed``, which
        fails the run."""
        record = self.records[name]
        stage = self.graph.stages[name]
        info = error_info(error, name)
        record.error = info
        if attempt <= stage.options.retries and not self.stage_types[stage.type].maps_items:
            delay = stage.options.retry_delay
            self._emit(StageRetried, stage=record, error=info, delay=delay)
            self._deadline(delay, RetryDue(name, attempt))
            return
        record.state = "failed"
        record.finished_at = _now()
        self.active -= 1
        self._emit(StageFailed, stage=record)
        self._stop("failed", info)

    # -- reports about stages -------------------------------------------------------------------
    def _on_value(self, report: StageValue) -> Continuation | None:
        name, attempt, value = report
        if self.live.get(name) != attempt:
            return None  # a late value of an attempt that timed out or was cancelled
        del self.live[name]
        return self._stage_succeeded(name, value, self.handles.pop(name, None))

    def _on_done(self, report: StageDone) -> None:
        name, attempt, outcome = report
        if outcome.logs is not None:  # what a worker in another process shipped back
            for shipped in outcome.logs:
                self.capture.extend(name, attempt, shipped)
            outcome.logs = None
        if self.live.get(name) != attempt:
            if name in self.ahead:  # queued ahead and over before its dependencies were seen to finish
                self.early[name] = outcome
            return  # or a late report of an attempt that already timed out or was cancelled
        del self.live[name]
        self.handles.pop(name, None)
        error = outcome.error
        if outcome.output_notebook is not None:
            self.records[name].output_notebook = outcome.output_notebook
        if outcome.items_total is not None:
            error = self._record_items(name, attempt, outcome)
        if error is None:
            self._stage_succeeded(name, outcome.value)
        else:
            self._stage_failed(name, attempt, error)

    def _record_items(self, name: str, attempt: int, outcome: Outcome) -> TaskError | None:
        """Copy a parameterized stage's item counts and failures to its record; returns the stage's
        error: the outcome's, or the first item's when every item failed."""
        record = self.records[name]
        error = outcome.error
        failures = outcome.item_failures
        record.items_total = outcome.items_total
        record.items_failed = len(failures)
        record.items_done = outcome.items_total if error is None else record.items_done
        record.item_failures = [
            ItemFailure(index=index, type=item.type, message=item.message, traceback=item.traceback)
            for index, item in failures
        ]
        if error is None and failures and len(failures) == outcome.items_total:
            error = failures[0][1]
        if outcome.items_cached and outcome.items_cached == outcome.items_total:
            self.cached_from[name, attempt] = "cache"  # every item came from the result cache
        return error

    def _on_progress(self, report: StageProgress) -> None:
        name, attempt, done, failed, total = report
        if self.live.get(name) != attempt:
            return
        record = self.records[name]
        record.items_done, record.items_failed, record.items_total = done, failed, total
        self._emit(ItemsProgress, stage=record)

    def _progress_reporter(self, name: str, attempt: int) -> Callable[[int, int, int], None]:
        post = self._post

        def on_progress(done: int, failed: int, total: int) -> None:
            post(StageProgress(name, attempt, done, failed, total))

        return on_progress

    # -- deadlines ------------------------------------------------------------------------------
    def _deadline(self, delay: float, message: Deadline) -> None:
        self.sequence += 1
        heapq.heappush(self.deadlines, (time.monotonic() + delay, self.sequence, message))
        self._wakeup.set()

    def _on_deadlines(self, report: DeadlinesDue) -> None:
        now = time.monotonic()
        while self.deadlines and self.deadlines[0][0] <= now:
            message = heapq.heappop(self.deadlines)[2]
            self.TRANSITIONS[type(message)](self, message)

    def _on_timeout(self, report: StageTimedOut) -> None:
        name, attempt = report
        if self.live.get(name) != attempt:
            return  # the attempt ended in time
        handle = self.handles.get(name)
        if handle is not None:
            self.executor.cancel(handle)
        timeout = self.graph.stages[name].options.timeout or 0.0
        self._on_done(StageDone(name, attempt, Outcome(error=TaskError.capture(StageTimeoutError(name, timeout)))))

    def _on_retry_due(self, report: RetryDue) -> None:
        name = report.stage
        if self.records[name].state == "running" and self.live.get(name) is None:
            self._start(name)

    # -- logs -----------------------------------------------------------------------------------
    def _on_logs_arrived(self, report: LogsArrived) -> None:
        if not self.flush_pending:
            self.flush_pending = True
            self._deadline(LOG_FLUSH_SECONDS, _FLUSH_LOGS)

    def _on_flush_logs(self, report: FlushLogs) -> None:
        self._flush_logs(self._attempt_over)

    def _flush_logs(self, over: Callable[[str, int], bool]) -> None:
        """Emit the captured lines not emitted yet, one event per attempt (attempts ``over`` says are
        over are finished: their last partial lines and their tail too)."""
        self.flush_pending = False
        for stage, attempt, lines in self.capture.take(over):
            first = self.log_sequence
            self.log_sequence += len(lines)
            self._emit(StageLogs, stage=self.records[stage], attempt=attempt, lines=lines, first=first)

    def _attempt_over(self, stage: str, attempt: int) -> bool:
        return self.live.get(stage) != attempt

    #: The transition of each kind of report (one function each; see the module docstring).
    TRANSITIONS: ClassVar[dict[type, Callable[["Runner", Any], Continuation | None]]] = {
        RunBegins: _begin,
        StageValue: _on_value,
        StageDone: _on_done,
        StageProgress: _on_progress,
        CancelRequested: _on_cancel,
        DeadlinesDue: _on_deadlines,
        LogsArrived: _on_logs_arrived,
        StageTimedOut: _on_timeout,
        RetryDue: _on_retry_due,
        FlushLogs: _on_flush_logs,
    }

    # -- calls to executors ---------------------------------------------------------------------
    def _call(self, name: str, attempt: int = 1) -> StageCall:
        """What a worker needs to call stage ``name`` (a new object per attempt: nothing keeps it after)."""
        stage = self.graph.stages[name]
        options = stage.options
        context = self.context
        stage_context = RunContext(context.input, context.config, context.namespace, context.run, context.executor,
                                   name, self.control.cancelled, attempt)
        return StageCall(  # positional: binding ten keywords costs more than the call
            name, stage.target, stage_context, not stage.depends_on, options.map_on,
            options.timeout, options.retries, options.retry_delay, options.allow_partial_failure, self.settings,
            self.extras and self.extras.get(name),
        )

    def _queue_ahead(self, name: str) -> None:
        """Hand the cluster the stages downstream of ``name`` whose every dependency has an output
        handle (finished, or queued with no retries), so each runs as soon as its inputs exist."""
        graph = self.graph
        parents = [name]
        while parents:
            for child in graph.dependents[parents.pop()]:
                stage = graph.stages[child]
                stage_type = self.stage_types[stage.type]
                if child in self.ahead or self.records[child].attempts or not stage_type.queues_ahead:
                    continue
                upstream = []
                for dependency in stage.depends_on:
                    output = self._output_ahead(dependency)
                    if output is None:
                        break
                    upstream.append(output[0])
                else:
                    on_done = functools.partial(self._report, child, 1)
                    try:
                        handle = stage_type.start(self.executor, stage, self._call(child), upstream, _ignore_progress, on_done)
                    except Exception:  # noqa: BLE001 - e.g. resources no worker has: reported when it starts
                        continue
                    self.ahead[child] = handle
                    if handle.output is not None:
                        parents.append(child)

    def _output_ahead(self, name: str) -> tuple[Any] | None:
        """``(output,)`` of ``name`` for a stage queued ahead: its value once finished, else the output
        handle of its one and only attempt; None when there is none yet."""
        if name in self.outputs:
            return (self.outputs[name],)
        if self.graph.stages[name].options.retries:
            return None  # a retry would produce another output
        handle = self.ahead.get(name) or self.handles.get(name)
        if handle is None or handle.output is None:
            return None
        return (handle.output,)
