"""Resuming a failed or cancelled run: which stages run again and which reuse what the run kept.

A stage of the run being resumed is *reusable* when its latest attempt finished (or was itself
reused or cached). Its output can be *reused* when the stage kept it (``options.keep_output``) and
the object store still holds it (cluster memory lives as long as the cluster or the process,
artifacts until deleted). The new run runs again:

- every stage that did not finish (failed, cancelled, skipped, never started);
- the failed items of a parameterized stage that finished with some failed items (only those items,
  when its output was kept; the whole stage otherwise);
- every stage downstream of a stage that runs again (its inputs may change);
- every reusable stage whose output is needed (by a stage that runs again, or as the run's result)
  but was not kept or is gone.

Every other stage is recorded ``cached`` with ``cached_from: run:<uid>``: its kept output is loaded
by a worker where a stage that runs again needs it, and not loaded at all where nothing does.
"""

from __future__ import annotations

from flowdapt.compute.graph import WorkflowGraph
from flowdapt.compute.outputs import StageExtras, keep_strategy, kept_exists
from flowdapt.resources.models import WorkflowRun

REUSABLE_STATES = ("finished", "cached")


def plan_resume(original: WorkflowRun, graph: WorkflowGraph, extras: dict[str, StageExtras],
                executor: str) -> dict[str, StageExtras]:
    """The extras of a run of ``graph`` (the version ``original`` ran) that resumes ``original`` on
    ``executor``: ``extras`` with those of reused stages and partially re-run maps replaced."""
    records = {record.name: record for record in original.stages}
    sources: dict[str, tuple[str, str | None]] = {}  # reusable stage -> (run holding its output, strategy)
    rerun: set[str] = set()
    partial: set[str] = set()
    for name in graph.order:
        record = records.get(name)
        if record is None or record.state not in REUSABLE_STATES:
            rerun.add(name)
            continue
        cached_from = record.cached_from or ""
        source = cached_from[4:] if cached_from.startswith("run:") else original.uid
        strategy = keep_strategy(graph.stages[name].options.keep_output)
        if strategy is not None and not kept_exists(source, name, strategy, executor):
            strategy = None
        if record.item_failures:
            (partial if strategy is not None else rerun).add(name)
            if strategy is not None:
                sources[name] = (source, strategy)
            continue
        sources[name] = (source, strategy)
    while True:
        _add_downstream(graph, rerun | partial, rerun, partial)
        needed = set(graph.sinks) | {dependency for name in rerun | partial
                                     for dependency in graph.stages[name].depends_on}
        missing = {name for name in needed - rerun - partial if sources[name][1] is None}
        if not missing:
            break
        rerun |= missing
    planned = dict(extras)
    for name, (source, strategy) in sources.items():
        base = extras.get(name) or StageExtras(graph.workflow)
        if name in partial:
            planned[name] = StageExtras(base.workflow, base.keep, base.cache, base.cache_ttl, base.cache_key,
                                        items=(source, strategy))  # type: ignore[arg-type]
        elif name not in rerun:
            wanted = name in needed
            planned[name] = StageExtras(graph.workflow, reuse=(source, strategy if wanted else None))
    return planned


def _add_downstream(graph: WorkflowGraph, starts: set[str], rerun: set[str], partial: set[str]) -> None:
    """Put every stage downstream of ``starts`` in ``rerun`` (a partially re-run map becomes a full re-run)."""
    stack = list(starts)
    while stack:
        for child in graph.dependents[stack.pop()]:
            if child not in rerun:
                partial.discard(child)
                rerun.add(child)
                stack.append(child)


def resumable(run: WorkflowRun) -> str | None:
    """Why ``run`` cannot be resumed, or ``None`` when it can."""
    if run.state not in ("failed", "cancelled", "interrupted"):
        return f"run '{run.name}' is {run.state}: only failed, cancelled or interrupted runs can be resumed"
    return None

