"""The Ray executor: stages as Ray tasks on a local Ray instance or an existing Ray cluster.

Each stage is one task with two returns, ``(output, error)``: the runner learns success from the
small second object and hands the first (an ObjectRef) to dependent stages, so outputs stay in
the object store (numpy arrays are read zero-copy). The output comes first because Ray stores a
task's returns in order as its reply arrives, each store waking what waits on that object: the
dependent stage queued on the output is sent to a worker before the runner's completion callback
on the error object runs (the other order put that callback, and the GIL it waits for, between
one stage's end and the next one's start; docs/performance.md has the cost). Dependent stages
may be queued on the output before the stage finishes; the output of a failed stage is a marker on
which they return without running. Parameterized stages run as chunks of items.
Stage ``resources`` map to ``num_cpus``, ``num_gpus``, ``memory`` and custom resources; a request no
node can meet fails the stage at once. Remote functions are registered once per process.

Ray allows one cluster connection per process: executors in one process share it, and the last
one to close shuts down a local instance it started. The object store is a named actor holding
ObjectRefs it owns, so objects live as long as the cluster.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from typing import Any, Callable

import ray

from flowdapt.compute import logs, object_store
from flowdapt.compute.executors.base import OnDone, TaskHandle
from flowdapt.compute.executors.cluster import (
    ChunkReport,
    ClusterExecutor,
    as_sequence,
    cancelled_error,
    worker_sys_path,
)
from flowdapt.compute.invoke import ChunkResult, Shipped, StageCall, TaskError, invoke, run_items
from flowdapt.errors import ExecutorError
from flowdapt.units import parse_bytes

NAMESPACE = "flowdapt"
STORE_ACTOR = "flowdapt-object-store"
_RAY_KEYS = {"cpus": "CPU", "gpus": "GPU", "memory": "memory"}
_MONITOR_INTERVAL = 1.0  # seconds between checks that the connection to Ray is alive
_FORCE_CANCEL_AFTER = 2.0  # seconds a cancelled task gets to stop on its KeyboardInterrupt before its worker is killed


def _cancel_refs(refs: list[Any], force: bool) -> None:
    for ref in refs:
        try:
            ray.cancel(ref, force=force)
        except Exception:  # noqa: BLE001 - already finished or gone with the cluster
            pass


# -- worker side ------------------------------------------------------------------------------------
def _ensure_worker() -> None:
    """Give this process the Ray object store (once) so stages on workers reach it."""
    if object_store.cluster_memory("ray") is None:
        object_store.register_cluster_memory("ray", RayMemory())


class _Failed:
    """The output of a stage that failed: a stage queued on it returns at once without running.
    The class itself is the marker (a class pickles by name, so it stays the same object)."""


def _invoke(wire: tuple[Any, ...], *upstream: Any) -> tuple[Any, TaskError | Shipped | None]:
    """A stage task: ``(output, status)``; the status is None, the stage's error, or both of them
    :class:`Shipped` with what the stage printed (the small object the driver fetches)."""
    call = StageCall.from_wire(wire)
    if any(value is _Failed for value in upstream):
        return _Failed, TaskError("UpstreamFailedError", f"stage '{call.stage}' did not run: a dependency failed", "")
    _ensure_worker()
    logs.ensure_capture()
    value = invoke(call, list(upstream))
    error = value if isinstance(value, TaskError) else None
    shipped = logs.shipped(call.context)
    status = error if shipped is None else Shipped(error, shipped)
    return (_Failed, status) if error is not None else (value, status)


def _run_chunk(call: StageCall, chunk: list[Any], start: int, *rest: Any) -> ChunkResult:
    _ensure_worker()
    logs.ensure_capture()
    return run_items(call, list(chunk), start, list(rest))


def _split(items: Any, bounds: list[tuple[int, int]]) -> Any:
    sequence = as_sequence(items)
    slices = tuple(sequence[start:stop] for start, stop in bounds)
    return slices if len(slices) > 1 else slices[0]


def _length(items: Any) -> int:
    return len(as_sequence(items))


def _warm() -> int:
    time.sleep(0.2)  # long enough that the warm-up calls land on different workers
    return os.getpid()


class _Remote:
    """The remote functions, registered with Ray once per process (not per call)."""

    def __init__(self) -> None:
        self.invoke = ray.remote(num_returns=2, max_retries=0)(_invoke)
        self.chunk = ray.remote(max_retries=0)(_run_chunk)
        self.split = ray.remote(max_retries=0)(_split)
        self.length = ray.remote(max_retries=0)(_length)
        self.warm = ray.remote(max_retries=0)(_warm)
        self._variants: dict[tuple[Any, ...], Any] = {}

    def with_options(self, function: Any, options: dict[str, Any] | None) -> Any:
        if not options:
            return function
        key = (id(function), *sorted((name, repr(value)) for name, value in options.items()))
        variant = self._variants.get(key)
        if variant is None:
            variant = self._variants[key] = function.options(**options)
        return variant


_remote: _Remote | None = None


def _remotes() -> _Remote:
    global _remote
    if _remote is None:
        _remote = _Remote()
    return _remote


_ready: queue.SimpleQueue | None = None  # (awaited, value) of the refs Ray reported ready
_ready_lock = threading.Lock()
_log = logging.getLogger("flowdapt.executors")


def _reporting() -> queue.SimpleQueue:
    """The queue of the process's reporting thread, started on first use. It waits on this queue, not
    inside Ray (Ray fetched the values), so a ``ray.shutdown()`` cannot catch it in a blocking Ray call."""
    global _ready
    if _ready is None:
        with _ready_lock:
            if _ready is None:
                ready: queue.SimpleQueue = queue.SimpleQueue()
                threading.Thread(target=_report_ready, args=(ready,), name="flowdapt-ray-reports",
                                 daemon=True).start()
                _ready = ready
    return _ready


def _report_ready(ready: queue.SimpleQueue) -> None:
    """Settle each ref Ray reported ready with its value, in the order reported."""
    while True:
        awaited, value = ready.get()
        try:
            if isinstance(value, BaseException):  # what Ray hands over for a task that did not end normally
                awaited.executor._settle(awaited, None, value)
            else:
                awaited.executor._settle(awaited, value, None)
        except Exception:  # noqa: BLE001 - one failing report must not stop the others
            _log.exception("reporting a finished Ray task failed")


class _Awaited:
    """A ref the executor awaits (:meth:`RayExecutor._watch`): the done-callback of the ref's future,
    which Ray completes on its core worker's I/O thread; it only queues the value (or the exception of
    a task that did not end normally), and the reporting thread calls :meth:`settle`.

    One small object per ref, not closures: closures left enough objects per queued stage for
    Python's cyclic garbage collector to set off full collections over Ray's heap, holding the GIL
    that Ray's I/O thread waits for to report the next task (docs/performance.md has the figures).
    """

    __slots__ = ("executor",)

    def __init__(self, executor: "RayExecutor") -> None:
        self.executor = executor

    def __call__(self, future: Any) -> None:
        error = future.exception()
        _ready.put((self, future.result() if error is None else error))  # type: ignore[union-attr] - see _watch

    def settle(self, value: Any, exc: BaseException | None) -> None:
        raise NotImplementedError


class _CallAwaited(_Awaited):
    """The status object of a stage call: None, or the stage's TaskError."""

    __slots__ = ("stage", "handle", "on_done")

    def __init__(self, executor: "RayExecutor", stage: str, handle: TaskHandle, on_done: OnDone) -> None:
        super().__init__(executor)
        self.stage, self.handle, self.on_done = stage, handle, on_done

    def settle(self, status: TaskError | Shipped | None, exc: BaseException | None) -> None:
        handle = self.handle
        shipped = None
        if type(status) is Shipped:
            status, shipped = status.value, status.logs
        error = status
        if exc is not None:  # the task never ran to the end: cancelled, worker or cluster lost
            error = self.executor._failure(exc, self.stage, handle)
        ClusterExecutor._call_over(handle, self.on_done, handle.output if error is None else None, error, shipped)


