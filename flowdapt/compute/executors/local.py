"""The local executor: stages on a thread pool (default) or a process pool on this machine.

``resources.cpus`` limits how many calls run at once: the executor has ``cpus`` of capacity
(default: the machine's cores) and each call holds what its stage asks for (default 1; a request
larger than the whole executor is clamped to it, so the stage runs alone). Resources declared in
``resources`` (e.g. ``{"gpus": 1}``) are accounted the same way; asking for more than is declared
fails the stage at once; undeclared resources are not tracked locally. ``gpus`` is declared by
itself when not given: the GPUs this process may use (:func:`detected_gpus`), as Ray counts them;
on a machine with none it stays undeclared, so a stage written for a GPU cluster still runs here.

Parameterized stages are cut into chunks (about eight per parallel lane, at most 1024 items) that
run in parallel; process workers receive functions by cloudpickle and reach the object store over
a Unix socket served from the driver.

Continuations (threads)
-----------------------
In thread mode :meth:`LocalExecutor.submit` takes ``then`` (``BaseExecutor.continues_calls``), and
a chain of stages goes on in the worker thread of its last stage:

1. ``submit(call, upstream, resources, on_done, then)`` schedules a :class:`_Call`; once its
   capacity is free it runs on a pool thread (:func:`_run_on_thread`).
2. :meth:`_Call.run` calls the stage. A failure goes to ``on_done``; a value goes to ``then``,
   which is the runner's ``StageValue`` report, handled at once on this thread.
3. ``then`` returns the :data:`~flowdapt.compute.executors.base.Continuation` of a dependent the
   value made ready, if any: the arguments ``submit`` would take.
4. When that call asks for the same resources and no other call waits for capacity, the same
   ``_Call`` object is reset to it and runs next on this thread, still holding the capacity (no
   release, no queue, no thread switch). Otherwise the capacity is released and the continuation
   is scheduled like any new call.
5. Calls a worker's report makes ready otherwise (a fan-out, capacity given back) are launched
   from that thread: the first waits in ``_worker.queue`` and runs on this thread once the current
   call is over, the others go to pool threads; a thread that goes on with a continuation hands
   the queued one to the pool too.

Everything a continuation does is what ``submit`` would have done; only the hop through the pool's
queue is saved.
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import os
import sys
import threading
from collections import deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Callable, Literal

from flowdapt.compute import logs, object_store
from flowdapt.compute.executors.base import BaseExecutor, OnDone, OnProgress, Outcome, TaskHandle, Then
from flowdapt.compute.executors.cluster import MapState, cancelled_error, chunk_size, failed_chunk
from flowdapt.compute.invoke import ChunkResult, Shipped, StageCall, TaskError, invoke, invoke_and_ship, run_items
from flowdapt.errors import ExecutorError

_EPSILON = 1e-9


class _Call:
    """One scheduled call: what it runs, the capacity it holds once launched (given back exactly
    once), and where its value goes (``report``; ``_CANCELLED`` when it was dropped unrun; a
    successful value goes to ``then`` instead where the runner gave one).

    One object per call instead of closures: the chain of a thread-mode stage is the hot path.
    """

    __slots__ = ("executor", "handle", "need", "function", "args", "report", "then", "resources", "held", "released")

    def __init__(self, executor: "LocalExecutor", handle: TaskHandle, need: dict[str, float],
                 function: Callable[..., Any], args: tuple[Any, ...], report: Callable[[Any], None],
                 then: Then | None = None, resources: dict[str, float] | None = None) -> None:
        self.executor = executor
        self.handle: TaskHandle | None = handle
        self.need = need
        self.function = function
        self.args = args
        self.report = report
        self.then = then
        self.resources = resources  # what the stage asked for (``need`` is computed from it)
        self.held = False
        self.released = False

    def launch(self) -> None:
        """Hand the call to the pool (its capacity is held)."""
        if self.handle.cancelled:
            self.done(_CANCELLED)
            return
        try:
            self.executor._launch(self)
        except Exception as exc:  # noqa: BLE001 - e.g. the pool was shut down under us
            self.done(TaskError.capture(exc))

    def run(self) -> "_Call | None":
        """Run on this worker thread and report; returns the call to run next here, holding the
        same capacity: this one again, set up for the :data:`Continuation` that ``then`` gave."""
        if self.handle.cancelled:
            self.done(_CANCELLED)
            return None
        try:
            value = self.function(*self.args)
        except BaseException as exc:  # noqa: BLE001 - reported like any other failure
            value = TaskError.capture(exc)
        then = self.then
        if then is None or type(value) is TaskError:
            self.done(value)
            return None
        following = then(value)
        if following is None:
            self.done(_REPORTED)
            return None
        call, upstream, resources, then, on_done = following
        executor = self.executor
        report = functools.partial(_report_outcome, on_done)
        capacity = executor._capacity
        if resources == self.resources and not capacity.waiting:
            queued = _worker.queue
            while queued:  # calls the same report made ready go to other threads: this one goes on here
                executor._to_pool(queued.popleft())
            self.args = (call, upstream)
            self.report = report
            self.then = then
            return self
        # Other needs, or calls waiting for capacity (which go first): queued as any new call.
        handle = self.handle
        self.done(_REPORTED)
        try:
            executor._schedule(handle, capacity.need(call.stage, resources), invoke, (call, upstream), report,
                               then, resources)
        except ExecutorError as exc:
            report(TaskError.capture(exc))
        return None

    def done(self, value: Any) -> None:
        """Give the capacity back (launching the calls that now fit), then report ``value``
        (``_REPORTED``: nothing left to report)."""
        self.handle = None  # the handle lists this call: no cycle left for the garbage collector
        for ready in self.executor._capacity.release(self):
            ready.launch()
        if value is not _REPORTED:
            self.report(value)


class _Capacity:
    """Counts free resources; calls that do not fit wait in FIFO order."""

    def __init__(self, total: dict[str, float]) -> None:
        self.total = total
        self.free = dict(total)
        self.waiting: deque[_Call] = deque()
        self.lock = threading.Lock()
        self._needs: dict[int, tuple[dict[str, float], dict[str, float]]] = {}

    def need(self, stage: str, resources: dict[str, float]) -> dict[str, float]:
        """The amounts ``stage`` holds while a call runs (cached per resources dict)."""
        cached = self._needs.get(id(resources))
        if cached is not None and cached[0] is resources:
            return cached[1]
        need = {"cpus": min(resources.get("cpus") or 1.0, self.total["cpus"])}
        for key, amount in resources.items():
            if key in self.total and key != "cpus" and amount:
                if amount > self.total[key] + _EPSILON:
                    raise ExecutorError(
                        f"stage '{stage}' needs {key}={amount:g} but the local executor has {key}={self.total[key]:g}"
                    )
                need[key] = amount
        if len(self._needs) > 1024:
            self._needs.clear()
        self._needs[id(resources)] = (resources, need)
        return need

    def acquire_or_wait(self, call: _Call) -> bool:
        """Take ``call.need`` now (True) or queue ``call`` until it fits (False)."""
        with self.lock:
            if not self.waiting and self._take_if_fits(call.need):
                call.held = True
                return True
            self.waiting.append(call)
            return False

    def release(self, call: _Call) -> list[_Call]:
        """Give back what ``call`` holds; returns the queued calls that now fit (to launch)."""
        if call.released or not call.held:
            return _NOTHING_READY
        with self.lock:
            if call.released:
                return _NOTHING_READY
            call.released = True
            free = self.free
            need = call.need
            if len(need) == 1:  # cpus only (every need has cpus): the common case, without a loop
                free["cpus"] += need["cpus"]
            else:
                for key, amount in need.items():
                    free[key] += amount
            waiting = self.waiting
            if not waiting:
                return _NOTHING_READY
            ready = []
            while waiting and self._take_if_fits(waiting[0].need):
                next_call = waiting.popleft()
                next_call.held = True
                ready.append(next_call)
        return ready

    def _take_if_fits(self, need: dict[str, float]) -> bool:
        """Take ``need`` if all of it is free (caller holds the lock)."""
        free = self.free
        if len(need) == 1:  # cpus only, as in release()
            amount = need["cpus"]
            if free["cpus"] + _EPSILON < amount:
                return False
            free["cpus"] -= amount
            return True
        for key, amount in need.items():
            if free[key] + _EPSILON < amount:
                return False
        for key, amount in need.items():
            free[key] -= amount
        return True


_NOTHING_READY: list[_Call] = []  # never appended to


def detected_gpus() -> int:
    """The NVIDIA GPUs this process may use: the devices ``CUDA_VISIBLE_DEVICES`` lists when it is
    set (up to its first invalid entry, as CUDA reads it: ``""`` or ``"-1"`` hide them all), else the
    GPUs the driver lists under ``/proc/driver/nvidia/gpus`` (0 without the driver)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        count = 0
        for entry in visible.split(","):
            entry = entry.strip()
            if not entry or entry.startswith("-"):
                break
            count += 1
        return count
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0


