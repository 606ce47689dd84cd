"""Executors chosen by name from a registry (``local``, ``dask``, ``ray``, plus entry points).

Built-ins are registered by import path so that Dask and Ray are imported only when used.
Third-party executors register through the ``flowdapt.executors`` entry-point group.
"""

from __future__ import annotations

import atexit
from typing import Any

from flowdapt import process
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


def shared_executor(name: str, **options: Any) -> BaseExecutor:
    """A started executor shared by every run in this process that asks for the same name and options.

    Pools and clusters are costly to start (a Ray cluster takes seconds), so they are kept (in
    :func:`flowdapt.process.current`) until the process exits or :func:`close_shared_executors` is called.
    """
    key = (name, repr(sorted(options.items())))
    state = process.current()
    with state.lock:
        executor = state.executors.get(key)
        if executor is None or not executor.running:
            executor = create_executor(name, **options)
            executor.start()
            state.executors[key] = executor
        return executor


def running_executors() -> list[BaseExecutor]:
    """The executors :func:`shared_executor` started that still run."""
    state = process.current()
    with state.lock:
        return [executor for executor in state.executors.values() if executor.running]


@atexit.register
def close_shared_executors() -> None:
    """Close every executor :func:`shared_executor` started."""
    state = process.current()
    with state.lock:
        executors = list(state.executors.values())
        state.executors.clear()
    for executor in executors:
        executor.close()
