"""The object store: share any picklable object between stages and runs.

``put/get/delete/exists(key, [value], namespace=...)``. Objects live in *cluster memory* (the
driver's memory for the local executor, served to process workers over a Unix socket; Dask and
Ray executors register their own backends) with a file *artifact* fallback through fsspec under
the app dir. Strategies: ``fallback`` (default: cluster memory, artifacts when it is unavailable),
``cluster_memory`` and ``artifact``.
"""

from __future__ import annotations

import abc
import os
import pickle
import shutil
import socket
import socketserver
import struct
import tempfile
import threading
from typing import Any, Literal
from urllib.parse import quote, unquote

import cloudpickle

from flowdapt import process
from flowdapt.compute.context import current_run_context

Strategy = Literal["fallback", "cluster_memory", "artifact"]
_MISSING = object()


def missing_key(key: str, namespace: str) -> KeyError:
    return KeyError(f"object '{key}' not found in namespace '{namespace}'")


class ClusterMemory(abc.ABC):
    """A namespaced key/value store held in a cluster's memory."""

    @abc.abstractmethod
    def put(self, key: str, value: Any, namespace: str) -> None: ...

    @abc.abstractmethod
    def get(self, key: str, namespace: str) -> Any:
        """Return the value or raise ``KeyError``."""

    @abc.abstractmethod
    def delete(self, key: str, namespace: str) -> bool:
        """Remove the key; ``True`` if it was there."""

    @abc.abstractmethod
    def exists(self, key: str, namespace: str) -> bool: ...

    @abc.abstractmethod
    def clear(self, namespace: str | None = None) -> None: ...


class LocalMemory(ClusterMemory):
    """Cluster memory of the local executor: a dict in the driver process."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def put(self, key: str, value: Any, namespace: str) -> None:
        with self._lock:
            self._data.setdefault(namespace, {})[key] = value

    def get(self, key: str, namespace: str) -> Any:
        value = self._data.get(namespace, {}).get(key, _MISSING)
        if value is _MISSING:
            raise missing_key(key, namespace)
        return value

    def delete(self, key: str, namespace: str) -> bool:
        with self._lock:
            return self._data.get(namespace, {}).pop(key, _MISSING) is not _MISSING

    def exists(self, key: str, namespace: str) -> bool:
        return key in self._data.get(namespace, {})

    def clear(self, namespace: str | None = None) -> None:
        with self._lock:
            if namespace is None:
                self._data.clear()
            else:
                self._data.pop(namespace, None)


_HEADER = struct.Struct("!Q")


def _send(sock: socket.socket, payload: Any) -> None:
    data = cloudpickle.dumps(payload, protocol=5)
    if len(data) < 65536:  # one write for small frames; no copy of large ones
        sock.sendall(_HEADER.pack(len(data)) + data)
    else:
        sock.sendall(_HEADER.pack(len(data)))
        sock.sendall(data)


def _receive(sock: socket.socket) -> Any:
    header = _read_exactly(sock, _HEADER.size)
    return pickle.loads(_read_exactly(sock, _HEADER.unpack(header)[0]))


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    view = memoryview(buffer)
    while size:
        received = sock.recv_into(view, size)
        if not received:
            raise ConnectionError("cluster memory connection closed")
        view = view[received:]
        size -= received
    return bytes(buffer)


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        memory: ClusterMemory = self.server.memory  # type: ignore[attr-defined]
        while True:
            try:
                operation, args = _receive(self.request)
            except (ConnectionError, OSError):
                return
            try:
                if operation not in ("put", "get", "delete", "exists", "clear"):
                    raise ValueError(f"Invalid operation: {operation}")
                reply = (True, getattr(memory, operation)(*args))
            except Exception as exc:  # noqa: BLE001 - sent back to the caller
                reply = (False, exc)
            _send(self.request, reply)


class MemoryServer:
    """Serves a :class:`ClusterMemory` to worker processes over a Unix socket.

    The socket unpickles what reaches it, so only this user may reach it: it lives in a folder of its
    own that :func:`tempfile.mkdtemp` makes with mode 0700, and is itself mode 0600.
    """

    def __init__(self, memory: ClusterMemory) -> None:
        self._folder = tempfile.mkdtemp(prefix="flowdapt-memory-")
        self.path = os.path.join(self._folder, "memory.sock")
        self._server = socketserver.ThreadingUnixStreamServer(self.path, _Handler)
        os.chmod(self.path, 0o600)
        self._server.daemon_threads = True
        self._server.memory = memory  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name="flowdapt-memory", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        shutil.rmtree(self._folder, ignore_errors=True)


class SocketMemory(ClusterMemory):
    """Client of a :class:`MemoryServer` (one connection per thread)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()

    def _call(self, operation: str, *args: Any) -> Any:
        sock = getattr(self._local, "sock", None)
        if sock is None:
            sock = self._local.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.path)
        try:
            _send(sock, (operation, args))
            ok, value = _receive(sock)
        except OSError:
            self._local.sock = None
            raise
        if not ok:
            raise value
        return value

    def put(self, key: str, value: Any, namespace: str) -> None:
        self._call("put", key, value, namespace)

    def get(self, key: str, namespace: str) -> Any:
        return self._call("get", key, namespace)

    def delete(self, key: str, namespace: str) -> bool:
        return self._call("delete", key, namespace)

    def exists(self, key: str, namespace: str) -> bool:
        return self._call("exists", key, namespace)

    def clear(self, namespace: str | None = None) -> None:
        self._call("clear", namespace)


