"""The REST API through a real Jupyter server (pytest-jupyter, base URL ``/a%40b/``) and a real store."""

from __future__ import annotations

import json

import pytest
from tornado.httpclient import HTTPClientError

pytest_plugins = ("pytest_jupyter.jupyter_server",)


def wf(name: str, *stages: dict) -> dict:
    return {"kind": "workflow", "metadata": {"name": name},
            "spec": {"stages": list(stages) or [{"name": "hello", "target": "tests.stages.greet"}]}}


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"flowdapt": True}}}


@pytest.fixture
def jp_flowdapt(jp_serverapp, jp_asyncio_loop):
    """The server with the flowdapt services started (pytest-jupyter does not run the start hook)."""
    jp_asyncio_loop.run_until_complete(jp_serverapp.extension_manager.start_all_extensions())
    return jp_serverapp


@pytest.fixture
def api(jp_flowdapt, jp_fetch):
    async def call(method: str, *path: str, body=None, params=None, **kwargs):
        if body is not None and not isinstance(body, (str, bytes)):
            body = json.dumps(body)
        if method in ("POST", "PUT") and body is None:
            body = ""
        response = await jp_fetch("flowdapt", "api", "v1", *path, method=method, body=body, params=params, **kwargs)
        return response.code, json.loads(response.body)
    return call


async def error_of(call) -> tuple[int, dict]:
    with pytest.raises(HTTPClientError) as info:
        await call
    return info.value.code, json.loads(info.value.response.body)


async def test_create_get_and_run_a_workflow(api):
    code, created = await api("POST", "workflows", body=wf("hello"))
    assert code == 201 and created["metadata"]["name"] == "hello"
    code, run = await api("POST", "workflows", "hello", "run", body={"name": "ada"})
    assert code == 200 and run["state"] == "finished" and run["result"] == "hello ada"
