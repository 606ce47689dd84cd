"""The Dask executor: stages as futures on a ``LocalCluster`` or an existing Dask scheduler.

Each stage is one future that takes its dependencies' futures as arguments, so outputs stay in
worker memory and move worker to worker. Parameterized stages run as chunks of items (one task per
chunk, each slicing the upstream output on the worker). Stage ``resources`` become Dask worker
resources: a local cluster declares ``cpus`` (threads per worker), ``gpus`` and custom labels on
each worker; for a remote scheduler, start workers with ``--resources "cpus=4 gpus=1"``. A request
no worker can meet fails the stage at once. The object store keeps values as published datasets
(futures on the cluster), so any picklable object is shared between stages and runs.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import logging
import os
import sys
import threading
import uuid
import zipfile
from typing import Any, Callable
from urllib.parse import quote

from distributed import Client, Future, LocalCluster, WorkerPlugin, get_client, get_worker
from distributed.diagnostics.plugin import UploadDirectory

from flowdapt.compute import logs, object_store
from flowdapt.compute.executors.cluster import (
    ChunkReport,
    ClusterExecutor,
    as_sequence,
    cancelled_error,
    worker_sys_path,
)
from flowdapt.compute.executors.base import OnDone, TaskHandle
from flowdapt.compute.invoke import ChunkResult, StageCall, TaskError, invoke, run_items
from flowdapt.errors import ExecutorError
from flowdapt.units import parse_bytes

_DATASET_PREFIX = "flowdapt/"
LOGS_TOPIC = "flowdapt-stage-logs"  # Dask events carrying what a stage printed back to the driver


class StageFailed(Exception):
    """Raised on a worker when a stage failed, so the future errs without shipping its output."""

    def __init__(self, error: TaskError) -> None:
        super().__init__(error)
        self.error = error


# -- worker side ------------------------------------------------------------------------------------
def _ensure_worker() -> None:
    """Give this process the Dask object store (once) so stages on workers reach it."""
    if object_store.cluster_memory("dask") is None:
        object_store.register_cluster_memory("dask", DaskMemory())


class _Opaque:
    """A plain value Dask must not walk into (it parses lists in task arguments item by item)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __reduce__(self):
        return (_Opaque, (self.value,))


def _opaque(values: list[Any]) -> list[Any]:
    return [value if isinstance(value, Future) else _Opaque(value) for value in values]


def _plain(values: tuple[Any, ...]) -> list[Any]:
    return [value.value if isinstance(value, _Opaque) else value for value in values]


def _invoke(call: StageCall, *upstream: Any) -> Any:
    _ensure_worker()
    logs.ensure_capture()
    value = invoke(call, _plain(upstream))
    shipped = logs.shipped(call.context)
    if shipped is not None:
        # The event reaches the client before the task's end does (both go through the scheduler in
        # order), so the runner has the lines when it records the stage; a value cannot carry them,
        # since it stays on the worker.
        context = call.context
        get_worker().log_event(LOGS_TOPIC, [context.run.uid, call.stage, context.attempt, shipped])
    if isinstance(value, TaskError):
        raise StageFailed(value)
    return value


def _deliver_logs(event: tuple[float, Any]) -> None:
    """The client's handler of :data:`LOGS_TOPIC` events (on its event loop)."""
    run_uid, stage, attempt, shipped = event[1]
    logs.deliver(run_uid, stage, attempt, shipped)


def _run_chunk(call: StageCall, items: Any, start: int, stop: int, sliced: bool, *rest: Any) -> ChunkResult:
    _ensure_worker()
    logs.ensure_capture()
    items = items.value if isinstance(items, _Opaque) else items
    chunk = items if sliced else as_sequence(items)[start:stop]
    return run_items(call, list(chunk), start, _plain(rest))


def _length(items: Any) -> int:
    return len(as_sequence(items))


class ShipPackages(WorkerPlugin):
    """Dask worker plugin: Python packages (folders, or single modules) sent as one archive, unpacked into
    each worker's local directory and put first on its ``sys.path`` (workers that join later get them too).
    What ``upload_plugins`` sends a remote cluster: its workers need not have the plugins installed."""

    name = "flowdapt-plugins"

    def __init__(self, paths: list[str]) -> None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in paths:
                if os.path.isfile(path):
                    archive.write(path, os.path.basename(path))
                    continue
                for folder, folders, files in os.walk(path):
                    folders[:] = [name for name in folders if name != "__pycache__"]
                    for file in files:
                        archive.write(os.path.join(folder, file),
                                      os.path.relpath(os.path.join(folder, file), os.path.dirname(path)))
        self.data = buffer.getvalue()
        self.folder = f"flowdapt-plugins-{hashlib.sha256(self.data).hexdigest()[:12]}"

    def setup(self, worker: Any) -> None:
        target = os.path.join(worker.local_directory, self.folder)
        with zipfile.ZipFile(io.BytesIO(self.data)) as archive:
            archive.extractall(target)
        if target not in sys.path:
            sys.path.insert(0, target)
        importlib.invalidate_caches()