class ArtifactStore:
    """Objects as files through fsspec: ``{root}/artifacts/{namespace}/{key}``, cloudpickled."""

    def __init__(self, protocol: str, root: str, **options: Any) -> None:
        import fsspec

        self.fs = fsspec.filesystem(protocol, **options)
        self.root = root.rstrip("/")

    def path(self, key: str, namespace: str) -> str:
        # Keys and namespaces become single, quoted path components: no path escapes its root.
        return f"{self.root}/artifacts/{_component(namespace)}/{_component(key)}"

    def put(self, key: str, value: Any, namespace: str) -> None:
        """Write the object beside its path, then move it there: a failed write (a full disk) leaves the
        previous value of ``key``, if any, and no partial file."""
        path = self.path(key, namespace)
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        temporary = path + ".partial"
        try:
            with self.fs.open(temporary, "wb") as handle:
                handle.write(cloudpickle.dumps(value, protocol=5))
            self.fs.mv(temporary, path)
        except OSError as exc:
            if self.fs.exists(temporary):
                self.fs.rm(temporary)
            raise OSError(exc.errno, f"object '{key}' in namespace '{namespace}' was not stored as an artifact "
                                     f"({path}): {exc.strerror or exc}") from exc

    def get(self, key: str, namespace: str) -> Any:
        try:
            with self.fs.open(self.path(key, namespace), "rb") as handle:
                return pickle.loads(handle.read())
        except FileNotFoundError:
            raise missing_key(key, namespace) from None

    def delete(self, key: str, namespace: str) -> bool:
        path = self.path(key, namespace)
        if not self.fs.exists(path):
            return False
        self.fs.rm(path)
        return True

    def exists(self, key: str, namespace: str) -> bool:
        return self.fs.exists(self.path(key, namespace))

    def delete_prefix(self, prefix: str, namespace: str) -> int:
        """Delete every object of ``namespace`` whose key starts with ``prefix``; returns how many."""
        folder = f"{self.root}/artifacts/{_component(namespace)}"
        if not self.fs.exists(folder):
            return 0
        deleted = 0
        for path in self.fs.ls(folder, detail=False):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            if not name.endswith(".partial") and unquote(name).startswith(prefix):
                self.fs.rm(path)
                deleted += 1
        return deleted


def _component(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"object store keys and namespaces are non-empty strings, got {name!r}")
    return quote(name, safe="").replace(".", "%2E")


def local_memory() -> LocalMemory:
    """This process's local cluster memory (:func:`flowdapt.process.current`)."""
    return process.current().made("local_memory", LocalMemory)


