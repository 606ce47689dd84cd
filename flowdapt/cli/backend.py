"""What the command lines act on: a backend with one method per operation.

:class:`LocalBackend` works on the embedded store and runs workflows in this process. The
server brings an HTTP backend with the same methods; :func:`connect` picks one, so the commands
never change: a server when one is named or running, else the process that holds (and shares, see
:mod:`flowdapt.cli.sharing`) the embedded DuckDB store, else the store itself. A backend for a
server URL is registered with :func:`register_remote_backend`.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any, Callable

from flowdapt.errors import FlowdaptError, OperationError
from flowdapt.events import Event
from flowdapt.history.models import LogLine, RunQuery
from flowdapt.resources.models import Resource, WorkflowRun
from flowdapt.settings import Settings


class Backend(ABC):
    """The operations behind ``flowctl`` (and ``%flowdapt``), local or remote."""

    mode: str = ""

    @abstractmethod
    def apply(self, resources: list[Resource]) -> list[tuple[Resource, str]]:
        """Create or update all resources at once; (resource, created|updated|unchanged) each."""

    @abstractmethod
    def get(self, kind: str, identifier: str) -> Resource:
        """One resource by name or uid."""

    @abstractmethod
    def list(self, kind: str) -> list[Resource]:
        """Every resource of a kind."""

    @abstractmethod
    def delete(self, kind: str, identifiers: list[str]) -> list[Resource]:
        """Delete resources by name or uid, all or none."""

    @abstractmethod
    def list_runs(self, query: RunQuery) -> list[WorkflowRun]:
        """Runs newest first."""

    @abstractmethod
    def get_run(self, identifier: str) -> WorkflowRun:
        """One run with its stages."""

    @abstractmethod
    def run(self, workflow: str, input: dict[str, Any], *, wait: bool, executor: str | None,
            namespace: str | None, on_event: Callable[[Event], None] | None = None,
            source: str = "manual", uid: str | None = None) -> WorkflowRun:
        """Start a workflow by name or uid; with ``wait``, return once it has ended. ``on_event`` sees the
        events of a run in this process; ``uid`` is the run's when the caller chose it (local runs)."""

    @abstractmethod
    def cancel(self, identifier: str) -> WorkflowRun:
        """Ask a running run to stop."""

    @abstractmethod
    def set_trigger_enabled(self, identifier: str, enabled: bool) -> Resource:
        """Enable or disable a trigger."""

    @abstractmethod
    def trigger_status(self, identifier: str) -> dict[str, Any]:
        """``enabled``, ``last_fire_time``, ``next_fire_time`` of a trigger."""

    @abstractmethod
    def trigger_firings(self, identifier: str, limit: int) -> list[dict[str, Any]]:
        """The latest firings of a trigger, newest first."""

    @abstractmethod
    def follow(self, run: WorkflowRun, timeout: float) -> WorkflowRun:
        """``run`` as it is after at most ``timeout`` seconds, sooner if it ends (to wait interruptibly)."""

    @abstractmethod
    def status(self) -> dict[str, Any]:
        """What is configured and how much is stored."""

    def plugins(self) -> list[Any]:
        """The plugin packages installed where the workflows run (here, for the local backend)."""
        from flowdapt.plugins import installed_plugins

        return installed_plugins()

    @abstractmethod
    def logs(self, identifier: str, *, stage: str | None = None, attempt: int | None = None, after: int = -1,
             limit: int = 10_000) -> list[LogLine]:
        """What a run's stages printed and logged so far: the lines numbered after ``after``."""

    @abstractmethod
    def rerun(self, identifier: str, *, wait: bool, executor: str | None,
              on_event: Callable[[Event], None] | None = None, uid: str | None = None) -> WorkflowRun:
        """Run a run's workflow version again with its input (recorded as ``rerun_of``)."""

    @abstractmethod
    def resume(self, identifier: str, *, wait: bool, executor: str | None,
               on_event: Callable[[Event], None] | None = None, uid: str | None = None) -> WorkflowRun:
        """Resume a failed or cancelled run: stages it finished reused where their outputs were kept."""

    @abstractmethod
    def backfill(self, trigger: str, start: datetime, end: datetime, *, concurrency: int,
                 wait: bool) -> dict[str, Any]:
        """Fire a schedule's action once for each of its due times in ``[start, end]`` not fired yet."""

    @abstractmethod
    def clear_cache(self, workflow: str | None, stage: str | None) -> int:
        """Delete result-cache entries; how many."""

    def save_stage_module(self, module: str, source: str) -> None:
        """Store a ``%%flowdapt stage`` cell's module where this backend's runs import it."""
        from flowdapt.notebook.cellstage import save_stage_module

        save_stage_module(module, source)

    def close(self) -> None:
        """Release what the backend holds (the local one writes out the history)."""