class _Then(_Awaited):
    """Any other ref: ``then(value, None)``, or ``then(None, exception)``."""

    __slots__ = ("then",)

    def __init__(self, executor: "RayExecutor", then: Callable[[Any, BaseException | None], None]) -> None:
        super().__init__(executor)
        self.then = then

    def settle(self, value: Any, exc: BaseException | None) -> None:
        self.then(value, exc)


# -- object store -----------------------------------------------------------------------------------
class _StoreActor:
    """Holds ``{namespace: {key: [ObjectRef]}}``; the refs are owned by this actor."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, list[Any]]] = {}

    def put(self, namespace: str, key: str, ref: list[Any]) -> None:
        self.data.setdefault(namespace, {})[key] = ref

    def get(self, namespace: str, key: str) -> list[Any] | None:
        return self.data.get(namespace, {}).get(key)

    def delete(self, namespace: str, key: str) -> bool:
        return self.data.get(namespace, {}).pop(key, None) is not None

    def exists(self, namespace: str, key: str) -> bool:
        return key in self.data.get(namespace, {})

    def clear(self, namespace: str | None) -> None:
        if namespace is None:
            self.data.clear()
        else:
            self.data.pop(namespace, None)


def _store_actor() -> Any:
    """The cluster's object-store actor, created on first use (detached: it lives with the cluster)."""
    return ray.remote(_StoreActor).options(
        name=STORE_ACTOR, namespace=NAMESPACE, lifetime="detached", get_if_exists=True, num_cpus=0,
        max_restarts=0,
    ).remote()


