"""Warm kernels for notebook stages: started ahead, so a run does not wait for one.

Starting a kernel and connecting a client to it is most of what a small notebook run costs
(papermill: ≈ 0.6 s a run, ≈ 0.2 s of it a client's readiness handshake); running the cells on a
kernel and client that are already up takes a few tens of milliseconds. Each process that runs
notebook stages keeps a pool of them, per kernel name, sized by the ``notebook`` settings:

- ``warm_kernels`` (default 1): kernels kept started ahead. A run takes one and a replacement
  starts in the background; a run that finds none waits for one already starting, else starts its
  own. ``0`` starts a kernel for every run and shuts it down afterwards, as papermill does.
- ``kernel_runs`` (default 1): notebooks one kernel runs before it is shut down. With 1 every run
  gets a kernel no notebook has run in (papermill's isolation). With more, a kernel whose run
  succeeded goes back to the pool after its variables are cleared (IPython's ``reset``, execution
  count back to 1); what the notebook imported and any other process state stay, which is the
  point (imports are paid once) and the caveat.

A kernel is never reused after a failed, timed-out or interrupted run. Kernels shut down when the
process exits, and a kernel whose parent process died ends by itself (ipykernel's parent poller).
The pool executes through a papermill engine (``flowdapt-warm``) that hands papermill's notebook
client the started kernel and its client instead of starting them.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import queue
import shutil
import tempfile
import threading
import time
import uuid
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.log import logger as papermill_logger

ENGINE = "flowdapt-warm"
STARTUP_TIMEOUT = 60.0
_log = logging.getLogger("flowdapt.notebook")
# What a Python kernel imports while it waits: the module a notebook stage hands results back with
# (the injected parameter cell uses it too). Imports only, nothing in the notebook's namespace.
_PRELOAD = "try:\n    import flowdapt.notebook\nexcept ImportError:\n    pass"


class WarmKernel:
    """A started kernel. A run connects a client of its own to it from the thread that runs the
    notebook (the client's sockets then live on that thread's event loop, the one papermill's
    notebook client uses); ``runs`` counts the notebooks it ran."""

    def __init__(self, kernel_name: str) -> None:
        self.kernel_name = kernel_name
        # IPC sockets in a private folder: no ports, nothing other users can reach, and no "running over
        # TCP without encryption" warning in the output of the cell that ran the stage.
        self.manager = AsyncKernelManager(kernel_name=kernel_name, transport="ipc",
                                          ip=str(_ipc_dir() / f"k{uuid.uuid4().hex[:12]}"))
        self.client: Any = None  # the client of the run in progress
        self.runs = 0
        self.returning = False  # lent to a run and counted on to come back to the pool

    async def start(self) -> "WarmKernel":
        """Start the kernel and wait until it answers (Python kernels then import :data:`_PRELOAD`)."""
        await self.manager.start_kernel()
        client = self.manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=STARTUP_TIMEOUT)
            if self.manager.kernel_spec.language == "python":
                await _run_silently(client, _PRELOAD)
        except BaseException:
            await self.shutdown()
            raise
        finally:
            client.stop_channels()
        return self

    def connect(self, folder: str) -> None:
        """Connect this run's client, once the kernel answers on it, with ``folder`` (the notebook's)
        as the working directory, as papermill starts a kernel where the notebook is."""
        run_sync(self._connect)(folder)

    async def _connect(self, folder: str) -> None:
        client = self.manager.client()
        client.start_channels()
        try:
            await _answering(client)
            await _run_silently(client, f"__import__('os').chdir({folder!r})")
        except BaseException:
            client.stop_channels()
            raise
        self.client = client

    def disconnect(self, reset: bool) -> None:
        """Close this run's client; with ``reset``, first clear the notebook's variables and start a new
        session (execution count 1) for the next run. Raises when the reset fails."""
        run_sync(self._disconnect)(reset)

    async def _disconnect(self, reset: bool) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            if reset:
                await _run_silently(client, "get_ipython().reset(new_session=True)")
        finally:
            client.stop_channels()

    async def shutdown(self) -> None:
        try:
            await self.manager.shutdown_kernel(now=True)
        except RuntimeError:  # already gone
            pass


_ipc: Path | None = None


def _ipc_dir() -> Path:
    """This process's private (0700) folder of kernel sockets; short, as a socket path must be under
    108 bytes (a runtime dir deep in a home or test folder is often longer)."""
    global _ipc
    if _ipc is None:
        _ipc = Path(tempfile.mkdtemp(prefix="flowdapt-ipc-"))
        atexit.register(shutil.rmtree, _ipc, True)
    return _ipc


async def _run_silently(client: Any, code: str) -> None:
    """Execute ``code`` with no output and no history (raises when it fails)."""
    reply = await client.execute_interactive(code, silent=True, store_history=False, timeout=STARTUP_TIMEOUT,
                                             output_hook=lambda message: None)
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"{code!r} failed in the kernel: {reply['content'].get('evalue', '')}")


async def _answering(client: Any) -> None:
    """Wait until a kernel request's reply and its idle status both arrive on ``client``: its shell
    and IOPub channels are connected. Quicker than ``wait_for_ready``, whose final drain of IOPub
    waits 0.2 s; a request whose status was published before IOPub connected is sent again."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        msg_id = client.kernel_info()
        try:
            while True:
                message = await client.get_iopub_msg(timeout=0.25)
                if (message["parent_header"].get("msg_id") == msg_id and message["msg_type"] == "status"
                        and message["content"]["execution_state"] == "idle"):
                    break
        except queue.Empty:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the kernel did not answer within {STARTUP_TIMEOUT:g}s") from None
            continue
        while (await client.get_shell_msg(timeout=STARTUP_TIMEOUT))["parent_header"].get("msg_id") != msg_id:
            pass  # the replies to requests sent again
        return


