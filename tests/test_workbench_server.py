"""Notebook features under a server: the server's root dir is the workbench root, and the
``%flowdapt`` magics of a kernel under a server go over HTTP to it."""

from __future__ import annotations

import json
import os

import httpx
import pytest
from IPython import get_ipython
from IPython.testing.globalipapp import start_ipython

from flowdapt.notebook.paths import set_workbench_root, workbench_root
from tests.flowdapt_server import jp_flowdapt, jp_flowdapt_api, jp_server_config  # noqa: F401 - fixtures
from tests.test_notebook_stage import write_notebook
from tests.test_serve import TOKEN, Server, flowdapt_env  # noqa: F401 - fixture

pytest_plugins = ("pytest_jupyter.jupyter_server",)


async def test_notebook_stage_targets_resolve_against_the_server_root_dir(jp_flowdapt_api, jp_root_dir, tmp_path,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the root: paths must come from the server, not the cwd
    write_notebook(jp_root_dir / "reports" / "triple.ipynb",
                   "import flowdapt.notebook as fn\nfn.set_result(n * 3)", parameters="n = 1")
    assert workbench_root() == jp_root_dir.resolve()
    assert os.environ["FLOWDAPT_APP_DIR"]  # kernels started by the server share its app dir
    workflow = {"kind": "workflow", "metadata": {"name": "report"},
                "spec": {"stages": [{"name": "triple", "type": "notebook", "target": "reports/triple.ipynb"}]}}
    assert (await jp_flowdapt_api("POST", "workflows", body=workflow))[0] in (200, 201)
    status, run = await jp_flowdapt_api("POST", "workflows", "report", "run", body={"n": 5}, params={"wait": "true"})
    assert (status, run["state"], run["result"]) == (200, "finished", 15)
    escape = {"kind": "workflow", "metadata": {"name": "escape"},
              "spec": {"stages": [{"name": "x", "type": "notebook", "target": "../outside.ipynb"}]}}
    with pytest.raises(Exception) as caught:
        await jp_flowdapt_api("POST", "workflows", body=escape)
    assert caught.value.code == 422
    detail = json.loads(caught.value.response.body)["detail"]
    assert f"is outside the server's workbench root {jp_root_dir.resolve()}" in detail
    assert "--ServerApp.root_dir" in detail  # and says how to change it


@pytest.fixture
def flowdapt_served_shell(flowdapt_env, tmp_path, monkeypatch):
    """A real ``flowdapt serve`` and an IPython shell configured like a kernel the server started."""
    server = Server(flowdapt_env, tmp_path / "serve.log")
    monkeypatch.setenv("FLOWDAPT_URL", server.url)
    monkeypatch.setenv("FLOWDAPT_TOKEN", TOKEN)
    shell = start_ipython() or get_ipython()
    shell.run_line_magic("load_ext", "flowdapt")
    yield shell, server
    shell.run_line_magic("unload_ext", "flowdapt")
    server.stop(15)
    set_workbench_root(None)


def test_magics_under_a_server_apply_run_and_list_through_it(flowdapt_served_shell, tmp_path):
    shell, server = flowdapt_served_shell
    resources = tmp_path / "hello.yaml"
    resources.write_text("kind: workflow\nmetadata: {name: hello}\n"
                         "spec: {stages: [{name: hello, target: tests.stages.greet}]}\n")
    shell.run_line_magic("flowdapt", f"apply {resources}")
    run = shell.run_line_magic("flowdapt", "run hello --name ada")
    assert (run.state, run.result) == ("finished", "hello ada")
    # The server recorded it: the run is in the server's history, not in a local store.
    response = httpx.get(f"{server.url}flowdapt/api/v1/runs", params={"workflow": "hello"},
                         headers={"Authorization": f"token {TOKEN}"})
    assert [(item["uid"], item["source"]) for item in response.json()] == [(run.uid, "notebook")]
    listed = shell.run_line_magic("flowdapt", "runs hello")
    assert [item.uid for item in listed] == [run.uid]
    assert shell.run_line_magic("flowdapt", "status")["mode"] == "server"
