"""Fixtures and helpers for tests that talk to a real in-process Jupyter server with flowdapt loaded.

Test modules import the fixtures they use and declare
``pytest_plugins = ("pytest_jupyter.jupyter_server",)``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Awaitable, Callable

import pytest
from tornado.httpclient import HTTPClientError

Api = Callable[..., Awaitable[tuple[int, Any]]]


def workflow_doc(name: str, *stages: dict) -> dict:
    """A workflow document; one ``greet`` stage unless stages are given."""
    return {"kind": "workflow", "metadata": {"name": name},
            "spec": {"stages": list(stages) or [{"name": "hello", "target": "tests.stages.greet"}]}}


def trigger_doc(name: str, rule: Any, workflow: str, *, kind: str = "condition", **spec: Any) -> dict:
    """A trigger rule document running ``workflow``."""
    return {"kind": "trigger_rule", "metadata": {"name": name},
            "spec": {"type": kind, "rule": rule, "action": {"target": "run_workflow", "parameters": {
                "workflow": workflow, "input": spec.pop("input", {})}}, **spec}}


@pytest.fixture
def jp_server_config():
    """Load flowdapt (only) into the test server."""
    return {"ServerApp": {"jpserver_extensions": {"flowdapt": True}}}


@pytest.fixture
def jp_flowdapt(jp_serverapp, jp_asyncio_loop):
    """The server with the flowdapt services started (pytest-jupyter does not run the start hook)."""
    jp_asyncio_loop.run_until_complete(jp_serverapp.extension_manager.start_all_extensions())
    return jp_serverapp


@pytest.fixture
def jp_flowdapt_api(jp_flowdapt, jp_fetch) -> Api:
    """``await api(METHOD, *path, body=..., params=...)`` → (status, JSON); 4xx/5xx raise HTTPClientError."""

    async def call(method: str, *path: str, body: Any = None, params: dict | None = None, **kwargs: Any):
        if body is not None and not isinstance(body, (str, bytes)):
            body = json.dumps(body)
        if method in ("POST", "PUT") and body is None:
            body = ""
        response = await jp_fetch("flowdapt", "api", "v1", *path, method=method, body=body, params=params, **kwargs)
        return response.code, json.loads(response.body)

    return call


async def error_of(call: Awaitable[Any]) -> tuple[int, dict]:
    """The status and JSON body of a request that must fail."""
    with pytest.raises(HTTPClientError) as info:
        await call
    return info.value.code, json.loads(info.value.response.body)


async def eventually(probe: Callable[[], Awaitable[Any]], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Await ``probe()`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        await asyncio.sleep(interval)
