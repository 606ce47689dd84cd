"""The workflow graph as plain data: stages, their dependencies and dependents, roots and sinks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowdapt.resources.models import Workflow, WorkflowStage


class GraphError(ValueError):
    """A structural problem of the stage graph, located at a stage and field."""

    def __init__(self, message: str, stage: str | None = None, field: str | None = None) -> None:
        super().__init__(message, stage, field)
        self.message = message
        self.stage = stage
        self.field = field

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class WorkflowGraph:
    """A validated DAG of a workflow's stages.

    ``order`` is a topological order (definition order among independent stages).
    """

    workflow: str
    stages: dict[str, "WorkflowStage"]
    dependents: dict[str, tuple[str, ...]]
    roots: tuple[str, ...]
    sinks: tuple[str, ...]
    order: tuple[str, ...]

    @classmethod
    def from_workflow(cls, workflow: "Workflow") -> "WorkflowGraph":
        """Build the graph; :class:`GraphError` names duplicate stages, unknown dependencies and cycles."""
        stages: dict[str, WorkflowStage] = {}
        for stage in workflow.spec.stages:
            if stage.name in stages:
                raise GraphError(f"duplicate stage name '{stage.name}'", stage.name, "name")
            stages[stage.name] = stage
        dependents: dict[str, list[str]] = {name: [] for name in stages}
        for stage in stages.values():
            seen = set()
            for dependency in stage.depends_on:
                if dependency == stage.name:
                    raise GraphError(f"stage depends on itself", stage.name, "depends_on")
                if dependency not in stages:
                    raise GraphError(f"unknown stage '{dependency}'", stage.name, "depends_on")
                if dependency in seen:
                    raise GraphError(f"'{dependency}' is listed twice", stage.name, "depends_on")
                seen.add(dependency)
                dependents[dependency].append(stage.name)
        order = _topological_order(stages)
        return cls(
            workflow=workflow.metadata.name,
            stages=stages,
            dependents={name: tuple(names) for name, names in dependents.items()},
            roots=tuple(name for name, stage in stages.items() if not stage.depends_on),
            sinks=tuple(name for name in stages if not dependents[name]),
            order=order,
        )


def _topological_order(stages: dict[str, "WorkflowStage"]) -> tuple[str, ...]:
    remaining = {name: len(stage.depends_on) for name, stage in stages.items()}
    consumers: dict[str, list[str]] = {name: [] for name in stages}
    for name, stage in stages.items():
        for dependency in stage.depends_on:
            consumers[dependency].append(name)
    ready = [name for name, count in remaining.items() if count == 0]
    order: list[str] = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for consumer in consumers[name]:
            remaining[consumer] -= 1
            if remaining[consumer] == 0:
                ready.append(consumer)
    if len(order) < len(stages):
        cycle = _find_cycle(stages, {name for name in stages if name not in set(order)})
        raise GraphError(f"cycle {' -> '.join(cycle)}", cycle[0], "depends_on")
    return tuple(order)


def _find_cycle(stages: dict[str, "WorkflowStage"], candidates: set[str]) -> list[str]:
    """One cycle among ``candidates`` (stages left over by Kahn's algorithm), first stage repeated last."""
    start = next(name for name in stages if name in candidates)
    path: list[str] = []
    position: dict[str, int] = {}
    node = start
    while node not in position:
        position[node] = len(path)
        path.append(node)
        node = next(dep for dep in stages[node].depends_on if dep in candidates)
    cycle = path[position[node]:]
    # Report along the data flow (dependency -> dependent), from the first stage defined.
    cycle.reverse()
    order = list(stages)
    first = min(range(len(cycle)), key=lambda i: order.index(cycle[i]))
    cycle = cycle[first:] + cycle[:first]
    return [*cycle, cycle[0]]
