"""``%flowdapt`` magics and ``%%flowdapt stage`` through a real IPython shell and real kernels."""

from __future__ import annotations

import os
import sys

import nbformat
import pytest
from IPython import get_ipython
from IPython.testing.globalipapp import start_ipython

import flowdapt
from flowdapt.notebook.magics import Table
from flowdapt.resources.models import WorkflowRun

MAKE = "def make(n: int = 3):\n    return list(range(n))\n"
SQUARE = "import math\n\ndef square(x):\n    return int(math.pow(x, 2))\n"


@pytest.fixture
def flowdapt_shell(flowdapt_app_dir):
    """A real IPython shell with ``%load_ext flowdapt``; unloaded (backend closed) afterwards."""
    shell = start_ipython() or get_ipython()
    shell.run_line_magic("load_ext", "flowdapt")
    yield shell
    shell.run_line_magic("unload_ext", "flowdapt")


def error_of(shell, source: str, capsys) -> str:
    """Run a cell that must fail; the one line it printed (IPython prints errors to stdout/stderr)."""
    result = shell.run_cell(source)
    assert not result.success
    captured = capsys.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if line.strip()]
    assert len(lines) == 1, lines  # one line, never a traceback
    return lines[0]


def test_stage_cells_build_a_workflow_that_runs(flowdapt_shell, capsys):
    shell = flowdapt_shell
    shell.run_cell_magic("flowdapt", "stage make --workflow demo", MAKE)
    shell.run_cell_magic("flowdapt", "stage square --workflow demo --depends-on make --type parameterized", SQUARE)
    assert shell.user_ns["square"](3) == 9  # the function is defined in the kernel too
    out = capsys.readouterr().out
    assert "[workflow/demo] stage 'make' created" in out and "stage 'square' updated" in out

    run = shell.run_line_magic("flowdapt", "run demo --n 4")
    assert isinstance(run, WorkflowRun) and run.state == "finished" and run.result == [0, 1, 4, 9]
    assert run.source == "notebook"
    runs = shell.run_line_magic("flowdapt", "runs demo")
    assert isinstance(runs, Table) and [item.uid for item in runs] == [run.uid]
    assert "<table>" in runs._repr_html_() and run.name in runs._repr_html_()
    assert "demo" in repr(shell.run_line_magic("flowdapt", "get workflows"))
    assert shell.run_line_magic("flowdapt", "status")["workflows"] == 1


def test_rerunning_a_stage_cell_updates_the_stage(flowdapt_shell, flowdapt_app_dir):
    shell = flowdapt_shell
    shell.run_cell_magic("flowdapt", "stage make --workflow demo", MAKE)
    shell.run_cell_magic("flowdapt", "stage make --workflow demo --resources cpus=1 --options retries=2",
                         "def make(n: int = 3):\n    return list(range(n, 0, -1))\n")
    workflow = flowdapt.resources.catalog.get_workflow("demo")
    assert [stage.name for stage in workflow.spec.stages] == ["make"]
    stage = workflow.spec.stages[0]
    assert stage.resources.cpus == 1 and stage.options.retries == 2
    assert len(list((flowdapt_app_dir / "stages").glob("demo__make_*.py"))) == 1  # the old module is gone
    assert shell.run_line_magic("flowdapt", "run demo --n 2").result == [2, 1]


def test_apply_and_cancel(flowdapt_shell, tmp_path):
    shell = flowdapt_shell
    path = tmp_path / "sleepy.yaml"
    path.write_text("kind: workflow\nmetadata: {name: sleepy}\nspec:\n  stages:\n"
                    "    - {name: nap, target: tests.stages.sleep_for}\n")
    applied = shell.run_line_magic("flowdapt", f"apply {path}")
    assert [(resource.name, outcome) for resource, outcome in applied] == [("sleepy", "created")]
    run = shell.run_line_magic("flowdapt", "run sleepy --seconds 5 --no-wait")
    assert not run.done
    shell.run_line_magic("flowdapt", f"cancel {run.name}")
    assert run.wait(10).state == "cancelled"


