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

    ``order`` is a topological order (definition order among independent stages), ``typed_order``
    the same as ``(name, stage type)`` pairs (what a run's stage records start from);
    ``dependency_counts`` and ``dependent_counts`` give each stage's number of dependencies and
    of dependents (a run copies them as its countdowns).
    """

    workflow: str
    stages: dict[str, "WorkflowStage"]
    dependents: dict[str, tuple[str, ...]]
    roots: tuple[str, ...]
    sinks: tuple[str, ...]
    order: tuple[str, ...]
    typed_order: tuple[tuple[str, str], ...]
    dependency_counts: dict[str, int]
    dependent_counts: dict[str, int]

    @classmethod
    def from_workflow(cls, workflow: "Workflow") -> "WorkflowGraph":
        """Build the graph; :class:`GraphError` names duplicate stages, unknown dependencies and cycles."""
        stages: dict[str, WorkflowStage] = {}
        for stage in workflow.spec.stages:
            if stage.name in stages:
                raise GraphError(f"duplicate stage name '{stage.name}'", stage.name, "name")
            stages[stage.name] = stage
        consumers: dict[str, list[str]] = {name: [] for name in stages}
        roots = []
        for name, stage in stages.items():
            depends_on = stage.depends_on
            if not depends_on:
                roots.append(name)
                continue
            for dependency in depends_on:
                listed = consumers.get(dependency)
                if listed is None:
                    raise GraphError(f"unknown stage '{dependency}'", name, "depends_on")
                if dependency == name:
                    raise GraphError("stage depends on itself", name, "depends_on")
                listed.append(name)
            if len(depends_on) > 1 and len(set(depends_on)) < len(depends_on):
                twice = next(dependency for index, dependency in enumerate(depends_on) if dependency in depends_on[:index])
                raise GraphError(f"'{twice}' is listed twice", name, "depends_on")
        dependency_counts = {name: len(stage.depends_on) for name, stage in stages.items()}
        order = _topological_order(stages, consumers, roots, dict(dependency_counts))
        return cls(
            workflow=workflow.metadata.name,
            stages=stages,
            dependents={name: tuple(names) for name, names in consumers.items()},
            roots=tuple(roots),
            sinks=tuple(name for name, names in consumers.items() if not names),
            order=order,
            typed_order=tuple((name, stages[name].type) for name in order),
            dependency_counts=dependency_counts,
            dependent_counts={name: len(names) for name, names in consumers.items()},
        )


def _topological_order(stages: dict[str, "WorkflowStage"], consumers: dict[str, list[str]],
                       roots: list[str], remaining: dict[str, int]) -> tuple[str, ...]:
    """Kahn's algorithm from ``roots``, first in first out (definition order among independent
    stages); counts down ``remaining`` (each stage's dependencies)."""
    order = list(roots)
    for name in order:  # the list grows while it is walked
        for consumer in consumers[name]:
            remaining[consumer] -= 1
            if remaining[consumer] == 0:
                order.append(consumer)
    if len(order) < len(stages):
        done = set(order)
        cycle = _find_cycle(stages, {name for name in stages if name not in done})
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
