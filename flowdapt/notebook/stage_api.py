"""The API a notebook uses while it runs as a stage: :func:`set_result`, :func:`fetch`, context.

The cell flowdapt injects after the parameters names the run's context file in the environment
variable ``FLOWDAPT_NOTEBOOK_CONTEXT`` (so a notebook that never calls these functions never
imports flowdapt); it is loaded on first use. Outside a run (interactive work) ``set_result``
just returns the value, and :func:`get_run_context` raises as it does outside a stage.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cloudpickle

from flowdapt.compute.context import RunContext

CONTEXT_ENV = "FLOWDAPT_NOTEBOOK_CONTEXT"
_attached: dict[str, Any] = {}


def attach(context_file: str) -> RunContext:
    """Load the run context a notebook stage was started with."""
    from flowdapt.settings import set_settings

    with open(context_file, "rb") as handle:
        data = cloudpickle.load(handle)
    set_settings(data["settings"])
    _attached.clear()
    _attached.update(data, file=context_file)
    return data["context"]


def _current() -> dict[str, Any]:
    path = os.environ.get(CONTEXT_ENV)
    if path and _attached.get("file") != path:
        attach(path)
    return _attached


def get_run_context() -> RunContext:
    """The run context (input, config, namespace, run, executor, stage) of the running notebook stage."""
    attached = _current()
    if not attached:
        raise RuntimeError("get_run_context() was called outside a notebook stage")
    return attached["context"]


def set_result(value: Any) -> Any:
    """Make ``value`` the output of this notebook stage (any picklable object); returns ``value``."""
    path = _current().get("result_file")
    if path:
        Path(path).write_bytes(cloudpickle.dumps(value))
    return value


def fetch(key: str, namespace: str | None = None) -> Any:
    """A parameter that travelled through the object store (too large or not a literal)."""
    from flowdapt.compute import object_store

    context = _current().get("context")
    namespace = namespace or (context.namespace if context is not None else None)
    return object_store.get(key, namespace=namespace, strategy="artifact")
