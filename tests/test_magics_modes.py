"""Every ``%flowdapt`` command behaves the same on the embedded store and through a server (a kernel
that Lab started): the same session of commands runs against each, with the same outcome."""

from __future__ import annotations

import time

import pytest
from IPython import get_ipython
from IPython.testing.globalipapp import start_ipython

from flowdapt.notebook.magics import RunEndedError, Table
from flowdapt.notebook.paths import set_workbench_root
from tests.test_magics import MAKE, SQUARE
from tests.test_serve import TOKEN, Server, flowdapt_env  # noqa: F401 - fixture

RESOURCES = """kind: workflow
metadata: {name: sleepy}
spec: {stages: [{name: nap, target: tests.stages.sleep_for}]}
---
kind: workflow
metadata: {name: boom}
spec: {stages: [{name: explode, target: tests.stages.fail}]}
"""


@pytest.fixture(params=["embedded", "server"])
def flowdapt_magics(request, flowdapt_env, tmp_path, monkeypatch):
    """An IPython shell with ``%load_ext flowdapt``: on the embedded store, or configured as a kernel under a
    live ``flowdapt serve`` whose app dir is not the shell's (stage modules reach it only through the API)."""
    server = None
    if request.param == "server":
        server = Server({**flowdapt_env, "FLOWDAPT_APP_DIR": str(tmp_path / "server-app")}, tmp_path / "serve.log")
        monkeypatch.setenv("FLOWDAPT_URL", server.url)
        monkeypatch.setenv("FLOWDAPT_TOKEN", TOKEN)
    else:
        monkeypatch.delenv("FLOWDAPT_URL", raising=False)
    shell = start_ipython() or get_ipython()
    shell.run_line_magic("load_ext", "flowdapt")
    yield shell, request.param
    shell.run_line_magic("unload_ext", "flowdapt")
    if server is not None:
        server.stop(15)
    set_workbench_root(None)


def test_the_same_commands_have_the_same_outcome(flowdapt_magics, tmp_path, capsys):
    shell, mode = flowdapt_magics
    magic = lambda line: shell.run_line_magic("flowdapt", line)  # noqa: E731

    shell.run_cell_magic("flowdapt", "stage make --workflow demo", MAKE)  # creates the workflow
    shell.run_cell_magic("flowdapt", "stage square --workflow demo --depends-on make --type parameterized", SQUARE)
    out = capsys.readouterr().out
    assert "[workflow/demo] stage 'make' created" in out and "[workflow/demo] stage 'square' updated" in out

    run = magic("run demo --n 4")
    assert (run.state, run.result, run.source) == ("finished", [0, 1, 4, 9], "notebook")
    assert [stage.items_total for stage in run.stages] == [None, 4]
    runs = magic("runs demo")
    assert isinstance(runs, Table) and [item.uid for item in runs] == [run.uid]
    assert [item.name for item in magic("get workflows")] == ["demo"]
    assert magic(f"get run {run.name}")[0].result == [0, 1, 4, 9]

    (tmp_path / "more.yaml").write_text(RESOURCES)
    applied = magic(f"apply {tmp_path / 'more.yaml'}")
    assert [(resource.name, outcome) for resource, outcome in applied] == [("sleepy", "created"), ("boom", "created")]
    sleeper = magic("run sleepy --seconds 30 --no-wait")
    assert not sleeper.done
    magic(f"cancel {sleeper.name}")
    deadline = time.monotonic() + 15
    while magic(f"get run {sleeper.uid}")[0].state != "cancelled":
        assert time.monotonic() < deadline, "the cancelled run did not end"
        time.sleep(0.1)

    failed = shell.run_cell("%flowdapt run boom")  # fails its cell: Run All stops there
    error = failed.error_in_exec
    assert isinstance(error, RunEndedError) and error.run.state == "failed"
    first, *traceback = error._render_traceback_()
    assert first.startswith(f"error: run '{error.run.name}' of workflow 'boom' failed: ValueError in stage 'explode': "
                            "stage exploded: bad value 42")
    assert any("raise ValueError" in line for line in traceback)  # the stage's own traceback follows

    status = magic("status")
    assert status["mode"] == ("server" if mode == "server" else "local")
    assert (status["workflows"], status["runs"]) == (3, 3)