class KernelPool:
    """Started kernels by kernel name (see the module doc). Thread-safe.

    Per kernel name it counts the kernels ready, the starts in flight that no run waits for
    (``unclaimed``), the runs waiting for a start (``waiting``) and the kernels lent to runs that
    will come back (``returning``): ``warm`` is what ready, unclaimed and returning add up to.
    """

    def __init__(self) -> None:
        self.warm = 1
        self.runs_per_kernel = 1
        self._ready: dict[str, deque[WarmKernel]] = defaultdict(deque)
        self._unclaimed: dict[str, int] = defaultdict(int)
        self._waiting: dict[str, int] = defaultdict(int)
        self._returning: dict[str, int] = defaultdict(int)
        self._failures: dict[str, deque[BaseException]] = defaultdict(deque)  # failed starts runs waited for
        self._changed = threading.Condition()
        self._closed = False

    def configure(self, warm: int, runs_per_kernel: int) -> None:
        with self._changed:
            self.warm, self.runs_per_kernel = warm, runs_per_kernel

    def take(self, kernel_name: str) -> WarmKernel:
        """A started kernel for one run: a ready one, else one already starting, else one started now."""
        while True:
            kernel = self._claim(kernel_name)
            if kernel is None:
                kernel = run_sync(WarmKernel(kernel_name).start)()  # on this thread's loop, as the run's client
                break
            if run_sync(kernel.manager.is_alive)():
                break
            _log.warning("a %s kernel waiting in the pool had died: taking another", kernel_name)
            _in_background(kernel.shutdown, f"flowdapt-kernel-stop-{kernel_name}")
        kernel.runs += 1
        with self._changed:
            kernel.returning = kernel.runs < self.runs_per_kernel
            self._returning[kernel_name] += kernel.returning
        self._refill(kernel_name)
        return kernel

    def _claim(self, kernel_name: str) -> WarmKernel | None:
        """A ready kernel nobody waits for, else one from a start in flight (waiting for it), else None."""
        with self._changed:
            ready = self._ready[kernel_name]
            if len(ready) > self._waiting[kernel_name]:
                return ready.popleft()
            if not self._unclaimed[kernel_name]:
                return None
            self._unclaimed[kernel_name] -= 1  # wait for that start rather than start another
            self._waiting[kernel_name] += 1
            failures = self._failures[kernel_name]
            try:
                while not ready and not failures:
                    self._changed.wait()
                if not ready:
                    raise failures.popleft()
                return ready.popleft()
            finally:
                self._waiting[kernel_name] -= 1
                if not self._waiting[kernel_name]:
                    failures.clear()

    def give_back(self, kernel: WarmKernel, reusable: bool) -> None:
        """End ``kernel``'s run: back to the pool when ``reusable`` (the run succeeded), it may run more
        notebooks and the pool has room, after clearing its variables; else shut down in the background."""
        name = kernel.kernel_name
        with self._changed:
            returning, kernel.returning = kernel.returning, False
            self._returning[name] -= returning
            keep = (reusable and returning and kernel.runs < self.runs_per_kernel and not self._closed
                    and len(self._ready[name]) < max(self.warm, 1))
        try:
            kernel.disconnect(reset=keep)
        except Exception as exc:  # noqa: BLE001 - a kernel that cannot be reset is replaced
            _log.warning("replacing a %s kernel that could not be reset: %s", name, exc)
            keep = False
        if keep:
            with self._changed:
                self._ready[name].appendleft(kernel)  # a used kernel first: its imports are warm
                self._changed.notify_all()
            return
        _in_background(kernel.shutdown, f"flowdapt-kernel-stop-{name}")
        if returning:
            self._refill(name)  # it was counted on to come back

    def close(self) -> None:
        """Shut down every kernel waiting in the pool (kernels starting are shut down when ready)."""
        with self._changed:
            self._closed = True
            kernels = [kernel for ready in self._ready.values() for kernel in ready]
            self._ready.clear()
        for kernel in kernels:
            try:
                _run(kernel.shutdown())
            except Exception:  # noqa: BLE001 - at exit: nothing left to tell
                pass

    def _refill(self, kernel_name: str) -> None:
        with self._changed:
            if self._closed:
                return
            missing = (self.warm - len(self._ready[kernel_name]) - self._unclaimed[kernel_name]
                       - self._returning[kernel_name])
            missing = max(missing, 0)
            self._unclaimed[kernel_name] += missing
        for _ in range(missing):
            threading.Thread(target=self._start_one, args=(kernel_name,), name=f"flowdapt-kernel-{kernel_name}",
                             daemon=True).start()

    def _start_one(self, kernel_name: str) -> None:
        try:
            kernel = _run(WarmKernel(kernel_name).start())
        except BaseException as exc:  # noqa: BLE001 - told to a run waiting for it, if any
            _log.warning("starting a %s kernel ahead failed: %s", kernel_name, exc)
            with self._changed:
                if self._unclaimed[kernel_name]:
                    self._unclaimed[kernel_name] -= 1
                elif self._waiting[kernel_name]:
                    self._failures[kernel_name].append(exc)
                    self._changed.notify_all()
            return
        with self._changed:
            if self._unclaimed[kernel_name]:
                self._unclaimed[kernel_name] -= 1
            unwanted = self._closed and not self._waiting[kernel_name]  # a closed pool still serves its waiters
            if not unwanted:
                self._ready[kernel_name].append(kernel)
                self._changed.notify_all()
        if unwanted:
            _run(kernel.shutdown())


