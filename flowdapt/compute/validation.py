"""The engine's checks of a workflow, run when it is loaded or applied: stage types, the stage graph, targets.

Registered with :mod:`flowdapt.resources.checks` (with the rebasing of stage targets that are file paths).
"""

from __future__ import annotations

import operator
from typing import Any, Callable

from flowdapt.compute.graph import GraphError, WorkflowGraph
from flowdapt.compute.stages import STAGE_TYPES, StageDefinitionError, get_stage_type
from flowdapt.errors import ResourceError, UnknownNameError
from flowdapt.resources.checks import register_rules
from flowdapt.resources.identity import ByIdentity
from flowdapt.resources.models import Workflow


def validate_workflow(workflow: Workflow, *, file: str | None = None, check_targets: bool = True) -> WorkflowGraph:
    """Check ``workflow`` and return its graph.

    Raises :class:`ResourceError` naming the file, workflow, stage and field of the first problem:
    unknown stage type, duplicate stage, unknown or repeated ``depends_on``, a cycle (named),
    a target that does not import (which module or attribute), a function that cannot take its inputs.
    """
    name = workflow.metadata.name

    def error(message: str, stage: str | None, field: str | None) -> ResourceError:
        return ResourceError(message, file=file, kind="workflow", resource=name, stage=stage, field=field)

    stage_types = []
    for stage in workflow.spec.stages:
        try:
            stage_types.append(get_stage_type(stage.type))
        except UnknownNameError as exc:
            raise error(str(exc), stage.name, "type") from None
    try:
        graph = WorkflowGraph.from_workflow(workflow)
    except GraphError as exc:
        raise error(exc.message, exc.stage, exc.field) from None
    for stage, stage_type in zip(workflow.spec.stages, stage_types):
        try:
            stage_type.validate(stage, check_target=check_targets)
        except StageDefinitionError as exc:
            raise error(exc.message, stage.name, exc.field) from None
    return graph


# Graphs of workflows validated for a run: (what validation read, graph) by workflow object.
_graphs: ByIdentity[tuple[tuple[Any, ...], WorkflowGraph]] = ByIdentity(kept=64)
_stage_shape = operator.attrgetter("name", "type", "target", "options.map_on")
_depends_on = operator.attrgetter("depends_on")


def workflow_graph(workflow: Workflow) -> WorkflowGraph:
    """:func:`validate_workflow`, remembered for a workflow object run again unchanged.

    A workflow run many times (by a trigger, a loop, a notebook) is validated once: the graph is
    reused while the workflow's name and every stage's object, name, type, target, ``depends_on``
    and ``map_on`` (all that validation reads besides the target modules, whose resolution is
    cached for the process anyway) are what they were; the graph holds the stage objects, so
    their ids stay unique. Checking that costs a fifth of validating.
    """
    stages = workflow.spec.stages  # read with C-level map()s: this check runs before every run
    shape = (workflow.metadata.name, list(map(id, stages)), list(map(_stage_shape, stages)),
             list(map(tuple, map(_depends_on, stages))))
    cached = _graphs.get(workflow)
    if cached is not None and cached[0] == shape:
        return cached[1]
    graph = validate_workflow(workflow)
    _graphs.put(workflow, (shape, graph))
    return graph


def rebase_stage_targets(workflow: Workflow, rebased: Callable[[str], str]) -> None:
    """Rebase the targets of stages whose type reads a file (notebook stages); unknown types are left to
    :func:`validate_workflow`."""
    for stage in workflow.spec.stages:
        stage_type = STAGE_TYPES.find(stage.type)
        if stage_type is not None and stage_type.target_is_path:
            stage.target = rebased(stage.target)


register_rules("workflow", check=validate_workflow, rebase_paths=rebase_stage_targets)
