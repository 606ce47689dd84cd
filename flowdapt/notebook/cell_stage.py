"""``%%flowdapt stage``: a cell that defines one function becomes a workflow stage.

The cell's source is written as a module of the package :mod:`flowdapt.notebook.cells`
(``<app_dir>/stages/<workflow>__<stage>_<hash>.py``). The hash of the source is part of the
module name, so an edited cell is a new module: workers that imported the old one never run
stale code. The previous module of the same stage is removed. Through a server, the module is
written where the kernel imports it and sent to the server, where its executors import it.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowdapt.errors import FlowdaptError, ResourceNotFoundError
from flowdapt.notebook.paths import stage_modules_dir
from flowdapt.resources.loading import parse_resource
from flowdapt.resources.models import Workflow

PACKAGE = "flowdapt.notebook.cells"


class CellStageError(FlowdaptError):
    """A cell cannot become a stage (no function, several functions, a syntax error)."""


def _identifier(name: str) -> str:
    ident = re.sub(r"\W", "_", name)
    return f"_{ident}" if ident[:1].isdigit() else ident


def cell_function(source: str) -> str:
    """The name of the one function the cell defines at top level."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise CellStageError(f"the cell is not valid Python: {exc.msg} (line {exc.lineno})") from None
    names = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not names:
        raise CellStageError("the cell defines no function: a stage cell defines exactly one (def name(...): ...)")
    if len(names) > 1:
        raise CellStageError(f"the cell defines {len(names)} functions ({', '.join(names)}): "
                             "a stage cell defines exactly one")
    return names[0]


MODULE_NAME = re.compile(r"^(?P<prefix>[A-Za-z_]\w*__\w+_)(?P<digest>[0-9a-f]{12})$")
MAX_MODULE_BYTES = 1_000_000


def stage_module(workflow: str, stage: str, source: str) -> tuple[str, str, str]:
    """(module name, target import path, source hash) of a stage cell."""
    function = cell_function(source)
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    module = f"{_identifier(workflow)}__{_identifier(stage)}_{digest}"
    return module, f"{PACKAGE}.{module}.{function}", digest


def save_stage_module(module: str, source: str) -> Path:
    """Write a stage cell's module into this process's stage folder, removing the stage's older modules."""
    match = MODULE_NAME.fullmatch(module)
    if match is None:
        raise CellStageError(f"'{module}' is not a stage module name (workflow__stage_<12 hex digits>)")
    if len(source.encode()) > MAX_MODULE_BYTES:
        raise CellStageError(f"stage module '{module}' is over {MAX_MODULE_BYTES} bytes")
    cell_function(source)
    folder = stage_modules_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{module}.py"
    header = "# Written by %%flowdapt stage: edit the notebook cell, not this file.\n"
    path.write_text(header + source)
    prefix = match["prefix"]
    for old in folder.glob(f"{prefix}*.py"):  # this stage's older modules, not those of a stage named alike
        if old.stem != module and re.fullmatch(r"[0-9a-f]{12}", old.stem[len(prefix):]):
            old.unlink(missing_ok=True)
    importlib.invalidate_caches()
    return path


@dataclass
class StageCell:
    """What the ``%%flowdapt stage`` line asks for."""

    name: str
    workflow: str
    depends_on: list[str] = field(default_factory=list)
    type: str = "simple"
    resources: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


def updated_workflow(existing: Workflow | None, cell: StageCell, target: str, version: str) -> Workflow:
    """``existing`` (or a new workflow) with the cell's stage added or replaced in place."""
    stage = {"name": cell.name, "target": target, "type": cell.type, "depends_on": cell.depends_on,
             "resources": cell.resources, "options": cell.options, "version": version}
    if existing is None:
        document: dict[str, Any] = {"kind": "workflow", "metadata": {"name": cell.workflow}, "spec": {"stages": []}}
    else:
        document = existing.to_document()
    stages = document["spec"]["stages"]
    for index, current in enumerate(stages):
        if current["name"] == cell.name:
            stages[index] = stage
            break
    else:
        stages.append(stage)
    return parse_resource(document)  # type: ignore[return-value]


def apply_stage_cell(backend: Any, cell: StageCell, source: str) -> tuple[Workflow, str]:
    """Save the module and create or update the workflow through ``backend``; (workflow, outcome)."""
    module, target, version = stage_module(cell.workflow, cell.name, source)
    backend.save_stage_module(module, source)
    try:
        existing = backend.get("workflow", cell.workflow)
    except ResourceNotFoundError:
        existing = None
    [(workflow, outcome)] = backend.apply([updated_workflow(existing, cell, target, version)])
    return workflow, outcome