class WorkerSetup(WorkerPlugin):
    """Dask worker plugin: the driver's ``sys.path`` entries on each worker's ``sys.path`` (given for the
    clusters the executor starts itself), and no "Compute Failed" log line for stage failures (they are
    recorded in the run instead)."""

    name = "flowdapt-worker-setup"

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def setup(self, worker: Any) -> None:
        for entry in self.paths:
            if entry not in sys.path and os.path.exists(entry):
                sys.path.append(entry)
        importlib.invalidate_caches()
        for name in ("distributed.worker", "distributed.worker.state_machine"):
            worker_logger = logging.getLogger(name)
            if not any(isinstance(existing, _StageFailureFilter) for existing in worker_logger.filters):
                worker_logger.addFilter(_StageFailureFilter())


class _StageFailureFilter(logging.Filter):
    """Drops the worker's log lines about what flowdapt records itself: a stage that failed ("Compute
    Failed"), and a stage task it cancelled (a timeout, a cancelled run)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message, args = str(record.msg), record.args
        if message.startswith("Async instruction for") and message.endswith("ended with CancelledError"):
            return False
        return not (message.startswith("Compute Failed") and isinstance(args, tuple) and len(args) > 3
                    and str(args[3]).startswith(StageFailed.__name__))


# -- object store -----------------------------------------------------------------------------------
class DaskMemory(object_store.ClusterMemory):
    """Cluster memory on Dask: each value is a future kept alive as a published dataset.

    ``client`` defaults to the worker's client (``distributed.get_client()``) inside tasks.
    """

    def __init__(self, client: Client | None = None) -> None:
        self._client = client

    def client(self) -> Client:
        if self._client is not None:
            return self._client
        return get_client()

    @staticmethod
    def _name(key: str, namespace: str) -> str:
        return f"{_DATASET_PREFIX}{quote(namespace, safe='')}/{quote(key, safe='')}"

    def put(self, key: str, value: Any, namespace: str) -> None:
        client = self.client()
        [future] = client.scatter([value], hash=False)
        client.publish_dataset(future, name=self._name(key, namespace), override=True)

    def get(self, key: str, namespace: str) -> Any:
        try:
            future = self.client().get_dataset(self._name(key, namespace))
        except KeyError:
            raise object_store.missing_key(key, namespace) from None
        return future.result()

    def delete(self, key: str, namespace: str) -> bool:
        try:
            self.client().unpublish_dataset(self._name(key, namespace))
            return True
        except KeyError:
            return False

    def exists(self, key: str, namespace: str) -> bool:
        return self._name(key, namespace) in self.client().list_datasets()

    def clear(self, namespace: str | None = None) -> None:
        prefix = _DATASET_PREFIX if namespace is None else f"{_DATASET_PREFIX}{quote(namespace, safe='')}/"
        client = self.client()
        for name in client.list_datasets():
            if isinstance(name, str) and name.startswith(prefix):
                client.unpublish_dataset(name)


# -- executor ---------------------------------------------------------------------------------------
class DaskExecutor(ClusterExecutor):
    """Run stages on Dask.

    Parameters
    ----------
    address : scheduler address to connect to (``tcp://host:8786``); None starts a ``LocalCluster``
    workers : worker processes of the local cluster (default: number of cores)
    threads : threads per worker (default 1)
    memory : memory limit per worker, e.g. ``"4GB"`` (default: Dask's ``"auto"``)
    gpus : gpus declared per local worker (default 0)
    resources : custom resources declared per local worker, e.g. ``{"trainer": 1}``
    processes : local workers as processes (default) or threads of this process
    dashboard_address : local dashboard address (default ``":0"``, a free port)
    upload : files or directories sent to the workers of a remote cluster (stage modules)
    upload_plugins : send the installed plugin packages (:mod:`flowdapt.plugins`) to a remote cluster's workers
    chunk_size : items per task of a parameterized stage (default: automatic)
    connect_timeout : seconds to wait for a remote scheduler
    """

    kind = "dask"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        threads: int = 1,
        memory: str | int | None = None,
        gpus: int = 0,
        resources: dict[str, float] | None = None,
        processes: bool = True,
        dashboard_address: str = ":0",
        upload: list[str] | None = None,
        upload_plugins: bool = True,
        chunk_size: int | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        super().__init__()
        self.address = address
        self.upload_plugins = upload_plugins
        self.workers = int(workers or os.cpu_count() or 1)
        self.threads = int(threads)
        self.memory = memory
        self.gpus = gpus
        self.resources = {key: float(value) for key, value in (resources or {}).items()}
        self.processes = processes
        self.dashboard_address = dashboard_address
        self.upload = list(upload or [])
        self.chunk_size = chunk_size
        self.connect_timeout = connect_timeout
        self._client: Client | None = None
        self._cluster: Any = None
        self._memory: DaskMemory | None = None
        self._nodes: list[dict[str, float]] = []
        self._declared: set[str] = set()
        self._threads_total = 1
        self._lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------------------
    @property
    def client(self) -> Client:
        """The ``distributed.Client`` of the executor (to use Dask directly next to flowdapt)."""
        if self._client is None:
            raise ExecutorError("the dask executor is not started")
        return self._client

    @property
    def dashboard_link(self) -> str | None:
        """URL of the Dask dashboard (what dask-labextension connects to), if there is one."""
        return self._client.dashboard_link if self._client is not None else None

    def start(self) -> None:
        with self._lock:
            if self._running:
                return
            self._release()  # leftovers of a cluster that was lost
            if self.address:
                try:
                    client = Client(self.address, timeout=self.connect_timeout, set_as_default=False)
                except (OSError, TimeoutError) as exc:
                    raise ExecutorError(f"cannot connect to the Dask scheduler at '{self.address}': {exc}") from None
            else:
                memory = parse_bytes(self.memory) if isinstance(self.memory, str) and self.memory != "auto" else self.memory
                declared = {"cpus": float(self.threads), **({"gpus": float(self.gpus)} if self.gpus else {}),
                            **self.resources}
                self._cluster = LocalCluster(
                    n_workers=self.workers, threads_per_worker=self.threads, processes=self.processes,
                    memory_limit=memory if memory is not None else "auto", resources=declared,
                    dashboard_address=self.dashboard_address, silence_logs=logging.WARNING,
                )
                client = Client(self._cluster, set_as_default=False)
            # Dask's client sends the scheduler at most one batch of messages per 10 ms (its BatchedSend's
            # interval): a run submitted just after any other message waited up to 10 ms for its first task.
            client.scheduler_comm.interval = 0
            self._client = client
            try:
                client.subscribe_topic(LOGS_TOPIC, _deliver_logs)
                # Our own local workers get the driver's import path; a cluster elsewhere gets code by `upload`.
                paths = worker_sys_path() if self._cluster is not None else []
                client.register_plugin(WorkerSetup(paths), name=WorkerSetup.name)
                self._upload(client)
                self._refresh_nodes()
            except Exception:
                self._release()
                raise
            self._memory = DaskMemory(client)
            object_store.register_cluster_memory("dask", self._memory)
            self._running = True

    def _upload(self, client: Client) -> None:
        if self.address and self.upload_plugins:
            from flowdapt.plugins import plugin_code_paths

            if paths := plugin_code_paths():
                client.register_plugin(ShipPackages(paths), name=ShipPackages.name)
        for path in self.upload:
            if os.path.isdir(path):
                client.register_plugin(UploadDirectory(path, update_path=True, restart_workers=False))
            elif os.path.isfile(path):
                client.upload_file(path)
            else:
                raise ExecutorError(f"dask executor: upload path '{path}' does not exist")

    def _refresh_nodes(self) -> None:
        workers = self.client.scheduler_info(n_workers=-1)["workers"].values()
        self._nodes = []
        self._declared = set()
        for worker in workers:
            declared = {key: float(value) for key, value in (worker.get("resources") or {}).items()}
            self._declared.update(declared)
            node = {"cpus": float(worker.get("nthreads", 1)), "memory": float(worker.get("memory_limit") or 0)}
            node.update(declared)
            if not node["memory"]:
                node.pop("memory")
                self._declared.add("memory")  # no limit: never refuse a memory request
            self._nodes.append(node)
        self._threads_total = max(1, int(sum(node["cpus"] for node in self._nodes)))

    def close(self) -> None:
        with self._lock:
            self._release()
            self._running = False

    def _release(self) -> None:
        if self._memory is not None:
            if object_store.cluster_memory("dask") is self._memory:
                object_store.register_cluster_memory("dask", None)
            if self._cluster is not None and self._running and self._client.status == "running":
                # The objects die with our cluster; release them first. At interpreter exit Dask's own exit
                # handler may have closed the client already: nothing is left to release then.
                self._memory.clear()
            self._memory = None
        client, cluster, self._client, self._cluster = self._client, self._cluster, None, None
        nanny = logging.getLogger("distributed.nanny")
        level = nanny.level
        if cluster is not None:  # our own workers may still run a cancelled stage: killing them is expected
            nanny.setLevel(logging.ERROR)
        try:
            for resource in (client, cluster):
                if resource is not None:
                    try:
                        resource.close()
                    except Exception:  # noqa: BLE001 - already gone with the cluster
                        pass
        finally:
            nanny.setLevel(level)

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"kind": self.kind, "running": self._running, "address": self.address,
                                "dashboard_link": self.dashboard_link}
        if self._client is not None:
            info.update(scheduler=self._client.scheduler.address, workers=len(self._nodes),
                        threads=self._threads_total, resources=sorted(self._declared - {"cpus", "memory"}))
        return info

    def resolve(self, values: list[Any]) -> list[Any]:
        return self.client.gather(values) if any(self._is_handle(value) for value in values) else values

    def cancel(self, handle: TaskHandle) -> None:
        handle.cancelled = True
        if handle.futures and self._client is not None:
            self._client.cancel(list(handle.futures))

    # -- engine hooks -------------------------------------------------------------------------------
    def _is_handle(self, value: Any) -> bool:
        return isinstance(value, Future)

    def _task_options(self, stage: str, resources: dict[str, float]) -> tuple[dict[str, float] | None, int]:
        request = self._placed(stage, resources)
        if not request:
            return None, self._threads_total
        dask_resources = {key: amount for key, amount in request.items() if key in self._declared}
        lanes = self._threads_total / request.get("cpus", 1.0)
        return dask_resources or None, max(1, int(lanes))

    def _key(self, call: StageCall) -> str:
        return f"{call.stage}-{uuid.uuid4().hex}"

    def _launch_call(self, call: StageCall, upstream: list[Any], options: Any, on_done: OnDone,
                     handle: TaskHandle) -> None:
        future = self.client.submit(_invoke, call, *_opaque(upstream), key=self._key(call), resources=options,
                                    pure=False)
        handle.futures.append(future)
        handle.output = future

        def done(future: Future) -> None:
            status = future.status
            if status == "finished":
                self._call_over(handle, on_done, future, None)
            else:
                self._call_over(handle, on_done, None, self._failure(future, call.stage, handle))

        future.add_done_callback(done)

    def _launch_chunks(self, call: StageCall, items: Any, bounds: list[tuple[int, int]], rest: list[Any],
                       options: Any, report: ChunkReport, handle: TaskHandle) -> None:
        client = self.client
        remote = self._is_handle(items)
        rest = _opaque(rest)
        for start, stop in bounds:
            chunk = items if remote else _Opaque(items[start:stop])
            future = client.submit(_run_chunk, call, chunk, start, stop, not remote, *rest, key=self._key(call),
                                   resources=options, pure=False)
            handle.futures.append(future)

            def done(future: Future, start: int = start, stop: int = stop) -> None:
                if future.status == "finished":
                    try:
                        report(start, stop, future.result())
                        return
                    except Exception as exc:  # noqa: BLE001 - the cluster went away while fetching
                        report(start, stop, TaskError.capture(exc))
                        return
                error = self._failure(future, call.stage, handle)
                report(start, stop, None if handle.cancelled else error)

            future.add_done_callback(done)

    def _length(self, items: Any, then: Callable[[int | TaskError], None]) -> None:
        future = self.client.submit(_length, items, key=f"len-{uuid.uuid4().hex}", pure=False)

        def done(future: Future) -> None:
            then(future.result() if future.status == "finished" else self._failure(future, "length", None))

        future.add_done_callback(done)

    def _failure(self, future: Future, stage: str, handle: TaskHandle | None) -> TaskError:
        """The error of a future that did not finish: the stage's own, a cancellation or a lost cluster."""
        if handle is not None and handle.cancelled:
            return cancelled_error()
        if future.status == "error":
            try:
                exc = future.exception()
            except Exception as lost:  # noqa: BLE001
                exc = lost
            if isinstance(exc, StageFailed):
                return exc.error
            return TaskError.capture(exc)
        client = self._client
        if client is None or client.status != "running" or (self._cluster is not None and self._cluster.status.name != "running"):
            self._running = False
            where = self.address or "the local Dask cluster"
            return TaskError("ExecutorError", f"lost the Dask cluster ({where}) while stage '{stage}' ran; "
                                              "the executor will start again on the next run", "")
        return TaskError("ExecutorError", f"Dask dropped the task of stage '{stage}' ({future.status})", "")