class RayMemory(object_store.ClusterMemory):
    """Cluster memory on Ray: values in the object store, owned by a named actor (any picklable object)."""

    def __init__(self) -> None:
        self._actor: Any = None

    def actor(self) -> Any:
        if self._actor is None:
            self._actor = ray.get_actor(STORE_ACTOR, namespace=NAMESPACE)
        return self._actor

    def put(self, key: str, value: Any, namespace: str) -> None:
        actor = self.actor()
        ref = ray.put(value, _owner=actor)
        ray.get(actor.put.remote(namespace, key, [ref]))

    def get(self, key: str, namespace: str) -> Any:
        refs = ray.get(self.actor().get.remote(namespace, key))
        if refs is None:
            raise object_store.missing_key(key, namespace)
        return ray.get(refs[0])

    def delete(self, key: str, namespace: str) -> bool:
        return ray.get(self.actor().delete.remote(namespace, key))

    def exists(self, key: str, namespace: str) -> bool:
        return ray.get(self.actor().exists.remote(namespace, key))

    def clear(self, namespace: str | None = None) -> None:
        ray.get(self.actor().clear.remote(namespace))


# -- the process's connection to Ray --------------------------------------------------------------
_users: set[int] = set()  # ids of started RayExecutors in this process
_started_here = False
_connected_to: str | None = None  # the address this process connected with (Ray reports its node's IP instead)
_dashboard_url: str | None = None  # of the local instance this process started, when it has one
_connection_lock = threading.Lock()