class CurrentLocalMemory(ClusterMemory):
    """The local cluster memory in force when each call is made: what the local executor serves its process
    workers, so a state put in force after the executor started (a test's) is the one they see."""

    def put(self, key: str, value: Any, namespace: str) -> None:
        local_memory().put(key, value, namespace)

    def get(self, key: str, namespace: str) -> Any:
        return local_memory().get(key, namespace)

    def delete(self, key: str, namespace: str) -> bool:
        return local_memory().delete(key, namespace)

    def exists(self, key: str, namespace: str) -> bool:
        return local_memory().exists(key, namespace)

    def clear(self, namespace: str | None = None) -> None:
        local_memory().clear(namespace)


def register_cluster_memory(executor_kind: str, memory: ClusterMemory | None) -> None:
    """Make ``memory`` the cluster memory used by runs on executors of ``executor_kind`` (``None``: none, or
    for ``local`` this process's own local memory again)."""
    memories = process.current().cluster_memories
    if memory is not None:
        memories[executor_kind] = memory
    else:
        memories.pop(executor_kind, None)


def cluster_memory(executor_kind: str) -> ClusterMemory | None:
    """The cluster memory registered for ``executor_kind``, if any (``local`` always has one)."""
    memory = process.current().cluster_memories.get(executor_kind)
    if memory is None and executor_kind == "local":
        return local_memory()
    return memory


def artifact_store() -> ArtifactStore:
    """The artifact store the settings in force configure."""
    return _artifacts()


def _artifacts() -> ArtifactStore:
    from flowdapt.settings import get_settings

    settings = get_settings()
    return ArtifactStore(settings.storage.protocol, settings.storage_root(), **settings.storage.parameters)


def _where(namespace: str | None, executor: str | None) -> tuple[str, ClusterMemory | None]:
    context = current_run_context()
    if namespace is None:
        if context is not None:
            namespace = context.namespace
        else:
            from flowdapt.settings import get_settings

            namespace = get_settings().default_namespace
    kind = executor or (context.executor if context is not None else "local")
    return namespace, cluster_memory(kind)


def put(key: str, value: Any, *, namespace: str | None = None, strategy: Strategy = "fallback",
        executor: str | None = None) -> None:
    """Store ``value`` under ``key``.

    ``namespace`` defaults to the run's namespace inside a stage, else the configured default.
    With ``fallback``, the value goes to cluster memory and to artifacts only if that fails.
    """
    namespace, memory = _where(namespace, executor)
    if strategy != "artifact" and memory is not None:
        try:
            memory.put(key, value, namespace)
            return
        except Exception:
            if strategy == "cluster_memory":
                raise
    elif strategy == "cluster_memory":
        raise RuntimeError(f"no cluster memory for executor '{executor}'")
    _artifacts().put(key, value, namespace)


def get(key: str, *, namespace: str | None = None, strategy: Strategy = "fallback", executor: str | None = None) -> Any:
    """The value stored under ``key``; ``KeyError`` naming key and namespace if there is none."""
    namespace, memory = _where(namespace, executor)
    if strategy != "artifact" and memory is not None:
        try:
            return memory.get(key, namespace)
        except Exception:
            if strategy == "cluster_memory":
                raise
    return _artifacts().get(key, namespace)


def exists(key: str, *, namespace: str | None = None, strategy: Strategy = "fallback",
           executor: str | None = None) -> bool:
    """Whether ``key`` is stored (in cluster memory or, with ``fallback``, as an artifact)."""
    namespace, memory = _where(namespace, executor)
    if strategy != "artifact" and memory is not None:
        try:
            if memory.exists(key, namespace):
                return True
        except Exception:
            if strategy == "cluster_memory":
                raise
    return strategy != "cluster_memory" and _artifacts().exists(key, namespace)


def delete(key: str, *, namespace: str | None = None, strategy: Strategy = "fallback",
           executor: str | None = None) -> None:
    """Remove ``key`` from cluster memory and artifacts; ``KeyError`` if it was in neither."""
    namespace, memory = _where(namespace, executor)
    removed = False
    if strategy != "artifact" and memory is not None:
        try:
            removed = memory.delete(key, namespace)
        except Exception:
            if strategy == "cluster_memory":
                raise
    if strategy != "cluster_memory":
        removed = _artifacts().delete(key, namespace) or removed
    if not removed:
        raise missing_key(key, namespace)
