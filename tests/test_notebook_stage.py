"""Notebook stages (``type: notebook``) run with papermill on every executor, and ``run_notebook``."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal  # not a literal: travels through the object store

import nbformat
import pytest

import flowdapt
from flowdapt.errors import ResourceError
from flowdapt.notebook.actions import run_notebook
from flowdapt.notebook.paths import set_workbench_root


def write_notebook(path, *cells: str, parameters: str | None = None) -> str:
    """Write a Python notebook; ``parameters`` becomes the cell tagged ``parameters``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    if parameters is not None:
        nb.cells.append(nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    nb.cells.extend(nbformat.v4.new_code_cell(source) for source in cells)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path.name


@pytest.fixture
def flowdapt_workbench(tmp_path, monkeypatch):
    """A workbench root (the cwd) with a parameterized notebook ``double.ipynb``."""
    root = tmp_path / "workbench"
    root.mkdir()
    monkeypatch.chdir(root)
    set_workbench_root(None)
    write_notebook(
        root / "double.ipynb",
        "import flowdapt.notebook as fn\n"
        "if n < 0:\n    raise ValueError(f'n must not be negative, got {n}')\n"
        "fn.set_result({'double': n * 2, 'stage': fn.get_run_context().stage, 'extra': type(extra).__name__})",
        parameters="n = 1\nextra = None",
    )
    yield root


def stage_workflow(target: str = "double.ipynb", **stage) -> dict:
    return {"metadata": {"name": "nb"}, "spec": {"stages": [{"name": "double", "type": "notebook", "target": target,
                                                             **stage}]}}


def test_notebook_stage_runs_with_parameters_on_each_executor(flowdapt_workbench, executor):
    run = flowdapt.run_workflow(stage_workflow(), {"n": 21, "extra": Decimal("1.5")}, executor=executor)
    assert run.state == "finished", run.error
    assert run.result == {"double": 42, "stage": "double", "extra": "Decimal"}
    output = run.stage("double").output_notebook
    assert output and output.endswith(f"{run.uid}/double.ipynb")
    nb = json.loads(open(output).read())
    injected = next(cell for cell in nb["cells"] if "injected-parameters" in cell["metadata"]["tags"])
    assert "n = 21" in "".join(injected["source"])
    assert "fetch(" in "".join(injected["source"])  # the object travelled through the object store
    assert nb["metadata"]["papermill"]["input_path"].endswith("double.ipynb")


def test_failing_cell_is_reported_and_output_notebook_kept(flowdapt_workbench):
    run = flowdapt.run_workflow(stage_workflow(), {"n": -1})
    assert run.state == "failed"
    assert run.error.stage == "double"
    assert run.error.type == "NotebookExecutionError"
    assert "double.ipynb: cell" in run.error.message
    assert "ValueError: n must not be negative, got -1" in run.error.message
    assert "raise ValueError" in run.error.traceback  # the kernel's traceback of the cell
    output = run.stage("double").output_notebook
    nb = json.loads(open(output).read())
    assert any(o.get("ename") == "ValueError" for cell in nb["cells"] for o in cell.get("outputs", []))


def test_upstream_outputs_and_fixed_parameters_become_parameters(flowdapt_workbench):
    write_notebook(flowdapt_workbench / "sub" / "report.ipynb",
                   "import flowdapt.notebook as fn\nfn.set_result(f'{title}: {sum(load_rows)}')",
                   parameters="title = ''\nload_rows = []")
    workflow = {"metadata": {"name": "report"}, "spec": {"stages": [
        {"name": "load-rows", "target": "tests.stages.numbers"},
        {"name": "report", "type": "notebook", "target": "sub/report.ipynb", "depends_on": ["load-rows"],
         "options": {"parameters": {"title": "total"}, "kernel_name": "python3", "cell_timeout": 60}},
    ]}}
    run = flowdapt.run_workflow(workflow, {"n": 4})
    assert run.state == "finished", run.error
    assert run.result == "total: 6"


def test_cell_timeout_fails_the_stage(flowdapt_workbench):
    write_notebook(flowdapt_workbench / "slow.ipynb", "import time\ntime.sleep(30)")
    started = time.monotonic()
    run = flowdapt.run_workflow(stage_workflow("slow.ipynb", options={"cell_timeout": 1}))
    assert run.state == "failed"
    assert "slow.ipynb" in str(run.error) and time.monotonic() - started < 25


@pytest.mark.parametrize("target, message", [
    ("missing.ipynb", "notebook 'missing.ipynb' not found"),
    ("script.py", "is not a notebook"),
])
def test_bad_notebook_targets_are_rejected_when_applied(flowdapt_workbench, target, message):
    with pytest.raises(ResourceError) as raised:
        flowdapt.resources.loading.parse_resource({"kind": "workflow", **stage_workflow(target)})
    assert "stage 'double': target:" in str(raised.value) and message in str(raised.value)


@pytest.mark.parametrize("target", ["../outside.ipynb", "{outside}"])
def test_a_server_refuses_notebooks_outside_its_root_and_says_how_to_change_it(flowdapt_workbench, target):
    outside = flowdapt_workbench.parent / "outside.ipynb"
    write_notebook(outside, "1")
    parse = flowdapt.resources.loading.parse_resource
    document = {"kind": "workflow", **stage_workflow(target.format(outside=outside))}
    assert parse(document).spec.stages[0].target  # this process works for its user: any notebook it can read
    set_workbench_root(flowdapt_workbench)  # as a server does with its root dir
    try:
        with pytest.raises(ResourceError) as raised:
            parse(document)
    finally:
        set_workbench_root(None)
    assert f"is outside the server's workbench root {flowdapt_workbench}" in str(raised.value)
    assert "--ServerApp.root_dir" in str(raised.value)


def test_bad_notebook_options_are_rejected(flowdapt_workbench):
    with pytest.raises(ResourceError, match="options.cell_timeout: must be a positive number"):
        flowdapt.resources.loading.parse_resource(
            {"kind": "workflow", **stage_workflow(options={"cell_timeout": "soon"})})


def test_run_notebook_records_the_run_with_its_output_notebook(flowdapt_workbench):
    run = run_notebook("double.ipynb", {"n": 5})
    assert run.state == "finished" and run.result["double"] == 10
    assert run.workflow == "notebook-double" and run.source == "notebook"
    assert run.stage("double").output_notebook


def test_run_notebook_trigger_fires_and_records_output_notebooks(flowdapt_workbench, flowdapt_app_dir):
    from flowdapt.server.services import ServerOptions, Services
    from flowdapt.settings import get_settings

    trigger = {"kind": "trigger_rule", "metadata": {"name": "every-second"},
               "spec": {"type": "schedule", "rule": ["* * * * * *"],
                        "action": {"target": "run_notebook",
                                   "parameters": {"notebook": "double.ipynb", "parameters": {"n": 3}}}}}

    async def scenario():
        services = Services(get_settings(), ServerOptions())
        await services.start()
        try:
            await services.resources.apply([trigger])
            for _ in range(300):
                runs = [run for run in services.store.list_runs() if run.state == "finished"]
                if runs:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            services.store.flush()
            runs = [services.store.get_run(run.uid) for run in services.store.list_runs()]
            return runs, services.store.trigger_firings()
        finally:
            await services.stop()

    runs, firings = asyncio.run(scenario())
    finished = [run for run in runs if run.state == "finished"]
    assert finished, [(run.state, run.error) for run in runs]
    run = finished[0]
    assert run.source == "trigger" and run.workflow == "notebook-double" and run.result["double"] == 6
    stored = next(stage for stage in run.stages if stage.name == "double")
    assert stored.output_notebook and stored.output_notebook.endswith(f"{run.uid}/double.ipynb")
    assert any(firing.trigger == "every-second" and firing.run_uid == run.uid for firing in firings)
