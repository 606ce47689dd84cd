"""Executors chosen by name from a registry (``local``, ``dask``, ``ray``, plus entry points).

Built-ins are registered by import path so that Dask and Ray are imported only when used.
Third-party executors register through the ``flowdapt.executors`` entry-point group.
"""

from __future__ import annotations

import atexit
import importlib
import threading
from importlib.metadata import entry_points
from typing import Any

from flowdapt.compute.executors.base import BaseExecutor, Outcome, TaskHandle
from flowdapt.errors import ExecutorError, UnknownNameError

__all__ = ["BaseExecutor", "Outcome", "TaskHandle", "register_executor", "executor_class", "create_executor",
           "shared_executor", "running_executors", "close_shared_executors", "available_executors"]

_registry: dict[str, str | type[BaseExecutor]] = {
    "local": "flowdapt.compute.executors.local:LocalExecutor",
    "dask": "flowdapt.compute.executors.dask:DaskExecutor",
    "ray": "flowdapt.compute.executors.ray:RayExecutor",
}
_entry_points_loaded = False


def register_executor(name: str, executor: str | type[BaseExecutor]) -> None:
    """Register an executor class (or its ``module:Class`` path) under ``name``."""
    _registry[name] = executor


def available_executors() -> list[str]:
    _load_entry_points()
    return sorted(_registry)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if not _entry_points_loaded:
        _entry_points_loaded = True
        for entry in entry_points(group="flowdapt.executors"):
            _registry.setdefault(entry.name, entry.value)


def executor_class(name: str) -> type[BaseExecutor]:
    """The executor class registered as ``name``; the error lists the known names."""
    _load_entry_points()
    try:
        target = _registry[name]
    except KeyError:
        raise UnknownNameError("executor", name, list(_registry)) from None
    if isinstance(target, str):
        module, _, attribute = target.partition(":")
        try:
            target = getattr(importlib.import_module(module), attribute)
        except ImportError as exc:
            raise ExecutorError(f"executor '{name}' cannot be loaded: {exc} (is 'flowdapt[{name}]' installed?)") from exc
        _registry[name] = target
    return target


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
