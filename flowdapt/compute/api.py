"""Running workflows in this process: :func:`run_workflow`."""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

from flowdapt.compute.context import RunContext, RunInfo
from flowdapt.compute.executors import BaseExecutor, shared_executor
from flowdapt.compute.graph import WorkflowGraph
from flowdapt.compute.outputs import stage_extras
from flowdapt.compute.resume import plan_resume
from flowdapt.compute.runner import Runner
from flowdapt.compute.validation import workflow_graph
from flowdapt.events import Event, listeners as global_listeners
from flowdapt.errors import ResourceError
from flowdapt.resources import catalog
from flowdapt.resources.configs import merged_config
from flowdapt.resources.identity import ByIdentity
from flowdapt.resources.loading import load, parse_resource
from flowdapt.resources.models import Config, Workflow, WorkflowRun
from flowdapt.settings import get_settings

WorkflowLike = Workflow | dict | str | Path

# Workflows parsed from dicts: (a copy of the dict as parsed, the Workflow) by dict object.
_parsed: ByIdentity[tuple[dict, Workflow]] = ByIdentity(kept=64)


def resolve_workflow(workflow: WorkflowLike) -> Workflow:
    """A :class:`Workflow` from a resource, a dict, a file path, or a name/uid in the catalog."""
    if isinstance(workflow, Workflow):
        return workflow
    if isinstance(workflow, dict):
        resource = _parse_dict(workflow)
    elif isinstance(workflow, Path) or (isinstance(workflow, str) and Path(workflow).suffix in (".yaml", ".yml", ".json")):
        found = [r for r in load(workflow, check_targets=False) if isinstance(r, Workflow)]
        if len(found) != 1:
            raise ResourceError(f"expected exactly one workflow, found {len(found)}", file=str(workflow))
        resource = found[0]
    else:
        resource = catalog.get_workflow(str(workflow))
    return resource  # type: ignore[return-value]


def _parse_dict(definition: dict) -> Workflow:
    """The Workflow of a dict definition; the same dict run again unchanged (equal to a copy taken
    when it was parsed) gives the same Workflow, so its validated graph is reused as well: comparing
    a dict costs a small part of parsing and validating it (docs/performance.md). The cache keeps the
    dict alive (its id stays unique) and holds the latest 64."""
    cached = _parsed.get(definition)
    if cached is not None:
        try:
            if cached[0] == definition:
                return cached[1]
        except Exception:  # noqa: BLE001 - a value whose == does not give a bool (an array): parse anew
            pass
    resource = parse_resource({"kind": "workflow", **definition}, check_targets=False)
    try:
        snapshot = copy.deepcopy(definition)
    except Exception:  # noqa: BLE001 - a value that cannot be copied: not cached
        return resource  # type: ignore[return-value]
    _parsed.put(definition, (snapshot, resource))  # type: ignore[arg-type]
    return resource  # type: ignore[return-value]


_versions: ByIdentity[str] = ByIdentity(kept=64)


def workflow_version(definition: Workflow, graph: WorkflowGraph) -> str:
    """A hash of ``definition``'s spec: runs of the same version ran the same definition. Computed once
    per validated graph (a workflow run again unchanged keeps its graph, see ``workflow_graph``)."""
    version = _versions.get(graph)
    if version is None:
        version = spec_version(definition)
        _versions.put(graph, version)
    return version


def spec_version(definition: Workflow) -> str:
    """The version of a workflow: a hash of its spec (stages and their options) as a document."""
    spec = definition.to_document()["spec"]
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=repr).encode()).hexdigest()[:16]


def resolve_executor(executor: str | BaseExecutor | None) -> BaseExecutor:
    """A running executor: an instance as given (started if needed) or a shared one by name."""
    if isinstance(executor, BaseExecutor):
        if not executor.running:
            executor.start()
        return executor
    settings = get_settings().executor
    if executor is None or executor == settings.name:
        return shared_executor(settings.name, **settings.options)
    return shared_executor(executor)


def run_workflow(
    workflow: WorkflowLike,
    input: dict[str, Any] | None = None,
    *,
    executor: str | BaseExecutor | None = None,
    namespace: str | None = None,
    config: dict[str, Any] | None = None,
    configs: Iterable[Config] | None = None,
    source: Literal["manual", "api", "trigger", "notebook"] = "manual",
    wait: bool = True,
    on_event: Callable[[Event], None] | None = None,
    uid: str | None = None,
    logical_time: datetime | None = None,
    rerun_of: str | None = None,
    resume: WorkflowRun | None = None,
) -> WorkflowRun:
    """Run ``workflow`` in this process and return its :class:`WorkflowRun`.

    Parameters
    ----------
    workflow : a Workflow, a dict (``metadata``/``spec``), a resource file, or a name/uid in the catalog
    input : the run input; root stages get it as keyword arguments
    executor : ``"local"``, ``"dask"``, ``"ray"``, an executor instance, or None for the configured default
    namespace : object-store namespace (default: the configured default namespace)
    config : data merged over the config resources that select this workflow
    configs : the config resources to select from (default: those in the catalog)
    wait : if False, return at once; use ``run.wait()`` and ``run.cancel()``
    on_event : called with every event of this run (in the runner's thread)
    uid : the run's uid, when the caller announced the run before starting it (a server's queue)
    logical_time : the schedule time the run is for (``get_run_context().logical_time``)
    rerun_of : uid of the run this one runs again (recorded on the run)
    resume : a failed or cancelled run of this workflow version to resume: stages it finished are reused
        where their outputs were kept (see :mod:`flowdapt.compute.resume`)

    A failed run does not raise: ``run.state`` is ``failed`` and ``run.error`` holds the type, message,
    traceback and stage of the exception.
    """
    definition = resolve_workflow(workflow)
    graph = workflow_graph(definition)
    running = resolve_executor(executor)
    data = merged_config(definition, catalog.list_configs() if configs is None else configs)
    data.update(config or {})
    extras = stage_extras(graph)
    if resume is not None:
        extras = plan_resume(resume, graph, extras, running.kind)
    run = WorkflowRun(**({"uid": uid} if uid else {}), workflow=definition.metadata.name, source=source,
                      executor=running.kind, namespace=namespace or get_settings().default_namespace,
                      input=dict(input or {}), workflow_version=workflow_version(definition, graph),
                      logical_time=logical_time, rerun_of=rerun_of, resumed_from=resume.uid if resume else None)
    info = RunInfo(run.uid, run.name, run.workflow, logical_time.isoformat() if logical_time else None)
    context = RunContext(input=run.input, config=data, namespace=run.namespace, run=info, executor=running.kind)
    listeners = global_listeners() + ((on_event,) if on_event else ())
    runner = Runner(graph, running, run, context, listeners, extras=extras)
    run.attach(runner.control, definition)
    if wait:
        return runner.execute()
    threading.Thread(target=runner.execute, name=f"flowdapt-run-{run.name}", daemon=True).start()
    return run