def _init_process_worker(memory_path: str, sys_path: list[str]) -> None:
    for entry in sys_path:
        if entry not in sys.path:
            sys.path.append(entry)
    object_store.register_cluster_memory("local", object_store.SocketMemory(memory_path))
    logs.ensure_capture()


class LocalExecutor(BaseExecutor):
    """Run stages on this machine.

    Parameters
    ----------
    mode : ``"threads"`` (default) or ``"processes"``
    cpus : capacity in cpus (default: number of cores)
    workers : process count in process mode (default: ``cpus`` rounded up)
    resources : other capacities to account, e.g. ``{"gpus": 1}`` (``gpus`` defaults to :func:`detected_gpus`
        where that finds any; ``{"gpus": 0}`` fails every stage that asks for one)
    chunk_size : items per chunk of a parameterized stage (default: automatic)
    start_method : multiprocessing start method for process mode (default ``forkserver``)
    """

    kind = "local"

    def __init__(
        self,
        mode: Literal["threads", "processes"] = "threads",
        cpus: float | None = None,
        workers: int | None = None,
        resources: dict[str, float] | None = None,
        chunk_size: int | None = None,
        start_method: str = "forkserver",
    ) -> None:
        super().__init__()
        if mode not in ("threads", "processes"):
            raise ExecutorError(f"local executor mode must be 'threads' or 'processes', got '{mode}'")
        self.mode = mode
        self.continues_calls = mode == "threads"
        # Process workers send what a stage printed back with its value (threads write to the run's capture).
        self._invoke = invoke if mode == "threads" else invoke_and_ship
        self.cpus = float(cpus or os.cpu_count() or 1)
        self.workers = int(workers or math.ceil(self.cpus))
        self.resources = {key: float(value) for key, value in (resources or {}).items()}
        if "gpus" not in self.resources and (gpus := detected_gpus()):
            self.resources["gpus"] = float(gpus)
        self.chunk_size = chunk_size
        self.start_method = start_method
        self._pool: Executor | None = None
        self._memory_server: object_store.MemoryServer | None = None
        self._capacity = _Capacity({"cpus": self.cpus, **self.resources})
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._running:
                return
            if self.mode == "threads":
                self._pool = ThreadPoolExecutor(max_workers=max(32, self.workers * 4), thread_name_prefix="flowdapt")
            else:
                self._memory_server = object_store.MemoryServer(object_store.CurrentLocalMemory())
                path = self._memory_server.path
                context = multiprocessing.get_context(self.start_method)
                if self.start_method == "forkserver":
                    # The default preload re-runs the user's __main__ (scripts without a main guard
                    # would start their runs again); stage callables travel by cloudpickle instead.
                    context.set_forkserver_preload(["flowdapt.compute.invoke"])
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=context,
                    initializer=_init_process_worker,
                    initargs=(path, list(sys.path)),
                )
            self._running = True

    def close(self) -> None:
        with self._lock:
            if not self._running:
                return
            self._running = False
            assert self._pool is not None
            self._pool.shutdown(wait=self.mode == "processes", cancel_futures=True)
            self._pool = None
            if self._memory_server is not None:
                self._memory_server.close()
                self._memory_server = None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "mode": self.mode, "cpus": self.cpus, "workers": self.workers,
                "resources": self.resources, "running": self._running}

    def _pool_or_fail(self) -> Executor:
        if self._pool is None:
            raise ExecutorError("the local executor is not started")
        return self._pool

    def _schedule(self, handle: TaskHandle, need: dict[str, float], function: Callable[..., Any],
                  args: tuple[Any, ...], report: Callable[[Any], None], then: Then | None = None,
                  resources: dict[str, float] | None = None) -> None:
        """Run ``function(*args)`` once ``need`` (from ``resources``) fits; ``report`` gets its value
        (``_CANCELLED`` if dropped), or ``then`` a successful one where given (threads)."""
        call = _Call(self, handle, need, function, args, report, then, resources)
        handle.slots.append(call)
        if self._capacity.acquire_or_wait(call):
            call.launch()

    def _launch(self, call: _Call) -> None:
        if self.mode == "threads":
            queue = getattr(_worker, "queue", None)
            if queue is not None and not queue:
                # We are on a worker thread reporting a finished call: run the first call that
                # became ready right here, after it returns, instead of waking another thread.
                queue.append(call)
                return
            self._to_pool(call)
        else:
            handle = call.handle  # read first: the call may be over (and let go of it) before submit returns
            future = self._pool_or_fail().submit(call.function, *call.args)
            future.add_done_callback(lambda f: call.done(_future_value(f)))
            handle.futures.append(future)

    def _to_pool(self, call: _Call) -> None:
        """Start a thread-mode call on a pool thread."""
        handle = call.handle  # read first: the call may be over (and let go of it) before submit returns
        future = self._pool_or_fail().submit(_run_on_thread, call)
        future.add_done_callback(lambda f: f.cancelled() and call.done(_CANCELLED))
        handle.futures.append(future)

    def cancel(self, handle: TaskHandle) -> None:
        """Cancel, and give back the capacity of calls that cannot be interrupted.

        A thread cannot be stopped from outside: a cancelled or timed-out call may go on in the
        background, but it no longer holds the executor's capacity, so the next runs move on.
        In process mode the worker process stays busy until the call returns.
        """
        super().cancel(handle)
        for call in handle.slots:
            for ready in self._capacity.release(call):
                ready.launch()

    def submit(self, call: StageCall, upstream: list[Any], resources: dict[str, float], on_done: OnDone,
               then: Then | None = None) -> TaskHandle:
        handle = TaskHandle()
        self._pool_or_fail()
        self._schedule(handle, self._capacity.need(call.stage, resources), self._invoke, (call, upstream),
                       functools.partial(_report_outcome, on_done), then, resources)
        return handle

    def map(self, call: StageCall, items: Any, upstream_rest: list[Any], resources: dict[str, float],
            on_progress: OnProgress, on_done: OnDone) -> TaskHandle:
        handle = TaskHandle()
        self._pool_or_fail()
        need = self._capacity.need(call.stage, resources)
        items = items if isinstance(items, list) else list(items)
        total = len(items)
        if total == 0:
            on_done(Outcome(value=[], items_total=0))
            return handle
        lanes = max(1, int(self.cpus // need["cpus"]))
        size = chunk_size(total, lanes, self.chunk_size)
        state = MapState(total, math.ceil(total / size))
        stop = handle.stop if self.mode == "threads" else None

        def finished(start: int, count: int, value: Any) -> None:
            outcome = state.add(_chunk_value(value, start, count), call.allow_partial_failure)
            on_progress(state.done, len(state.failures), total)
            if outcome is not None:
                on_done(outcome)
            elif state.failures and not call.allow_partial_failure:
                self.cancel(handle)

        for start in range(0, total, size):
            chunk = items[start:start + size]
            self._schedule(handle, need, run_items, (call, chunk, start, upstream_rest, stop),
                           functools.partial(finished, start, len(chunk)))
        return handle


_CANCELLED = object()  # what a call reports when it was dropped before it ran
_REPORTED = object()  # what a call passes to done() when its value already went to ``then``
_worker = threading.local()  # .queue: calls to run next on this worker thread


def _report_outcome(on_done: OnDone, value: Any) -> None:
    """Report a submitted call's value as its :class:`Outcome`."""
    if value is _CANCELLED:
        on_done(Outcome(error=cancelled_error("cancelled before it started")))
    elif type(value) is TaskError:
        on_done(Outcome(error=value))
    elif type(value) is Shipped:  # from a process worker, with the attempt's logs
        failed = type(value.value) is TaskError
        on_done(Outcome(None if failed else value.value, value.value if failed else None, logs=[value.logs]))
    else:
        on_done(Outcome(value))


def _run_on_thread(call: _Call) -> None:
    """A thread-pool task: run the call and what it continues with, then what their reports made
    ready here."""
    queue = _worker.queue = deque([call])
    try:
        while queue:
            following: _Call | None = queue.popleft()
            while following is not None:
                following = following.run()
    finally:
        _worker.queue = None


def _future_value(future: Future) -> Any:
    if future.cancelled():
        return _CANCELLED
    try:
        return future.result()
    except BaseException as exc:  # noqa: BLE001 - e.g. unpicklable argument, broken pool
        return TaskError.capture(exc)


def _chunk_value(value: Any, start: int, count: int) -> ChunkResult | None:
    """The chunk's result; a chunk that failed as a whole (e.g. unpicklable items) fails each item."""
    if value is _CANCELLED:
        return None
    if isinstance(value, TaskError):
        return failed_chunk(start, start + count, value)
    return value