@pytest.mark.parametrize("source, expected", [
    ("%flowdapt", "UsageError: %flowdapt: a command is needed"),
    ("%flowdapt frob", "UsageError: %flowdapt: unknown command 'frob'"),
    ("%flowdapt run", "UsageError: the following arguments are required: NAME"),
    ("%flowdapt runs --limit x", "UsageError: argument --limit: invalid int value: 'x'"),
    ("%flowdapt get frob", "UsageError: unknown kind 'frob'"),
    ("%flowdapt run demo extra", "UsageError: unexpected argument 'extra'"),
    ("%flowdapt stage x", "UsageError: stage is the cell magic"),
    ("%flowdapt run nope", "error: workflow 'nope' not found"),
    ("%flowdapt apply missing.yaml", "error:"),
    ("%%flowdapt stage x\nx = 1\n", "error: the cell defines no function"),
    ("%%flowdapt stage x\ndef a(): pass\ndef b(): pass\n", "error: the cell defines 2 functions (a, b)"),
    ("%%flowdapt stage x --type fancy\ndef a(): pass\n", "UsageError: argument --type: invalid choice"),
    ("%%flowdapt stage x --depends-on nowhere\ndef a(v): pass\n", "error: workflow/notebook: stage 'x': depends_on"),
])
def test_bad_input_is_one_line(flowdapt_shell, capsys, source, expected):
    assert error_of(flowdapt_shell, source, capsys).startswith(expected)


def test_failing_stage_cell_is_not_saved(flowdapt_shell, capsys):
    result = flowdapt_shell.run_cell("%%flowdapt stage boom --workflow w\nraise RuntimeError('no')\ndef boom(): pass\n")
    assert not result.success
    assert "stage 'boom' was not saved" in capsys.readouterr().out
    with pytest.raises(flowdapt.errors.ResourceNotFoundError):
        flowdapt.resources.catalog.get_workflow("w")


def test_stage_cells_run_on_each_executor(flowdapt_shell, executor):
    shell = flowdapt_shell
    shell.run_cell_magic("flowdapt", "stage make --workflow spread", MAKE)
    shell.run_cell_magic("flowdapt", "stage square --workflow spread --depends-on make --type parameterized", SQUARE)
    run = flowdapt.run_workflow("spread", {"n": 5}, executor=executor)
    assert run.state == "finished", run.error
    assert run.result == [0, 1, 4, 9, 16]
    shell.run_cell_magic("flowdapt", "stage square --workflow spread --depends-on make --type parameterized",
                         "def square(x):\n    return -x\n")  # workers that imported the old module get the new one
    assert flowdapt.run_workflow("spread", {"n": 3}, executor=executor).result == [0, -1, -2]


def _kernel_notebook(*cells: str):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    return nb


def test_magics_in_a_real_kernel(flowdapt_app_dir, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.delenv("FLOWDAPT_URL", raising=False)
    nb = _kernel_notebook(
        "%load_ext flowdapt",
        "%%flowdapt stage make --workflow k\n" + MAKE,
        "%flowdapt run k --n 3",
        "print(_.state, _.result)",
        "%flowdapt runs k",
        "%flowdapt frob",
    )
    nb.cells[-1].metadata["tags"] = ["raises-exception"]
    client = NotebookClient(nb, kernel_name="python3", timeout=120, allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    outputs = [cell.outputs for cell in nb.cells]
    assert "stage 'make' created" in outputs[1][0]["text"]
    view = outputs[2][0]
    assert view["output_type"] == "display_data" and "application/vnd.jupyter.widget-view+json" in view["data"]
    assert outputs[3][0]["text"].strip() == "finished [0, 1, 2]"
    assert "<table>" in outputs[4][0]["data"]["text/html"]
    assert [output.get("text", "").strip() for output in outputs[5]] == [
        "UsageError: %flowdapt: unknown command 'frob' "
        "(known: apply, run, runs, get, status, cancel, stage, dashboard)"]
    widget_states = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    texts = [model["state"].get("value", "") for model in widget_states.values()]
    assert any("finished" in text and "k</b>" in text for text in texts)


def test_a_shell_holding_the_store_serves_it_to_flowctl(flowdapt_shell, flowdapt_app_dir):
    import json
    import subprocess

    shell = flowdapt_shell
    shell.run_cell_magic("flowdapt", "stage make --workflow held", MAKE)
    run = shell.run_line_magic("flowdapt", "run held --n 2")
    env = {**{key: value for key, value in os.environ.items() if not key.startswith("FLOWDAPT")},
           "FLOWDAPT_APP_DIR": str(flowdapt_app_dir)}
    flowctl = os.path.join(os.path.dirname(sys.executable), "flowctl")
    listed = subprocess.run([flowctl, "get", "runs", "-o", "json"], env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr  # DuckDB lets one process open the file: this one serves it
    assert [(item["uid"], item["result"]) for item in json.loads(listed.stdout)] == [(run.uid, [0, 1])]
