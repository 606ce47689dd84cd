"""The API a notebook uses while it runs as a stage: :func:`set_result`, :func:`fetch`, context.

The cell flowdapt injects after the parameters calls :func:`attach` with the run's context file;
outside a run (interactive work) every function still works: ``set_result`` keeps the value and
returns it, and :func:`get_run_context` raises as it does outside a stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cloudpickle

from flowdapt.compute.context import RunContext

_attached: dict[str, Any] = {}
_last_result: list[Any] = []


def attach(context_file: str) -> RunContext:
    """Load the run context a notebook stage was started with (called by the injected cell)."""
    from flowdapt.settings import set_settings

    with open(context_file, "rb") as handle:
        data = cloudpickle.load(handle)
    set_settings(data["settings"])
    _attached.clear()
    _attached.update(data)
    return data["context"]


def get_run_context() -> RunContext:
    """The run context (input, config, namespace, run, executor, stage) of the running notebook stage."""
    if not _attached:
        raise RuntimeError("get_run_context() was called outside a notebook stage")
    return _attached["context"]


def set_result(value: Any) -> Any:
    """Make ``value`` the output of this notebook stage (any picklable object); returns ``value``."""
    _last_result[:] = [value]
    path = _attached.get("result_file")
    if path:
        Path(path).write_bytes(cloudpickle.dumps(value))
    return value


def fetch(key: str, namespace: str | None = None) -> Any:
    """A parameter that travelled through the object store (too large or not a literal)."""
    from flowdapt.compute import object_store

    context = _attached.get("context")
    namespace = namespace or (context.namespace if context is not None else None)
    return object_store.get(key, namespace=namespace, strategy="artifact")
