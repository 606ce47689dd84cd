"""The runner: walks a workflow graph on an executor and keeps the run record.

Executors report completions from any thread; the reports are handled one at a time under a lock
(see :class:`Runner`). A stage starts as soon as its own dependencies have finished. On executors
that queue work ahead (Dask, Ray), a simple stage is also handed to the cluster as soon as each of
its dependencies has an output handle, so the cluster starts it the moment its inputs exist, with
no round trip through the runner; the runner still records it as started only when its
dependencies have finished. Timeouts and retry delays are deadlines on a heap that bound the
caller's sleep, so nothing polls.
The runner emits events and knows nothing about storage or UIs.
"""

from __future__ import annotations

import functools
import heapq
import threading
import time
import weakref
from datetime import datetime, timezone
from collections import deque
from typing import Any, Callable

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

_VALUE, _DONE, _PROGRESS, _CANCEL, _START, _DEADLINES, _LOGS = 0, 1, 2, 3, 4, 5, 6
_TIMEOUT, _RETRY, _FLUSH_LOGS = 0, 1, 2
LOG_FLUSH_SECONDS = 0.25  # how long captured lines wait before they are emitted while a run goes on


_now = functools.partial(datetime.now, timezone.utc)  # the current UTC time, with no Python frame per call


def _ignore_progress(done: int, failed: int, total: int) -> None:
    """Progress callback of stages that report none (simple stages, calls queued ahead)."""


def error_info(error: TaskError, stage: str | None) -> ErrorInfo:
    return ErrorInfo(type=error.type, message=error.message, traceback=error.traceback, stage=stage)


def _drop_report(message: tuple[int, Any, int, Any]) -> None:
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
    """Lets other threads wait for a run and cancel it."""

    def __init__(self) -> None:
        self.finished = threading.Event()
        self.cancelled = threading.Event()
        self.post: Any = None  # set by the runner

    def cancel(self) -> None:
        if not self.finished.is_set():
            self.cancelled.set()
            self.post((_CANCEL, None, 0, None))

    def wait(self, timeout: float | None = None) -> bool:
        return self.finished.wait(timeout)


