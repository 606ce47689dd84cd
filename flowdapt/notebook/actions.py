"""Running a notebook on its own: :func:`run_notebook` and the ``run_notebook`` trigger action.

The notebook becomes a one-stage workflow ``notebook-<name>`` (applied to the catalog, so it is
listed, runnable and its runs are recorded like any other); the parameters are the run input.
Every run, so every trigger firing, keeps its output notebook, linked from the stage record.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from flowdapt.notebook.paths import resolve_notebook
from flowdapt.resources import catalog
from flowdapt.resources.loading import parse_resource
from flowdapt.resources.models import Workflow, WorkflowRun


def notebook_workflow(notebook: str, *, kernel_name: str | None = None, cell_timeout: float | None = None) -> Workflow:
    """The one-stage workflow that runs ``notebook`` (relative to the workbench root); its target is the
    notebook's absolute path, so the workflow means the same wherever it is applied (a server)."""
    target = str(resolve_notebook(notebook))
    stem = re.sub(r"[^A-Za-z0-9_-]", "-", Path(notebook).stem).strip("-") or "notebook"
    options = {key: value for key, value in (("kernel_name", kernel_name), ("cell_timeout", cell_timeout)) if value}
    document = {"kind": "workflow", "metadata": {"name": f"notebook-{stem}", "annotations": {"notebook": notebook}},
                "spec": {"stages": [{"name": stem, "type": "notebook", "target": target, "options": options}]}}
    return parse_resource(document)  # type: ignore[return-value]


def _applied(notebook: str, kernel_name: str | None, cell_timeout: float | None) -> Workflow:
    [(workflow, _)] = catalog.get_catalog().apply([notebook_workflow(notebook, kernel_name=kernel_name,
                                                                     cell_timeout=cell_timeout)])
    return workflow  # type: ignore[return-value]


def run_notebook(notebook: str, parameters: dict[str, Any] | None = None, *, kernel_name: str | None = None,
                 cell_timeout: float | None = None, executor: str | None = None, wait: bool = True,
                 source: Literal["manual", "api", "trigger", "notebook"] = "notebook") -> WorkflowRun:
    """Run ``notebook`` with ``parameters`` in this process; the run's stage links the output notebook.

    Parameters
    ----------
    notebook : its path (a relative one is read against the workbench root: the current directory, or
        a server's root dir)
    parameters : injected by papermill (values that are not literals travel through the object store)
    kernel_name, cell_timeout : as the notebook stage options
    executor, wait, source : as :func:`flowdapt.run_workflow`
    """
    from flowdapt.compute.api import run_workflow

    workflow = _applied(notebook, kernel_name, cell_timeout)
    return run_workflow(workflow, parameters or {}, executor=executor, wait=wait, source=source)


async def run_notebook_action(context: Any, parameters: dict[str, Any]) -> str | None:
    """Trigger action ``run_notebook``: ``parameters.notebook``, ``parameters.parameters``,
    optional ``kernel_name``, ``cell_timeout``, ``executor``, ``namespace``; returns the run's uid."""
    import asyncio

    workflow = await asyncio.to_thread(_applied, parameters["notebook"], parameters.get("kernel_name"),
                                       parameters.get("cell_timeout"))
    run = await context.submit(workflow.name, parameters.get("parameters") or {}, source="trigger",
                               namespace=parameters.get("namespace"), executor=parameters.get("executor"))
    return run.uid
