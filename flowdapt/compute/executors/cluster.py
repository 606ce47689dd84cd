"""Pieces shared by the executors: ordered map assembly, chunk sizing, and the cluster skeleton.

:class:`ClusterExecutor` is the part of the Dask and Ray executors that does not depend on the
engine: it cuts parameterized stages into chunks, assembles chunk results in input order, reports
progress, checks that a stage's resources fit on some node, and turns lost clusters into clear
errors. Subclasses only launch tasks and watch their handles.
"""

from __future__ import annotations

import abc
import os
import sys
import threading
from typing import Any, Callable

from flowdapt.compute.executors.base import BaseExecutor, OnDone, OnProgress, Outcome, TaskHandle
from flowdapt.compute.invoke import ChunkResult, StageCall, TaskError
from flowdapt.errors import ExecutorError

_EPSILON = 1e-9
MAX_CHUNK = 1024
CHUNKS_PER_LANE = 8

# What a chunk reports: its result, a failure of the whole chunk, or None when it was cancelled.
ChunkReport = Callable[[int, int, "ChunkResult | TaskError | None"], None]


def chunk_size(total: int, lanes: int, fixed: int | None = None, per_lane: int = CHUNKS_PER_LANE) -> int:
    """Items per chunk: about ``per_lane`` chunks per parallel lane, at most :data:`MAX_CHUNK`."""
    return fixed or min(MAX_CHUNK, max(1, total // (max(1, lanes) * per_lane)))


def as_sequence(items: Any) -> list[Any] | tuple[Any, ...]:
    """``items`` as something sliceable (lists and tuples as they are)."""
    return items if isinstance(items, (list, tuple)) else list(items)


def cancelled_error(what: str = "cancelled before it finished") -> TaskError:
    return TaskError("RunCancelledError", what, "")


class MapState:
    """Assembles chunk results of one map, in input order."""

    def __init__(self, total: int, chunks: int) -> None:
        self.total = total
        self.values: list[Any] = [None] * total
        self.failures: list[tuple[int, TaskError]] = []
        self.done = 0
        self.retries = 0
        self.cached = 0
        self.logs: list[Any] | None = None
        self.remaining = chunks
        self.lock = threading.Lock()

    def add(self, chunk: ChunkResult | None, allow_partial_failure: bool) -> Outcome | None:
        """Record a chunk (``None``: it never ran); returns the map's outcome once every chunk is in."""
        with self.lock:
            if chunk is not None:
                self.values[chunk.start:chunk.start + len(chunk.values)] = chunk.values
                self.failures.extend(chunk.failures)
                self.done += len(chunk.values)
                self.retries += chunk.retries
                self.cached += chunk.cached
                if chunk.logs is not None:
                    self.logs = [*(self.logs or ()), chunk.logs]
            self.remaining -= 1
            if self.remaining:
                return None
        self.failures.sort(key=lambda failure: failure[0])
        if self.failures and not allow_partial_failure:
            return Outcome(error=self.failures[0][1], item_failures=self.failures, items_total=self.total,
                           item_retries=self.retries, logs=self.logs)
        if self.done < self.total and not self.failures:
            return Outcome(error=cancelled_error("cancelled before all items ran"), items_total=self.total,
                           logs=self.logs)
        failed = {index for index, _ in self.failures}
        values = [value for index, value in enumerate(self.values) if index not in failed] if failed else self.values
        return Outcome(value=values, item_failures=self.failures, items_total=self.total, item_retries=self.retries,
                       logs=self.logs, items_cached=self.cached)


def failed_chunk(start: int, stop: int, error: TaskError) -> ChunkResult:
    """A chunk that failed as a whole (e.g. its worker died): every item fails with ``error``."""
    return ChunkResult(start, [None] * (stop - start), [(index, error) for index in range(start, stop)])


def worker_sys_path() -> list[str]:
    """The driver's ``sys.path`` for local cluster workers (``''`` made absolute), so they import
    the same stage modules (the workbench, ``tests.stages``, plugin packages) as the driver."""
    paths = []
    for entry in sys.path:
        entry = entry or os.getcwd()
        if os.path.exists(entry) and entry not in paths:
            paths.append(entry)
    return paths


def check_placement(stage: str, request: dict[str, float], nodes: list[dict[str, float]], engine: str) -> None:
    """Raise :class:`ExecutorError` unless one node offers every amount in ``request``.

    A request no node can satisfy would otherwise wait forever in the engine's queue.
    """
    if not request or any(all(node.get(key, 0.0) + _EPSILON >= amount for key, amount in request.items())
                          for node in nodes):
        return
    for key, amount in request.items():
        largest = max((node.get(key, 0.0) for node in nodes), default=0.0)
        if largest + _EPSILON < amount:
            raise ExecutorError(f"stage '{stage}' needs {key}={amount:g} but no {engine} worker has that much "
                                f"(largest: {largest:g})")
    wanted = ", ".join(f"{key}={amount:g}" for key, amount in request.items())
    raise ExecutorError(f"stage '{stage}' needs {wanted} on one {engine} worker but no worker has all of it")


class ClusterExecutor(BaseExecutor):
    """Skeleton of executors whose tasks produce native handles that stay on the cluster.

    Subclasses implement the engine hooks; this class owns chunking, ordering and progress.
    """

    queues_ahead = True
    chunk_size: int | None = None
    chunks_per_lane = 4  # cluster tasks cost milliseconds: fewer, larger chunks than on local threads
    _nodes: list[dict[str, float]]

    @abc.abstractmethod
    def _refresh_nodes(self) -> None:
        """Re-read what each worker or node offers into ``self._nodes``."""

    def _placed(self, stage: str, resources: dict[str, float]) -> dict[str, float]:
        """The non-zero amounts ``stage`` asks for, checked to fit on one node.

        The cluster is re-read once before giving up, since workers may have joined since.
        """
        request = {key: float(amount) for key, amount in resources.items() if amount}
        if request:
            try:
                check_placement(stage, request, self._nodes, self.kind.capitalize())
            except ExecutorError:
                self._refresh_nodes()
                check_placement(stage, request, self._nodes, self.kind.capitalize())
        return request

    @abc.abstractmethod
    def _task_options(self, stage: str, resources: dict[str, float]) -> tuple[Any, int]:
        """Engine task options for ``resources`` and how many such tasks run at once.

        Raises :class:`ExecutorError` naming the stage and the resource when no worker fits.
        """

    @abc.abstractmethod
    def _launch_call(self, call: StageCall, upstream: list[Any], options: Any, on_done: OnDone,
                     handle: TaskHandle) -> None:
        """Start one call; append its native handles to ``handle.futures``; report its end with
        :meth:`_call_over`."""

    @abc.abstractmethod
    def _launch_chunks(self, call: StageCall, items: Any, bounds: list[tuple[int, int]], rest: list[Any],
                       options: Any, report: ChunkReport, handle: TaskHandle) -> None:
        """Start one task per ``(start, stop)`` slice of ``items`` (a list or a native handle)."""

    @abc.abstractmethod
    def _length(self, items: Any, then: Callable[[int | TaskError], None]) -> None:
        """Find ``len(items)`` of a native handle on the cluster and call ``then`` with it."""

    @abc.abstractmethod
    def _is_handle(self, value: Any) -> bool:
        """Whether ``value`` is a native handle of this engine."""

    def _require_running(self) -> None:
        if not self._running:
            raise ExecutorError(f"the {self.kind} executor is not started")

    def submit(self, call: StageCall, upstream: list[Any], resources: dict[str, float], on_done: OnDone,
               then: None = None) -> TaskHandle:
        self._require_running()
        handle = TaskHandle()
        options, _ = self._task_options(call.stage, resources)
        self._launch_call(call, upstream, options, on_done, handle)
        return handle

    @staticmethod
    def _call_over(handle: TaskHandle, on_done: OnDone, output: Any, error: TaskError | None,
                   shipped: Any = None) -> None:
        """Report the end of a call: its output handle, or its error (a cancellation once cancelled),
        with what the stage printed when the worker shipped it along."""
        logs = None if shipped is None else [shipped]
        if error is None:
            on_done(Outcome(value=output, logs=logs))
        else:
            on_done(Outcome(error=cancelled_error() if handle.cancelled else error, logs=logs))

    def map(self, call: StageCall, items: Any, upstream_rest: list[Any], resources: dict[str, float],
            on_progress: OnProgress, on_done: OnDone) -> TaskHandle:
        self._require_running()
        handle = TaskHandle()
        options, lanes = self._task_options(call.stage, resources)

        def start(total: int | TaskError) -> None:
            if isinstance(total, TaskError):
                on_done(Outcome(error=total))
                return
            if handle.cancelled:
                on_done(Outcome(error=cancelled_error(), items_total=total))
                return
            if total == 0:
                on_done(Outcome(value=[], items_total=0))
                return
            size = chunk_size(total, lanes, self.chunk_size, self.chunks_per_lane)
            bounds = [(first, min(first + size, total)) for first in range(0, total, size)]
            state = MapState(total, len(bounds))

            def finished(first: int, stop: int, chunk: ChunkResult | TaskError | None) -> None:
                if isinstance(chunk, TaskError):
                    chunk = failed_chunk(first, stop, chunk)
                outcome = state.add(chunk, call.allow_partial_failure)
                on_progress(state.done, len(state.failures), total)
                if outcome is not None:
                    on_done(outcome)
                elif state.failures and not call.allow_partial_failure and not handle.cancelled:
                    self.cancel(handle)

            self._launch_chunks(call, items, bounds, upstream_rest, options, finished, handle)

        if self._is_handle(items):
            self._length(items, start)
        else:
            items = as_sequence(items)
            start(len(items))
        return handle