def _connect(executor: "RayExecutor") -> None:
    global _started_here, _connected_to, _dashboard_url
    if ray.is_initialized():
        if executor.address and executor.address not in ("auto", "local", _connected_to, _current_address()):
            raise ExecutorError(f"this process is already connected to the Ray cluster at '{_current_address()}'; "
                                f"cannot also connect to '{executor.address}' (one Ray cluster per process)")
        return
    local = executor.address in (None, "local")
    if not local and executor.address != "auto":
        _probe(executor.address, executor.connect_timeout)
    options: dict[str, Any] = dict(
        address="local" if local else executor.address, namespace=NAMESPACE, logging_level=logging.WARNING,
        include_dashboard=executor.include_dashboard, runtime_env=executor._runtime_env(),
        ignore_reinit_error=False, configure_logging=True,
    )
    if local:
        options.update(num_cpus=executor.num_cpus, num_gpus=executor.num_gpus, resources=executor.resources or None,
                       object_store_memory=executor.object_store_memory)
        if executor.include_dashboard:
            options.update(dashboard_host="127.0.0.1", dashboard_port=executor.dashboard_port)
    environ = {"RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}
    if local:  # workers of a local instance inherit the environment: the driver's import path
        environ["PYTHONPATH"] = os.pathsep.join(worker_sys_path())
    saved = {name: os.environ.get(name) for name in environ}
    os.environ.update(environ)
    try:
        context = ray.init(**options)
    except Exception as exc:  # noqa: BLE001 - e.g. ConnectionError, TimeoutError, ValueError from Ray
        raise ExecutorError(f"cannot start or connect to Ray at '{executor.address or 'local'}': "
                            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    _started_here = True
    _connected_to = executor.address
    _dashboard_url = (getattr(context, "dashboard_url", None) or None) if executor.include_dashboard else None


def _probe(address: str, timeout: float) -> None:
    """Fail fast on an address nothing listens at (``ray.init`` would retry for minutes)."""
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        raise ExecutorError(f"cannot reach the Ray cluster at '{address}': {exc}") from None


def _current_address() -> str:
    try:
        return ray.get_runtime_context().gcs_address
    except Exception:  # noqa: BLE001
        return "?"


class RayExecutor(ClusterExecutor):
    """Run stages on Ray.

    Parameters
    ----------
    address : Ray cluster address (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``); None starts a local instance
    num_cpus, num_gpus : capacity of the local instance (default: what Ray detects)
    object_store_memory : object store size of the local instance, bytes or e.g. ``"2GB"``
    resources : custom resources of the local instance, e.g. ``{"trainer": 2}``
    include_dashboard : start Ray's dashboard with a local instance (default False)
    dashboard_port : its port when started
    runtime_env : Ray runtime environment for the job (``working_dir``, ``py_modules``, ``pip``, ``env_vars``)
    upload : module or package directories shipped to a remote cluster (added to ``py_modules``)
    upload_plugins : ship the installed plugin packages (:mod:`flowdapt.plugins`) to a remote cluster too
    chunk_size : items per task of a parameterized stage (default: automatic)
    connect_timeout : seconds to wait for a remote cluster's address to answer
    """

    kind = "ray"

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        num_gpus: int | None = None,
        object_store_memory: int | str | None = None,
        resources: dict[str, float] | None = None,
        include_dashboard: bool = False,
        dashboard_port: int = 8265,
        runtime_env: dict[str, Any] | None = None,
        upload: list[str] | None = None,
        upload_plugins: bool = True,
        chunk_size: int | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        super().__init__()
        self.address = address
        self.upload_plugins = upload_plugins
        self.connect_timeout = connect_timeout
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.object_store_memory = parse_bytes(object_store_memory) if object_store_memory is not None else None
        self.resources = {key: float(value) for key, value in (resources or {}).items()}
        self.include_dashboard = include_dashboard
        self.dashboard_port = dashboard_port
        self.runtime_env = dict(runtime_env or {})
        self.upload = list(upload or [])
        self.chunk_size = chunk_size
        self._nodes: list[dict[str, float]] = []
        self._cpus_total = 1
        self._lock = threading.Lock()
        self._pending: set[_Awaited] = set()  # refs watched, not settled yet
        self._pending_lock = threading.Lock()
        self._monitor_stop: threading.Event | None = None

    def _runtime_env(self) -> dict[str, Any] | None:
        env = dict(self.runtime_env)
        upload = list(self.upload)
        if self.upload_plugins and self.address not in (None, "local"):  # local workers import what we do
            from flowdapt.plugins import plugin_code_paths

            upload += [path for path in plugin_code_paths() if path not in upload]
        if upload:
            missing = [path for path in upload if not os.path.exists(path)]
            if missing:
                raise ExecutorError(f"ray executor: upload path '{missing[0]}' does not exist")
            env["py_modules"] = [*env.get("py_modules", []), *upload]
        return env or None

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock, _connection_lock:
            if self._running:
                return
            if self._monitor_stop is not None:  # the monitor of a connection that was lost
                self._monitor_stop.set()
            _connect(self)
            _users.add(id(self))
            try:
                self._refresh_nodes()
                _store_actor()
                if self.address in (None, "local"):  # import flowdapt in the workers now, not in the first run
                    ray.get([_remotes().warm.remote() for _ in range(min(self._cpus_total, 16))])
                object_store.register_cluster_memory("ray", RayMemory())
            except Exception:
                self._disconnect()
                raise
            self._monitor_stop = threading.Event()
            threading.Thread(target=self._monitor, args=(self._monitor_stop,), name="flowdapt-ray-monitor",
                             daemon=True).start()
            self._running = True

    def _refresh_nodes(self) -> None:
        self._nodes = []
        for node in ray.nodes():
            if node.get("Alive"):
                offered = node.get("Resources", {})
                entry = {name: float(offered.get(ray_key, 0.0)) for name, ray_key in _RAY_KEYS.items()}
                entry.update((key, float(value)) for key, value in offered.items() if key not in _RAY_KEYS.values())
                self._nodes.append(entry)
        self._cpus_total = max(1, int(sum(node["cpus"] for node in self._nodes)))

    def close(self) -> None:
        with self._lock, _connection_lock:
            self._running = False
            self._disconnect()

    def _disconnect(self) -> None:
        global _started_here, _connected_to, _dashboard_url
        if self._monitor_stop is not None:
            self._monitor_stop.set()
            self._monitor_stop = None
        _users.discard(id(self))
        if not _users:
            object_store.register_cluster_memory("ray", None)
            if _started_here:  # a connection the user made with ray.init() stays theirs
                ray.shutdown()
                _started_here, _connected_to, _dashboard_url = False, None, None

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"kind": self.kind, "running": self._running, "address": self.address}
        if self._running and _dashboard_url:
            info["dashboard_link"] = _dashboard_url if "://" in _dashboard_url else f"http://{_dashboard_url}"
        if self._running:
            context = ray.get_runtime_context()
            info.update(gcs_address=context.gcs_address, nodes=len(self._nodes), cpus=self._cpus_total,
                        resources=ray.cluster_resources())
        return info

    def resolve(self, values: list[Any]) -> list[Any]:
        refs = [value for value in values if isinstance(value, ray.ObjectRef)]
        if not refs:
            return values
        fetched = iter(ray.get(refs))
        return [next(fetched) if isinstance(value, ray.ObjectRef) else value for value in values]

    def cancel(self, handle: TaskHandle) -> None:
        """Interrupt the handle's tasks, and kill the workers of those still running a moment later.

        A forced cancel kills the worker at once, but Ray may already have handed that worker the next
        task (of this run or another), which then dies with it; so a running task first gets Ray's
        KeyboardInterrupt, which stops Python code at its next bytecode (running ``finally`` blocks)
        and keeps the worker; tasks still running ``_FORCE_CANCEL_AFTER`` later (blocked in one long
        C call such as ``time.sleep``, or ignoring the interrupt) have their workers killed.
        """
        handle.cancelled = True
        refs = self._unfinished(list(handle.futures))
        if not refs:
            return
        _cancel_refs(refs, force=False)
        timer = threading.Timer(_FORCE_CANCEL_AFTER, self._force_cancel, args=(refs,))
        timer.daemon = True
        timer.start()

    def _force_cancel(self, refs: list[Any]) -> None:
        _cancel_refs(self._unfinished(refs), force=True)

    def _unfinished(self, refs: list[Any]) -> list[Any]:
        """The refs whose tasks have not ended. Only those are cancelled: Ray 2.60's owner can abort
        the whole driver process when a cancel meets the completion of the same task (``Check
        failed: it != submissible_tasks_.end()``, ray-project/ray#54527), and the tasks a run's end
        cancels are often ending by themselves (those queued on a failed stage return at once)."""
        if not refs or not self._running or not ray.is_initialized():
            return []
        try:
            _, unfinished = ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=False)
        except Exception:  # noqa: BLE001 - gone with the cluster
            return []
        return unfinished

    # -- engine hooks -------------------------------------------------------------------------------
    def _is_handle(self, value: Any) -> bool:
        return isinstance(value, ray.ObjectRef)

    def _task_options(self, stage: str, resources: dict[str, float]) -> tuple[dict[str, Any] | None, int]:
        request = self._placed(stage, resources)
        if not request:
            return None, self._cpus_total
        options: dict[str, Any] = {}
        custom = {}
        for key, amount in request.items():
            if key == "cpus":
                options["num_cpus"] = amount
            elif key == "gpus":
                options["num_gpus"] = amount
            elif key == "memory":
                options["memory"] = int(amount)
            else:
                custom[key] = amount
        if custom:
            options["resources"] = custom
        return options, max(1, int(self._cpus_total / request.get("cpus", 1.0)))

    def _launch_call(self, call: StageCall, upstream: list[Any], options: Any, on_done: OnDone,
                     handle: TaskHandle) -> None:
        remote = _remotes()
        value_ref, error_ref = remote.with_options(remote.invoke, options).remote(call.to_wire(), *upstream)
        handle.futures.append(error_ref)
        handle.output = value_ref
        self._watch(error_ref, _CallAwaited(self, call.stage, handle, on_done))

    def _launch_chunks(self, call: StageCall, items: Any, bounds: list[tuple[int, int]], rest: list[Any],
                       options: Any, report: ChunkReport, handle: TaskHandle) -> None:
        remote = _remotes()
        if self._is_handle(items):
            slices = remote.split.options(num_returns=len(bounds)).remote(items, bounds)
            slices = slices if len(bounds) > 1 else [slices]
        else:
            slices = [items[start:stop] for start, stop in bounds]
        task = remote.with_options(remote.chunk, options)
        for (start, stop), chunk in zip(bounds, slices):
            ref = task.remote(call, chunk, start, *rest)
            handle.futures.append(ref)

            def settle(result: ChunkResult | None, exc: BaseException | None, start: int = start,
                       stop: int = stop) -> None:
                if exc is not None:
                    report(start, stop, None if handle.cancelled else self._failure(exc, call.stage, handle))
                else:
                    report(start, stop, result)

            self._watch(ref, _Then(self, settle))

    def _length(self, items: Any, then: Callable[[int | TaskError], None]) -> None:
        def settle(length: int, exc: BaseException | None) -> None:
            then(length if exc is None else self._failure(exc, "length", None))

        self._watch(_remotes().length.remote(items), _Then(self, settle))

    def _watch(self, ref: Any, awaited: _Awaited) -> None:
        """Call ``awaited.settle(value, None)`` or ``awaited.settle(None, exception)`` exactly once when
        ``ref`` is ready, or when the connection to the cluster is lost (Ray then never completes the ref).

        Ray completes the ref's future on its core worker's I/O thread, the thread that also hands the
        next queued task its inputs, so the callback only queues the value: the reporting thread
        (:func:`_report_ready`) settles it, and the runner's bookkeeping runs there, not between one
        task's end and the next one's start.
        """
        with self._pending_lock:
            self._pending.add(awaited)
        _reporting()
        ref.future().add_done_callback(awaited)

    def _settle(self, awaited: _Awaited, value: Any, exc: BaseException | None) -> None:
        with self._pending_lock:
            if awaited not in self._pending:
                return  # settled already (the connection was lost first)
            self._pending.remove(awaited)
        awaited.settle(value, exc)

    def _monitor(self, stop: threading.Event) -> None:
        """Fail what is in flight once the connection to Ray is gone."""
        while not stop.wait(_MONITOR_INTERVAL):
            if self._pending and not ray.is_initialized():
                with self._pending_lock:
                    awaited = list(self._pending)
                lost = ConnectionError("the connection to Ray was closed")
                for each in awaited:
                    self._settle(each, None, lost)

    def _failure(self, exc: BaseException, stage: str, handle: TaskHandle | None) -> TaskError:
        """A task that raised inside Ray: a cancellation, a dead worker, or a lost cluster."""
        if handle is not None and handle.cancelled:
            return cancelled_error()
        if not ray.is_initialized() or isinstance(exc, (SystemExit, ConnectionError, ray.exceptions.RaySystemError)):
            self._running = False
            return TaskError("ExecutorError", f"lost the Ray cluster while stage '{stage}' ran: {type(exc).__name__}; "
                                              "the executor will start again on the next run", "")
        cause = getattr(exc, "cause", None)
        return TaskError.capture(cause if isinstance(cause, BaseException) else exc)
