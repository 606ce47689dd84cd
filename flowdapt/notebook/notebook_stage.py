"""The ``notebook`` stage type: ``target`` is a notebook path, run with papermill on any executor.

Options: ``parameters`` (fixed parameters; the run input and upstream outputs override them),
``kernel_name`` and ``cell_timeout`` (seconds). The output notebook of every run is written under
``<app_dir>/outputs/<run uid>/<stage>.ipynb`` and linked from the stage record.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flowdapt.compute.executors.base import Outcome
from flowdapt.compute.stages import StageDefinitionError, StageType
from flowdapt.notebook.paths import NotebookPathError, resolve_notebook, run_output_dir
from flowdapt.notebook.notebook_task import NotebookTask


def _options(stage: Any) -> tuple[dict[str, Any], str | None, float | None]:
    extra = stage.options.model_extra or {}
    parameters = extra.get("parameters") or {}
    kernel_name = extra.get("kernel_name")
    cell_timeout = extra.get("cell_timeout")
    if not isinstance(parameters, dict) or not all(isinstance(key, str) for key in parameters):
        raise StageDefinitionError("options.parameters", "must be a mapping of parameter names to values")
    if kernel_name is not None and not isinstance(kernel_name, str):
        raise StageDefinitionError("options.kernel_name", "must be a kernel name such as python3")
    if cell_timeout is not None and (isinstance(cell_timeout, bool) or not isinstance(cell_timeout, (int, float))
                                     or cell_timeout <= 0):
        raise StageDefinitionError("options.cell_timeout", "must be a positive number of seconds")
    return parameters, kernel_name, cell_timeout


class NotebookStage(StageType):
    """A whole notebook as one call: parameters in, ``set_result`` value out."""

    name = "notebook"
    target_is_path = True

    def validate(self, stage, check_target: bool = True) -> None:
        if not isinstance(stage.target, str):
            raise StageDefinitionError("target", "a notebook stage's target is a notebook path")
        try:
            resolve_notebook(stage.target, must_exist=check_target)
        except NotebookPathError as exc:
            raise StageDefinitionError("target", str(exc)) from None
        _options(stage)

    def start(self, executor, stage, call, upstream, on_progress, on_done):
        parameters, kernel_name, cell_timeout = _options(stage)
        output = run_output_dir(call.context.run.uid) / f"{stage.name}.ipynb"
        task = NotebookTask(
            path=str(resolve_notebook(stage.target)), display=stage.target, output_path=str(output),
            dependencies=tuple(stage.depends_on), parameters=dict(parameters), kernel_name=kernel_name,
            cell_timeout=cell_timeout,
        )

        def done(outcome: Outcome) -> None:
            if output.exists():
                outcome.output_notebook = str(output)
            on_done(outcome)

        return executor.submit(replace(call, target=task), upstream, stage.resources.as_dict(), done)

    def inputs(self, stage):
        return notebook_parameters(resolve_notebook(stage.target), stage.name, _options(stage)[0]), True


def notebook_parameters(path: Any, stage: str, fixed: dict[str, Any] | None = None) -> list[Any]:
    """The fields of a notebook's ``parameters`` cell (papermill's inspection): name, type, default, help.

    ``fixed`` (the stage's ``options.parameters``) replaces the cell's defaults. A notebook takes any
    other parameter too: papermill injects every input key.
    """
    import ast

    import papermill

    from flowdapt.compute.inputs import InputField, json_default, json_type

    fields = []
    for name, found in papermill.inspect_notebook(str(path)).items():
        try:
            value = ast.literal_eval(found["default"])
            known = True
        except (ValueError, SyntaxError, TypeError):
            value, known = None, False
        if fixed and name in fixed:
            value, known = fixed[name], True
        usable, value = json_default(value) if known else (False, None)
        declared = found.get("inferred_type_name") or "None"
        kind, enum = json_type(declared) if declared != "None" else json_type(type(value) if usable else None)
        fields.append(InputField(name=name, type=kind, enum=enum, annotation=None if declared == "None" else declared,
                                 default=value if usable else None, description=found.get("help") or "",
                                 stages=[stage]))
    return fields