class LocalBackend(Backend):
    """The embedded history store, with workflows run in this process.

    ``share`` names this process (``flowctl run``) when it holds a DuckDB store for a while: the
    store is then served to other processes until :meth:`close` (:mod:`flowdapt.cli.sharing`).
    """

    mode = "local"

    def __init__(self, settings: Settings, share: str | None = None) -> None:
        from flowdapt.history import open_store
        from flowdapt.resources.catalog import set_catalog

        self.settings = settings
        self.store = open_store(settings)
        set_catalog(self.store)
        self.sharing = None
        if share and settings.database_url().startswith("duckdb"):
            from flowdapt.cli.sharing import StoreServer

            self.sharing = StoreServer(self, share)

    def apply(self, resources: list[Resource]) -> list[tuple[Resource, str]]:
        return self.store.apply(resources)

    def get(self, kind: str, identifier: str) -> Resource:
        return self.store.get(kind, identifier)

    def list(self, kind: str) -> list[Resource]:
        return self.store.list(kind)

    def delete(self, kind: str, identifiers: list[str]) -> list[Resource]:
        for identifier in identifiers:
            self.store.get(kind, identifier)  # every one must exist before any is deleted
        return [self.store.delete(kind, identifier) for identifier in identifiers]

    def list_runs(self, query: RunQuery) -> list[WorkflowRun]:
        return self.store.list_runs(query)

    def get_run(self, identifier: str) -> WorkflowRun:
        return self.store.get_run(identifier)

    def run(self, workflow: str, input: dict[str, Any], *, wait: bool, executor: str | None,
            namespace: str | None, on_event: Callable[[Event], None] | None = None,
            source: str = "manual", uid: str | None = None) -> WorkflowRun:
        from flowdapt.compute.api import run_workflow

        return run_workflow(workflow, input, executor=executor, namespace=namespace, wait=wait,
                            on_event=on_event, source=source, uid=uid)

    def cancel(self, identifier: str) -> WorkflowRun:
        run = self.store.request_cancel(identifier)
        if run.done:
            raise FlowdaptError(f"run '{run.name}' already ended ({run.state})")
        return run

    def follow(self, run: WorkflowRun, timeout: float) -> WorkflowRun:
        return run.wait(timeout)  # the live record of a run of this process

    def set_trigger_enabled(self, identifier: str, enabled: bool) -> Resource:
        trigger = self.store.get("trigger_rule", identifier).model_copy(deep=True)
        trigger.spec.enabled = enabled  # type: ignore[attr-defined]
        [(changed, _)] = self.store.apply([trigger])
        return changed

    def trigger_status(self, identifier: str) -> dict[str, Any]:
        from flowdapt.history.triggers import TriggerLedger
        from flowdapt.triggers.service import trigger_status

        trigger = self.store.get("trigger_rule", identifier)
        last_fire = TriggerLedger(self.store, owner="").last_fire_times().get(trigger.uid)
        return trigger_status(trigger, last_fire)  # type: ignore[arg-type]

    def trigger_firings(self, identifier: str, limit: int) -> list[dict[str, Any]]:
        trigger = self.store.get("trigger_rule", identifier)
        return [firing.model_dump(mode="json") for firing in self.store.trigger_firings(trigger=trigger.name,
                                                                                       limit=limit)]

    def status(self) -> dict[str, Any]:
        from flowdapt.resources.models import RESOURCE_KINDS

        database = self.store.status()
        return {"mode": self.mode, "app_dir": str(self.settings.app_dir), "database": database.url,
                "backend": database.backend, "schema_version": database.schema_version,
                "executor": self.settings.executor.name, "namespace": self.settings.default_namespace,
                "runs": database.runs, "running": database.running,
                **{f"{kind}s": len(self.store.list(kind)) for kind in RESOURCE_KINDS}}

    def logs(self, identifier: str, *, stage: str | None = None, attempt: int | None = None, after: int = -1,
             limit: int = 10_000) -> list[LogLine]:
        self.store.flush()
        return self.store.run_logs(identifier, stage=stage, attempt=attempt, after=after, limit=limit)

    def rerun(self, identifier: str, *, wait: bool, executor: str | None,
              on_event: Callable[[Event], None] | None = None, uid: str | None = None) -> WorkflowRun:
        from flowdapt.compute.api import run_workflow

        original = self._recorded(identifier)
        return run_workflow(self._ran(original), original.input, executor=executor or original.executor,
                            namespace=original.namespace, wait=wait, on_event=on_event, uid=uid,
                            rerun_of=original.uid)

    def resume(self, identifier: str, *, wait: bool, executor: str | None,
               on_event: Callable[[Event], None] | None = None, uid: str | None = None) -> WorkflowRun:
        from flowdapt.compute.api import run_workflow
        from flowdapt.compute.resume import resumable

        original = self._recorded(identifier)
        why = resumable(original)
        if why is not None:
            raise OperationError(why)
        return run_workflow(self._ran(original), original.input, executor=executor or original.executor,
                            namespace=original.namespace, wait=wait, on_event=on_event, uid=uid, resume=original)

    def _recorded(self, identifier: str) -> WorkflowRun:
        self.store.flush()
        return self.store.get_run(identifier)

    def _ran(self, run: WorkflowRun) -> Any:
        from flowdapt.errors import ResourceNotFoundError
        from flowdapt.history.versions import ran_workflow

        document = self.store.workflow_document(run.workflow_version) if run.workflow_version else None
        try:
            current = None if document is not None else self.store.get("workflow", run.workflow)
        except ResourceNotFoundError:
            current = None
        return ran_workflow(run, document, current)  # type: ignore[arg-type]

    def backfill(self, trigger: str, start: datetime, end: datetime, *, concurrency: int,
                 wait: bool) -> dict[str, Any]:
        """Without a server the runs go on in this process, so this waits for them whatever ``wait`` says."""
        import asyncio

        from flowdapt.compute.api import run_workflow
        from flowdapt.history.store import this_owner
        from flowdapt.history.triggers import TriggerLedger
        from flowdapt.triggers.backfill import plan_backfill, run_backfill

        rule = self.store.get("trigger_rule", trigger)
        ledger = TriggerLedger(self.store, owner=this_owner())
        plan = plan_backfill(rule, start, end, concurrency,  # type: ignore[arg-type]
                             lambda first, last: ledger.claimed_times(rule.uid, first, last))
        action = rule.spec.action.target  # type: ignore[attr-defined]

        async def claim(when: datetime) -> str | None:
            return await asyncio.to_thread(ledger.claim_backfill, rule.uid, rule.name, action, when)

        async def record(firing: str, run_uid: str | None, error: str | None) -> None:
            await asyncio.to_thread(ledger.record_outcome, firing, run_uid=run_uid, error=error)

        async def submit(workflow: str, input: dict[str, Any], **options: Any) -> WorkflowRun:
            return await asyncio.to_thread(run_workflow, workflow, input, wait=False, **options)

        async def wait_for(run: WorkflowRun) -> Any:
            return await asyncio.to_thread(run.wait)

        done = asyncio.run(run_backfill(plan, rule, claim=claim, record=record, submit=submit,  # type: ignore[arg-type]
                                        wait=wait_for))
        return done.to_dict()

    def clear_cache(self, workflow: str | None, stage: str | None) -> int:
        from flowdapt.compute.outputs import clear_cache

        return clear_cache(workflow, stage)

    def close(self) -> None:
        if self.sharing is not None:
            self.sharing.close()
            self.sharing = None
        self.store.close()


