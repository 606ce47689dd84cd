"""The compute service: runs workflows for the server without blocking its event loop.

At most ``max_concurrent_runs`` runs execute at once; more wait in a FIFO queue as ``pending``
runs (recorded, so they can be listed, polled and cancelled). Workflows and configs are resolved
from the catalog cache on the loop; a run is prepared and started by one worker-thread call and
executes on the configured executor; the service learns that a run ended
from its ``workflow_finished`` event on the bus. :meth:`drain` stops accepting runs and waits for
the queued and running ones; :meth:`stop` drains with a deadline, then cancels what is left.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from uuid import uuid4

from pydantic import TypeAdapter, ValidationError

from flowdapt.compute.api import run_workflow
from flowdapt.compute.resume import resumable
from flowdapt.errors import OperationError, ResourceNotFoundError
from flowdapt.events import Event, RunFinished
from flowdapt.events.bus import BaseEventBus
from flowdapt.history.models import LogLine, RunQuery, StageAttempt
from flowdapt.history.store import HistoryStore
from flowdapt.history.versions import ran_workflow
from flowdapt.notebook.paths import run_output_dir
from flowdapt.resources.models import Config, ErrorInfo, Workflow, WorkflowRun
from flowdapt.server.cache import CatalogCache
from flowdapt.server.errors import RequestError, RunStateError, ServiceUnavailableError, describe_validation
from flowdapt.settings import get_settings

_log = logging.getLogger("flowdapt.server")
_LOG_LINES = TypeAdapter(list[LogLine])


class ComputeService:
    """Starts, queues, waits for and cancels workflow runs.

    Parameters
    ----------
    store : the open history store (pending records, finished runs)
    catalog : the catalog cache (workflow and config lookups)
    bus : the event bus the engine's events arrive on
    max_concurrent_runs : how many runs execute at once (0: no limit)
    """

    def __init__(self, store: HistoryStore, catalog: CatalogCache, bus: BaseEventBus, *,
                 max_concurrent_runs: int = 8) -> None:
        self.store = store
        self.catalog = catalog
        self.bus = bus
        self.max_concurrent_runs = max_concurrent_runs
        self.draining = False
        self._live: dict[str, WorkflowRun] = {}  # running, by uid
        self._queue: deque[tuple[WorkflowRun, Workflow, dict[str, Any]]] = deque()
        self._starting: set[str] = set()  # being started in a worker thread
        self._ended_early: set[str] = set()  # ended while still being started
        self._ended: dict[str, asyncio.Future[WorkflowRun]] = {}  # queued, starting or running, by uid
        self._unsubscribe: Any = None

    # -- lifecycle -----------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the configured executor and listen for finished runs."""
        from flowdapt.compute.api import resolve_executor

        self._unsubscribe = self.bus.subscribe(self._on_finished, types=[RunFinished.TYPE])
        await asyncio.to_thread(resolve_executor, None)

    async def drain(self, timeout: float | None = None) -> bool:
        """Refuse new runs and wait until the queued and running ones end; False if ``timeout`` passed first."""
        self.draining = True
        pending = list(self._ended.values())
        if not pending:
            return True
        done, _ = await asyncio.wait([asyncio.shield(f) for f in pending], timeout=timeout)
        return len(done) == len(pending)

    def resume(self) -> None:
        """Accept runs again after :meth:`drain`."""
        self.draining = False

    async def stop(self, timeout: float) -> None:
        """Drain for up to ``timeout`` seconds, cancel what still runs, close the executors."""
        from flowdapt.compute.executors import close_shared_executors

        if not await self.drain(timeout):
            _log.warning("cancelling %d runs still going after %.0fs of draining", len(self._ended), timeout)
            for run, _, _ in list(self._queue):
                self._end_queued(run, "cancelled")
            for run in list(self._live.values()):
                run.cancel()
            await self.drain(10.0)
        if self._unsubscribe is not None:
            self._unsubscribe()
        await asyncio.to_thread(close_shared_executors)

    # -- runs ----------------------------------------------------------------------------------------------
    async def submit(self, workflow: str, input: dict[str, Any] | None = None, *, source: str = "api",
                     namespace: str | None = None, executor: str | None = None,
                     uid: str | None = None, logical_time: datetime | None = None, rerun_of: str | None = None,
                     resume: WorkflowRun | None = None, definition: Workflow | None = None) -> WorkflowRun:
        """Start a run of ``workflow`` (name or uid), or queue it when the concurrency limit is reached;
        ``uid`` is the run's when the caller chose it (to know its events before it starts). ``definition``
        runs a given version of the workflow (reruns and resumed runs); see :func:`run_workflow` for the rest."""
        if self.draining:
            raise ServiceUnavailableError("the server is draining: it accepts no new runs")
        if definition is None:
            definition = await self.catalog.get("workflow", workflow)  # type: ignore[assignment]
        settings = get_settings()
        options = {"input": dict(input or {}), "source": source, "namespace": namespace, "executor": executor,
                   "logical_time": logical_time, "rerun_of": rerun_of, "resume": resume}
        uid = uid or uuid4().hex
        self._ended[uid] = asyncio.get_running_loop().create_future()
        if self.max_concurrent_runs and self.running >= self.max_concurrent_runs:
            run = WorkflowRun(uid=uid, workflow=definition.name, source=source, input=options["input"],
                              namespace=namespace or settings.default_namespace,
                              executor=executor or settings.executor.name, logical_time=logical_time,
                              rerun_of=rerun_of, resumed_from=resume.uid if resume else None)
            self._queue.append((run, definition, options))
            self._record(run)
            return run
        try:
            return await self._start(uid, definition, options)
        except BaseException:
            self._ended.pop(uid).cancel()
            raise

    async def _start(self, uid: str, definition: Workflow, options: dict[str, Any]) -> WorkflowRun:
        self._starting.add(uid)
        try:
            configs: list[Config] = await self.catalog.list("config")  # type: ignore[assignment]
            run = await asyncio.to_thread(run_workflow, definition, options["input"], source=options["source"],
                                          namespace=options["namespace"], executor=options["executor"],
                                          configs=configs, wait=False, uid=uid, logical_time=options["logical_time"],
                                          rerun_of=options["rerun_of"], resume=options["resume"])
        finally:
            self._starting.discard(uid)
        if uid in self._ended_early:  # a very short run ended before its thread handed it back
            self._ended_early.discard(uid)
            self._resolve(uid, run)
            self._start_next()
        else:
            self._live[uid] = run
        return run

    async def _start_queued(self, queued: WorkflowRun, definition: Workflow, options: dict[str, Any]) -> None:
        try:
            await self._start(queued.uid, definition, options)
        except Exception as exc:  # noqa: BLE001 - recorded on the run, like a failure of the run itself
            queued.state = "failed"
            queued.error = ErrorInfo.from_exception(exc)
            queued.finished_at = datetime.now(timezone.utc)
            self._record(queued)
            self._resolve(queued.uid, queued)
            self._start_next()

    async def rerun(self, identifier: str, *, executor: str | None = None, source: str = "api") -> WorkflowRun:
        """Start ``identifier``'s workflow version again with its input (the new run records ``rerun_of``)."""
        original = await self.get_run(identifier)
        return await self.submit(original.workflow, original.input, source=source, namespace=original.namespace,
                                 executor=executor or original.executor, rerun_of=original.uid,
                                 definition=await self._ran_workflow(original))

    async def resume_run(self, identifier: str, *, executor: str | None = None, source: str = "api") -> WorkflowRun:
        """Resume a failed or cancelled run: its finished stages reused, the rest run again (``resumed_from``)."""
        original = await self.get_run(identifier)
        why = resumable(original)
        if why is not None:
            raise OperationError(why)
        return await self.submit(original.workflow, original.input, source=source, namespace=original.namespace,
                                 executor=executor or original.executor, resume=original,
                                 definition=await self._ran_workflow(original))

    async def _ran_workflow(self, run: WorkflowRun) -> Workflow:
        document = await self._read(self.store.workflow_document, run.workflow_version) if run.workflow_version else None
        try:
            current = None if document is not None else await self.catalog.get("workflow", run.workflow)
        except ResourceNotFoundError:
            current = None
        return ran_workflow(run, document, current)  # type: ignore[arg-type]

    async def run_logs(self, identifier: str, **filters: Any) -> list[LogLine]:
        """The lines a run's stages printed and logged so far."""
        return await self._read(self.store.run_logs, identifier, **filters)

    async def wait(self, run: WorkflowRun) -> WorkflowRun:
        """The run once it has ended (at once if it already has)."""
        ended = self._ended.get(run.uid)
        return run if ended is None else await asyncio.shield(ended)

    def get_live(self, identifier: str) -> WorkflowRun | None:
        """A queued or running run of this server by uid or name, as it is now."""
        for run in (*self._live.values(), *(item[0] for item in self._queue)):
            if identifier in (run.uid, run.name):
                return run
        return None

    async def get_run(self, identifier: str) -> WorkflowRun:
        """A run by uid or name: live ones as they are now, others from the history."""
        return self.get_live(identifier) or await self._read(self.store.get_run, identifier)

    async def list_runs(self, query: RunQuery) -> list[WorkflowRun]:
        """Runs newest first from the history."""
        return await self._read(self.store.list_runs, query)

    async def latest_runs(self) -> list[WorkflowRun]:
        """The newest run of each workflow."""
        return await self._read(self.store.latest_runs)

    async def output_notebook(self, identifier: str, stage: str) -> dict[str, Any]:
        """The output notebook (nbformat JSON) of a notebook stage of a run; 404 when it has none."""
        run = await self.get_run(identifier)
        try:
            path = run.stage(stage).output_notebook
        except KeyError:
            raise ResourceNotFoundError("stage", f"{run.name}/{stage}") from None
        if not path:
            raise ResourceNotFoundError("output notebook", f"{run.name}/{stage}")
        return await asyncio.to_thread(_read_output_notebook, run, stage, Path(path))

    async def stage_attempts(self, identifier: str) -> list[StageAttempt]:
        """Every stage attempt of a run."""
        return await self._read(self.store.stage_attempts, identifier)

    async def _read(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        # Read your writes: what the engine reported so far is written before the history is queried.
        def flushed() -> Any:
            self.store.flush()
            return query(*args, **kwargs)

        return await asyncio.to_thread(flushed)

    async def cancel(self, identifier: str) -> WorkflowRun:
        """Cancel a queued or running run (of this server, or of another process through the history)."""
        run = self.get_live(identifier)
        if run is not None and run.uid in self._live:
            run.cancel()
            return run
        if run is not None:
            return self._end_queued(run, "cancelled")
        stored = await asyncio.to_thread(self.store.request_cancel, identifier)
        if stored.done:
            raise RunStateError(f"run '{stored.name}' already ended ({stored.state})")
        return stored

    async def record_reported(self, uid: str, document: Any) -> WorkflowRun:
        """Record a run that another process runs itself and reports (``flowdapt.run_workflow`` in a
        kernel under this server), so the history holds it as it holds this server's runs."""
        try:
            run = WorkflowRun.model_validate(document)
        except ValidationError as exc:
            raise RequestError(describe_validation(exc, "body field"), 422) from None
        if run.uid != uid:
            raise RequestError(f"body: the run's uid '{run.uid}' is not the one in the path ('{uid}')", 422)
        if uid in self._ended:
            raise RunStateError(f"run '{run.name}' is run by this server, which records it")
        self.store.record_reported_run(run)
        return run

    async def record_reported_logs(self, uid: str, document: Any) -> int:
        """Record lines that a run another process runs printed (its reporter sends them as they come)."""
        if uid in self._ended:
            raise RunStateError(f"run '{uid}' is run by this server, which records its logs")
        try:
            lines = _LOG_LINES.validate_python(document)
        except ValidationError as exc:
            raise RequestError(describe_validation(exc, "body field"), 422) from None
        self.store.record_logs(uid, lines)
        return len(lines)

    def record_workflow_version(self, version: str, document: Any) -> None:
        """Record the document of a workflow version a reported run ran (so it can be run again here)."""
        from flowdapt.compute.api import spec_version
        from flowdapt.resources.loading import parse_resource

        if not re.fullmatch(r"[0-9a-f]{16}", version):
            raise RequestError(f"workflow version '{version}': expected 16 hex digits", 422)
        workflow = parse_resource(document, check_targets=False)
        if not isinstance(workflow, Workflow):
            raise RequestError("body: expected a workflow document", 422)
        if spec_version(workflow) != version:
            raise RequestError(f"body: this workflow's version is not '{version}'", 422)
        self.store.record_workflow_version(version, workflow.to_document())

    async def delete_run(self, identifier: str) -> WorkflowRun:
        """Delete an ended run from the history."""
        if self.get_live(identifier) is not None:
            raise RunStateError(f"run '{identifier}' has not ended: cancel it first")
        return await asyncio.to_thread(self.store.delete_run, identifier)

    @property
    def running(self) -> int:
        """Runs executing or being started."""
        return len(self._live) + len(self._starting)

    @property
    def queued(self) -> int:
        """Runs waiting for a slot."""
        return len(self._queue)

    # -- internals -----------------------------------------------------------------------------------------
    def _record(self, run: WorkflowRun) -> None:
        self.store.record_run(run)

    def _end_queued(self, run: WorkflowRun, state: str) -> WorkflowRun:
        self._queue = deque(item for item in self._queue if item[0] is not run)
        run.state = state  # type: ignore[assignment]
        run.finished_at = datetime.now(timezone.utc)
        self._record(run)
        self._resolve(run.uid, run)
        return run

    def _resolve(self, uid: str, run: WorkflowRun) -> None:
        ended = self._ended.pop(uid, None)
        if ended is not None and not ended.done():
            ended.set_result(run)

    def _on_finished(self, event: Event) -> None:
        uid = event.data["uid"]
        if uid in self._starting:
            self._ended_early.add(uid)
            return
        run = self._live.pop(uid, None)
        if run is not None:
            self._resolve(uid, run)
            self._start_next()

    def _start_next(self) -> None:
        while self._queue and (not self.max_concurrent_runs or self.running < self.max_concurrent_runs):
            run, definition, options = self._queue.popleft()
            self._starting.add(run.uid)  # holds the slot from now on
            asyncio.ensure_future(self._start_queued(run, definition, options))


def _read_output_notebook(run: WorkflowRun, stage: str, path: Path) -> dict[str, Any]:
    # The recorded path is the server's own, but it is read only inside the run's output folder.
    folder = run_output_dir(run.uid).resolve()
    resolved = path.resolve()
    if not resolved.is_relative_to(folder) or not resolved.is_file():
        raise ResourceNotFoundError("output notebook", f"{run.name}/{stage}")
    return json.loads(resolved.read_text(encoding="utf-8"))