def _run(coroutine: Any) -> Any:
    """Run ``coroutine`` to the end on a loop of its own (the pool's own threads, and at exit)."""
    return asyncio.run(coroutine)


def _in_background(function: Any, name: str) -> None:
    threading.Thread(target=lambda: _run(function()), name=name, daemon=True).start()


class WarmKernelEngine(NBClientEngine):
    """papermill engine that runs a notebook on a connected :class:`WarmKernel` (``kernel=``) instead of
    starting a kernel."""

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None, stderr_file=None,
                                 start_timeout=60, execution_timeout=None, kernel: WarmKernel | None = None,
                                 **kwargs):
        if kernel is None:
            raise ValueError(f"the {ENGINE} engine needs kernel=<a started WarmKernel>")
        client = PapermillNotebookClient(
            nb_man, km=kernel.manager, timeout=execution_timeout, startup_timeout=start_timeout,
            kernel_name=kernel_name, log=papermill_logger, log_output=log_output, stdout_file=stdout_file,
            stderr_file=stderr_file,
        )
        client.kc = kernel.client  # connected and answering: nbclient neither starts a kernel nor waits for it
        return client.execute()


papermill_engines.register(ENGINE, WarmKernelEngine)

_pool: KernelPool | None = None
_pool_lock = threading.Lock()


def kernel_pool() -> KernelPool:
    """This process's pool (created on first use)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = KernelPool()
        return _pool


def close_kernel_pool() -> None:
    """Shut down this process's warm kernels (at exit, or to start over); the next run makes a new pool."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.close()


atexit.register(close_kernel_pool)