class Runner:
    """Executes one run of a workflow graph; :meth:`execute` returns when the run is over.

    Run state is only touched while holding ``_lock``. Reports are posted to a queue and drained by
    whichever thread posts while no other thread is draining (a trampoline): a worker thread that
    finishes a stage thus submits the stage's dependents itself, with no hop through another thread,
    and a report posted from inside a handler is queued, never handled recursively. On executors
    that continue calls (local threads), a worker hands a simple stage's value to the runner
    directly (waiting for the lock) and runs the dependent it gets back at once, on the same thread
    and capacity. The thread that called :meth:`execute` only sleeps until the next deadline
    (timeouts, retry delays) or the end.
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
        self.context = context
        self.context._cancelled = self.control.cancelled
        self.settings = get_settings()  # the run's stages write artifacts where this run started to
        self.extras = extras or None  # per stage: keep, cache or reuse its output (flowdapt.compute.outputs)
        logs.ensure_capture()
        limit = self.settings.logs.max_bytes if self.settings.logs.capture else 0
        self.capture = logs.RunCapture(run.uid, limit, self._logs_waiting)
        self.cached_from = self.capture.cached_from  # (stage, attempt) -> where an output came from
        self.log_sequence = 0  # lines emitted so far (each line's number in the run)
        self.logs_waiting = False  # lines arrived: the thread of execute() posts the report
        self.flush_pending = False  # a flush of the lines is on the deadline heap
        run._control = self.control
        run.stages = StageRun.pending(graph.typed_order)
        self.records = {record.name: record for record in run.stages}
        self.waiting_on = dict(graph.dependency_counts)
        self.unstarted_consumers = dict(graph.dependent_counts)
        self.outputs: dict[str, Any] = {}
        self.upstream: dict[str, list[Any]] = {}
        self.handles: dict[str, TaskHandle] = {}
        self.queues_ahead = executor.queues_ahead
        self.continues = executor.continues_calls
        self.ahead: dict[str, TaskHandle] = {}  # stages queued on the cluster, not started yet
        self.early: dict[str, Outcome] = {}  # outcomes of queued stages that came before they started
        self.live: dict[str, int] = {}  # running stage -> attempt whose outcome is awaited
        self.stage_types = _StageTypes()
        self.deadlines: list[tuple[float, int, int, str, int]] = []
        self.sequence = 0
        self.active = 0  # stages running or waiting for a retry
        self.closed = False
        self._queue: deque[tuple[int, Any, int, Any]] = deque()
        self._lock = threading.Lock()
        self._wakeup = threading.Event()  # the deadline sleeper re-reads the heap

    # -- events ---------------------------------------------------------------------------------
    def _emit(self, event_type: type[Event], **fields: Any) -> None:
        if self.listeners:
            dispatch(event_type(run=self.run, **fields), self.listeners)

    # -- reports ----------------------------------------------------------------------------------
    def _post(self, message: tuple[int, Any, int, Any]) -> None:
        self._queue.append(message)
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
        self._post((_DONE, name, attempt, outcome))

    def _value(self, name: str, attempt: int, value: Any) -> Continuation | None:
        """A continuing executor's ``then`` for ``attempt`` of ``name`` (bound with functools.partial):
        handled at once on the worker, which runs the continuation returned."""
        with self._lock:
            following = self._handle((_VALUE, name, attempt, value))
        if self._queue:
            self._drain()
        return following

    def _handle(self, message: tuple[int, Any, int, Any]) -> Continuation | None:
        """Handle one report (under the lock); a stage's value may return the dependent its worker runs next."""
        if self.closed:
            return None
        kind, name, attempt, payload = message
        following = None
        try:
            if kind == _VALUE:
                if self.live.get(name) == attempt:  # else a late value of an attempt that timed out or was cancelled
                    del self.live[name]
                    following = self._stage_succeeded(name, payload, self.handles.pop(name, None))
            elif kind == _DONE:
                self._on_done(name, attempt, payload)
            elif kind == _PROGRESS:
                self._on_progress(name, attempt, payload)
            elif kind == _START:
                self._begin()
            elif kind == _DEADLINES:
                self._on_deadlines()
            elif kind == _LOGS:
                if not self.flush_pending:
                    self.flush_pending = True
                    self._deadline(LOG_FLUSH_SECONDS, _FLUSH_LOGS, "", 0)
                return None
            else:
                self._stop("cancelled", None)
            if self.active == 0:
                if self.run.state == "running":
                    self._finish()
                self._close()
        except BaseException as exc:  # noqa: BLE001 - a runner bug must still end the run, not hang it
            self._stop("failed", ErrorInfo.from_exception(exc))
            self._close()
            return None
        return following

    # -- main thread ----------------------------------------------------------------------------
    def execute(self) -> WorkflowRun:
        self._post((_START, None, 0, None))
        try:
            while not self.control.finished.is_set():
                deadline = self.deadlines[0][0] if self.deadlines else None
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                self._wakeup.wait(timeout)
                self._wakeup.clear()
                if self.logs_waiting:
                    self.logs_waiting = False
                    self._post((_LOGS, None, 0, None))
                if self.deadlines and self.deadlines[0][0] <= time.monotonic():
                    self._post((_DEADLINES, None, 0, None))
        except KeyboardInterrupt:
            self.control.cancel()
            self.control.finished.wait()
            raise
        return self.run

    def _begin(self) -> None:
        run = self.run
        run.state = "running"
        run.started_at = _now()
        logs.register(self.capture)  # where the stages' writes in this process find it
        self._emit(RunStarted)
        for name in self.graph.roots:
            self.upstream[name] = []
            self._start(name)

    def _close(self) -> None:
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

    def _finish(self) -> None:
        resolve = self.executor.resolve
        sinks = self.graph.sinks
        values = resolve([self.outputs[name] for name in sinks])
        self.run.result = values[0] if len(sinks) == 1 else dict(zip(sinks, values))
        self.run.state = "finished"

    # -- logs -----------------------------------------------------------------------------------
    def _logs_waiting(self) -> None:
        """The capture's ``on_lines``: lines wait to be emitted. It is called by whatever thread brings
        them (a stage's, or a cluster client's event loop), which must not run the runner's work: the
        thread of :meth:`execute` is woken to post the report."""
        self.logs_waiting = True
        self._wakeup.set()

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

    # -- stages ---------------------------------------------------------------------------------
    def _call(self, name: str, attempt: int = 1) -> StageCall:
        """What a worker needs to call stage ``name`` (a new object per attempt: nothing keeps it after)."""
        stage = self.graph.stages[name]
        options = stage.options
        context = self.context
        stage_context = RunContext(context.input, context.config, context.namespace, context.run, context.executor,
                                   name, context._cancelled, attempt)
        return StageCall(  # positional: binding ten keywords costs more than the call
            name, stage.target, stage_context, not stage.depends_on, options.map_on,
            options.timeout, options.retries, options.retry_delay, options.allow_partial_failure, self.settings,
            self.extras and self.extras.get(name),
        )

    def _start(self, name: str, continuing: TaskHandle | None = None, now: datetime | None = None) -> Continuation | None:
        """Start ``name`` (at ``now``, default: now); with ``continuing`` (the handle of a call whose
        worker asks what to run next), a stage that can go on there is returned as that worker's
        continuation instead."""
        stage = self.graph.stages[name]
        record = self.records[name]
        attempt = record.attempts + 1
        # Stage records change several times per stage on the hot path: their fields are written
        # straight into the model's storage, unvalidated (the runner's values are valid), not through
        # pydantic's __setattr__, a Python call per field.
        fields = record.__dict__
        fields["attempts"] = attempt
        fields["state"] = "running"
        if attempt == 1:
            self.active += 1
            fields["started_at"] = now or _now()
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
            self._post((_DONE, name, attempt, self.early.pop(name)))  # handled after this report, not recursively
        self.handles[name] = handle
        if stage.options.timeout:
            self._deadline(stage.options.timeout, _TIMEOUT, name, attempt)
        if handle.output is not None:
            self._queue_ahead(name)
        return following

    def _progress_reporter(self, name: str, attempt: int) -> Callable[[int, int, int], None]:
        post = self._post

        def on_progress(done: int, failed: int, total: int) -> None:
            post((_PROGRESS, name, attempt, (done, failed, total)))

        return on_progress

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

    def _deadline(self, delay: float, action: int, name: str, attempt: int) -> None:
        self.sequence += 1
        heapq.heappush(self.deadlines, (time.monotonic() + delay, self.sequence, action, name, attempt))
        self._wakeup.set()

    def _on_deadlines(self) -> None:
        now = time.monotonic()
        while self.deadlines and self.deadlines[0][0] <= now:
            self._on_deadline(*heapq.heappop(self.deadlines)[2:])

    def _on_deadline(self, action: int, name: str, attempt: int) -> None:
        if action == _FLUSH_LOGS:
            self._flush_logs(self._attempt_over)
        elif action == _RETRY:
            if self.records[name].state == "running" and self.live.get(name) is None:
                self._start(name)
        elif self.live.get(name) == attempt:
            handle = self.handles.get(name)
            if handle is not None:
                self.executor.cancel(handle)
            timeout = self.graph.stages[name].options.timeout or 0.0
            self._on_done(name, attempt, Outcome(error=TaskError.capture(StageTimeoutError(name, timeout))))

    def _on_progress(self, name: str, attempt: int, progress: tuple[int, int, int]) -> None:
        if self.live.get(name) != attempt:
            return
        record = self.records[name]
        record.items_done, record.items_failed, record.items_total = progress
        self._emit(ItemsProgress, stage=record)

    def _on_done(self, name: str, attempt: int, outcome: Outcome) -> None:
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
        record = self.records[name]
        stage = self.graph.stages[name]
        error = outcome.error
        if outcome.output_notebook is not None:
            record.output_notebook = outcome.output_notebook
        if outcome.items_total is not None:
            failures = outcome.item_failures
            record.items_total = outcome.items_total
            record.items_failed = len(failures)
            record.items_done = outcome.items_total if error is None else record.items_done
            record.item_failures = [
                ItemFailure(index=index, type=item.type, message=item.message, traceback=item.traceback)
                for index, item in failures
            ]
            if error is None and failures and len(failures) == outcome.items_total:
                error = failures[0][1]  # every item failed: the stage failed
            if outcome.items_cached and outcome.items_cached == outcome.items_total:
                self.cached_from[name, attempt] = "cache"  # every item came from the result cache
        if error is None:
            self._stage_succeeded(name, outcome.value)
            return
        info = error_info(error, name)
        record.error = info
        if attempt <= stage.options.retries and not self.stage_types[stage.type].maps_items:
            delay = stage.options.retry_delay
            self._emit(StageRetried, stage=record, error=info, delay=delay)
            self._deadline(delay, _RETRY, name, attempt)
            return
        record.state = "failed"
        record.finished_at = _now()
        self.active -= 1
        self._emit(StageFailed, stage=record)
        self._stop("failed", info)

    def _stage_succeeded(self, name: str, value: Any, continuing: TaskHandle | None = None) -> Continuation | None:
        """Record ``name`` finished and start the dependents it made ready; with ``continuing`` (its
        call's handle), the first that can go on in that call is returned instead of started."""
        record = self.records[name]
        fields = record.__dict__  # written in place, as in _start
        fields["state"] = "finished"
        if self.cached_from:
            source = self.cached_from.get((name, fields["attempts"]))
            if source is not None:
                fields["state"] = "cached"
                fields["cached_from"] = source
        fields["error"] = None
        fields["finished_at"] = now = _now()  # also when the dependents it makes ready start
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

    def _stop(self, state: str, error: ErrorInfo | None) -> None:
        """End the run early: cancel running stages, skip the ones not started."""
        run = self.run
        if run.state != "running":
            return
        run.state = state  # type: ignore[assignment]
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
