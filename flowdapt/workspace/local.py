"""The backend on the embedded store: runs workflows in this process and shares the store it holds
with other processes while it lives (:mod:`flowdapt.workspace.sharing`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from flowdapt.errors import FlowdaptError, OperationError
from flowdapt.events import Event
from flowdapt.history.models import LogLine, RunQuery
from flowdapt.resources.models import Resource, WorkflowRun
from flowdapt.settings import Settings


from flowdapt.workspace.base import Backend


class LocalBackend(Backend):
    """The embedded history store, with workflows run in this process.

    ``share`` names this process (``flowctl run``) when it holds a DuckDB store for a while: the
    store is then served to other processes until :meth:`close` (:mod:`flowdapt.workspace.sharing`).
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
            from flowdapt.workspace.sharing import StoreServer

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