_remote_backend: Callable[..., Backend] | None = None


def register_remote_backend(factory: Callable[..., Backend]) -> None:
    """Let :func:`connect` reach servers: ``factory(url, settings, token=None)`` returns the HTTP backend."""
    global _remote_backend
    _remote_backend = factory


def server_url(explicit: str | None, settings: Settings | None = None) -> str | None:
    """The server to talk to: ``--server``, else ``FLOWDAPT_URL``, else the server running for the
    app dir (its runtime file); ``None`` means work locally."""
    url = explicit or os.environ.get("FLOWDAPT_URL") or None
    if url is None and settings is not None:
        from flowdapt.server.runtime import read_runtime_file

        info = read_runtime_file(settings.app_dir)
        url = info["url"] if info else None
    return url


LOCK_WAIT_SECONDS = 10.0  # how long to retry a DuckDB file another (short) command holds


def _local_or_holder(settings: Settings, share: str | None) -> "Backend | dict[str, Any]":
    """The local backend, or the runtime info of the process that holds and shares the store. A file held
    by a process that does not share it (a short command) is tried again for a few seconds."""
    from flowdapt.cli.sharing import shared_store
    from flowdapt.history.errors import DatabaseLockedError

    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        holder = shared_store(settings.app_dir, settings.database_url())
        if holder is not None:
            return holder
        try:
            return LocalBackend(settings, share=share)
        except DatabaseLockedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def connect(settings: Settings, server: str | None = None, *, share: str | None = None) -> Backend:
    """The backend for these settings: a server's if one is named or running, else that of the process
    sharing the embedded store it holds, else the local one (shared as ``share`` when it is given)."""
    url, token = server_url(server, settings), None
    if url is None:
        local = _local_or_holder(settings, share)
        if isinstance(local, Backend):
            return local
        url, token = local["url"], local["token"]
    if _remote_backend is None:
        import flowdapt.cli.http  # noqa: F401 - registers the HTTP backend
    return _remote_backend(url, settings, token=token)  # type: ignore[misc]
