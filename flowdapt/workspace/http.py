"""The HTTP backend of ``flowctl`` and the magics: the same operations as the local one, through a server's REST API."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Callable

from flowdapt.client import Client, ServerCatalog
from flowdapt.errors import FlowdaptError
from flowdapt.events import Event
from flowdapt.history.models import LogLine, RunQuery
from flowdapt.resources import catalog
from flowdapt.resources.models import Resource, WorkflowRun
from flowdapt.settings import Settings
from flowdapt.workspace.base import Backend


POLL_SECONDS = 0.1  # how often a run followed over HTTP is read again


class HttpBackend(Backend):
    """A running flowdapt server; runs execute there (``--no-wait`` returns at once)."""

    mode = "server"

    def __init__(self, url: str, settings: Settings, token: str | None = None) -> None:
        self.client = Client(url, token, app_dir=settings.app_dir)
        catalog.set_catalog(ServerCatalog(self.client))  # run_workflow("name") in this process looks there

    def apply(self, resources: list[Resource]) -> list[tuple[Resource, str]]:
        return self.client.apply(resources)

    def get(self, kind: str, identifier: str) -> Resource:
        return self.client.get(kind, identifier)

    def list(self, kind: str) -> list[Resource]:
        return self.client.list(kind)

    def delete(self, kind: str, identifiers: list[str]) -> list[Resource]:
        for identifier in identifiers:
            self.client.get(kind, identifier)  # every one must exist before any is deleted
        return [self.client.delete(kind, identifier) for identifier in identifiers]

    def list_runs(self, query: RunQuery) -> list[WorkflowRun]:
        return self.client.list_runs(**query.model_dump())

    def get_run(self, identifier: str) -> WorkflowRun:
        return self.client.get_run(identifier)

    def run(self, workflow: str, input: dict[str, Any], *, wait: bool, executor: str | None,
            namespace: str | None, on_event: Callable[[Event], None] | None = None,
            source: str = "manual", uid: str | None = None) -> WorkflowRun:
        if uid is not None:
            raise FlowdaptError("a server chooses the uids of its runs")
        return self.client.run(workflow, input, wait=wait, namespace=namespace, executor=executor, source=source)

    def cancel(self, identifier: str) -> WorkflowRun:
        return self.client.cancel(identifier)

    def set_trigger_enabled(self, identifier: str, enabled: bool) -> Resource:
        return self.client.set_trigger_enabled(identifier, enabled)

    def trigger_status(self, identifier: str) -> dict[str, Any]:
        return self.client.trigger_status(identifier)

    def trigger_firings(self, identifier: str, limit: int) -> list[dict[str, Any]]:
        return self.client.trigger_firings(identifier, limit=limit)

    def follow(self, run: WorkflowRun, timeout: float) -> WorkflowRun:
        time.sleep(min(timeout, POLL_SECONDS))
        return self.client.get_run(run.uid)

    def status(self) -> dict[str, Any]:
        return {"server": self.client.url, **self.client.status()}

    def plugins(self) -> list[Any]:
        return self.client.plugins()

    def logs(self, identifier: str, *, stage: str | None = None, attempt: int | None = None, after: int = -1,
             limit: int = 10_000) -> list[LogLine]:
        return self.client.logs(identifier, stage=stage, attempt=attempt, after=after, limit=limit)  # type: ignore[return-value]

    def rerun(self, identifier: str, *, wait: bool, executor: str | None,
              on_event: Callable[[Event], None] | None = None, uid: str | None = None) -> WorkflowRun:
        return self.client.rerun(identifier, wait=wait, executor=executor, source="manual")

    def resume(self, identifier: str, *, wait: bool, executor: str | None,
               on_event: Callable[[Event], None] | None = None, uid: str | None = None) -> WorkflowRun:
        return self.client.resume(identifier, wait=wait, executor=executor, source="manual")

    def backfill(self, trigger: str, start: datetime, end: datetime, *, concurrency: int,
                 wait: bool) -> dict[str, Any]:
        return self.client.backfill(trigger, start, end, concurrency=concurrency, wait=wait)

    def clear_cache(self, workflow: str | None, stage: str | None) -> int:
        return self.client.clear_cache(workflow, stage)

    def save_stage_module(self, module: str, source: str) -> None:
        super().save_stage_module(module, source)  # for runs in this process (a kernel's run_workflow)
        self.client.save_stage_module(module, source)

    def close(self) -> None:
        self.client.close()
