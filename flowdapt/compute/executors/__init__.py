"""Executors chosen by name from a registry (``local``, ``dask``, ``ray``, plus entry points).

Built-ins are registered by import path so that Dask and Ray are imported only when used.
Third-party executors register through the ``flowdapt.executors`` entry-point group.
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

from flowdapt.compute.executors.base import BaseExecutor, Outcome, TaskHandle
from flowdapt.errors import ExecutorError
from flowdapt.registry import ExtensionLoadError, Registry

__all__ = ["BaseExecutor", "Outcome", "TaskHandle", "EXECUTORS", "register_executor", "executor_class",
           "create_executor", "shared_executor", "running_executors", "close_shared_executors", "available_executors"]

EXECUTORS: Registry[type[BaseExecutor]] = Registry("executor", "flowdapt.executors")
EXECUTORS.register("local", "flowdapt.compute.executors.local:LocalExecutor")
EXECUTORS.register("dask", "flowdapt.compute.executors.dask:DaskExecutor")
EXECUTORS.register("ray", "flowdapt.compute.executors.ray:RayExecutor")


def register_executor(name: str, executor: str | type[BaseExecutor]) -> None:
    """Register an executor class (or its ``module:Class`` path) under ``name``."""
    EXECUTORS.register(name, executor)


def available_executors() -> list[str]:
    """The names of every registered executor, entry points included."""
    return EXECUTORS.names()


def executor_class(name: str) -> type[BaseExecutor]:
    """The executor class registered as ``name``; the error lists the known names."""
    try:
        return EXECUTORS.get(name)
    except ExtensionLoadError as exc:
        raise ExecutorError(f"{exc} (is 'flowdapt[{name}]' installed?)") from exc


def create_executor(name: str, **options: Any) -> BaseExecutor:
    """A new, not yet started executor."""
    return executor_class(name)(**options)


_shared: dict[tuple[str, str], BaseExecutor] = {}
_shared_lock = threading.Lock()


def shared_executor(name: str, **options: Any) -> BaseExecutor:
    """A started executor shared by every run in this process that asks for the same name and options.

    Pools and clusters are costly to start (a Ray cluster takes seconds), so they are kept until
    the process exits or :func:`close_shared_executors` is called.
    """
    key = (name, repr(sorted(options.items())))
    with _shared_lock:
        executor = _shared.get(key)
        if executor is None or not executor.running:
            executor = create_executor(name, **options)
            executor.start()
            _shared[key] = executor
        return executor


def running_executors() -> list[BaseExecutor]:
    """The executors :func:`shared_executor` started that still run."""
    with _shared_lock:
        return [executor for executor in _shared.values() if executor.running]


@atexit.register
def close_shared_executors() -> None:
    """Close every executor :func:`shared_executor` started."""
    with _shared_lock:
        executors = list(_shared.values())
        _shared.clear()
    for executor in executors:
        executor.close()
