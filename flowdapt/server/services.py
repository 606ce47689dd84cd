"""The server's services, built together and started/stopped with the Jupyter server.

:class:`ResourceService` is the catalog over HTTP (workflows, configs, triggers: CRUD, paging,
all-or-nothing apply), read from the in-memory :class:`~flowdapt.server.cache.CatalogCache`.
:class:`Services` owns the history store, the catalog cache, the event bus, the compute and trigger
services, and answers ``status``. Every blocking database call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from flowdapt import __version__
from flowdapt.errors import ResourceConflictError, ResourceError, ResourceNotFoundError
from flowdapt.events import Event
from flowdapt.events.bus import BaseEventBus, bridge_engine_events, create_event_bus
from flowdapt.history.store import HistoryStore, this_owner
from flowdapt.plugins import installed_plugins
from flowdapt.resources import catalog
from flowdapt.compute.inputs import WorkflowInputs, workflow_inputs
from flowdapt.resources.loading import dumps, loads, parse_resource
from flowdapt.resources.models import RESOURCE_KINDS, Resource, TriggerRule, Workflow
from flowdapt.server.cache import CatalogCache
from flowdapt.server.compute import ComputeService
from flowdapt.server.dashboards import executor_dashboards
from flowdapt.server.errors import RequestError, ServiceUnavailableError
from flowdapt.server.live import PROGRESS_INTERVAL
from flowdapt.server.models import ServerStatus
from flowdapt.server.stats import StatsService
from flowdapt.settings import Settings
from flowdapt.triggers.service import TriggerService

_log = logging.getLogger("flowdapt.server")


@dataclass(frozen=True)
class ServerOptions:
    """The extension's configurable options (see :class:`~flowdapt.server.app.FlowdaptApp`)."""

    max_concurrent_runs: int = 8
    drain_timeout: float = 30.0
    event_bus_url: str = "memory://"
    trigger_lease_seconds: float = 30.0
    trigger_refresh_seconds: float = 10.0
    catalog_refresh_seconds: float = 2.0
    trigger_rate_limit: int = 60


class ResourceService:
    """Workflows, configs and trigger rules: list, get, create, replace, delete, apply.

    Parameters
    ----------
    store : the open history store (the catalog)
    cache : the catalog in memory, invalidated here on every write
    on_change : awaited with the kind of every resource created, changed or deleted
    describe : extra read-only ``status`` per kind (triggers: next and last fire time)
    """

    def __init__(self, store: HistoryStore, cache: CatalogCache, on_change: Callable[[str], Awaitable[None]],
                 describe: dict[str, Callable[[Resource], dict[str, Any]]]) -> None:
        self.store = store
        self.cache = cache
        self.on_change = on_change
        self.describe = describe

    def to_wire(self, resource: Resource) -> dict[str, Any]:
        """The resource as served: its document, plus ``status`` where the kind has one."""
        document = self.cache.document(resource)
        if resource.kind in self.describe:
            return {**document, "status": self.describe[resource.kind](resource)}
        return document

    async def list(self, kind: str, limit: int, offset: int) -> tuple[list[Resource], int]:
        """One page of the resources of ``kind`` by name, and how many there are."""
        items = await self.cache.list(kind)
        return items[offset:offset + limit], len(items)

    async def get(self, kind: str, identifier: str) -> Resource:
        return await self.cache.get(kind, identifier)

    async def create(self, kind: str, document: Any) -> Resource:
        """Store a new resource; 409 if one of this kind has the name already."""
        resource = parse(kind, document)
        try:
            await self.get(kind, resource.name)
        except ResourceNotFoundError:
            pass
        else:
            raise ResourceConflictError(kind, resource.name)
        return await self._apply([resource])

    async def replace(self, kind: str, identifier: str, document: Any) -> Resource:
        """Replace an existing resource's spec and annotations (its name and uid stay)."""
        current = await self.get(kind, identifier)
        if isinstance(document, dict):
            metadata = document.get("metadata", {})
            if not isinstance(metadata, dict):
                raise ResourceError(f"expected an object, got {type(metadata).__name__}", kind=kind,
                                    resource=current.name, field="metadata")
            if metadata.get("name", current.name) != current.name:
                raise ResourceError("renaming is not supported", kind=kind, resource=current.name,
                                    field="metadata.name")
            document = {**document, "metadata": {**metadata, "name": current.name}}
        return await self._apply([parse(kind, document)])

    async def set_enabled(self, identifier: str, enabled: bool) -> Resource:
        """Enable or disable a trigger."""
        trigger: TriggerRule = await self.get("trigger_rule", identifier)  # type: ignore[assignment]
        changed = trigger.model_copy(deep=True)
        changed.spec.enabled = enabled
        return await self._apply([changed])

    async def delete(self, kind: str, identifier: str) -> Resource:
        try:
            resource = await asyncio.to_thread(self.store.delete, kind, identifier)
        finally:
            self.cache.invalidate(kind)
        await self.on_change(kind)
        return resource

    async def apply(self, documents: Any) -> list[tuple[Resource, str]]:
        """Create or update several resources of any kind, all or nothing."""
        if not isinstance(documents, list) or not documents:
            raise RequestError("body: expected a non-empty JSON list of resources", 422)
        return await self._store([parse(None, document) for document in documents])

    async def apply_text(self, text: str) -> list[tuple[Resource, str]]:
        """Apply the resources of a YAML (or JSON) file's text, as ``flowctl apply -p`` reads files."""
        try:
            resources = await asyncio.to_thread(loads, text)
        except RecursionError:
            raise RequestError("body: nested too deeply", 400) from None
        if not resources:
            raise RequestError("body: the file has no resources", 422)
        return await self._store(resources)

    async def as_yaml(self, kind: str, identifier: str) -> str:
        """A resource as the YAML document ``flowctl apply -p`` takes back."""
        return dumps([await self.get(kind, identifier)])

    async def inputs(self, identifier: str) -> WorkflowInputs:
        """What the run input of a workflow may hold (imports its root stages' targets)."""
        workflow = await self.get("workflow", identifier)
        try:
            return await asyncio.to_thread(workflow_inputs, workflow)
        except Exception as exc:  # noqa: BLE001 - a target that no longer imports: name it, as apply would
            raise ResourceError(f"cannot read the root stages' parameters: {type(exc).__name__}: {exc}",
                                kind="workflow", resource=workflow.name) from None

    async def notebook_workflow(self, notebook: str, kernel_name: str | None = None,
                                cell_timeout: float | None = None) -> tuple[Resource, WorkflowInputs]:
        """Create or update the one-stage workflow that runs ``notebook``; with the parameters it takes."""
        from flowdapt.notebook.actions import notebook_workflow

        workflow: Workflow = await asyncio.to_thread(notebook_workflow, notebook, kernel_name=kernel_name,
                                                     cell_timeout=cell_timeout)
        stored = await self._apply([workflow])
        return stored, await asyncio.to_thread(workflow_inputs, stored)

    async def _apply(self, resources: list[Resource]) -> Resource:
        (resource, _), = await self._store(resources)
        return resource

    async def _store(self, resources: list[Resource]) -> list[tuple[Resource, str]]:
        kinds = {resource.kind for resource in resources}
        try:
            outcome = await asyncio.to_thread(self.store.apply, resources)
        finally:
            for kind in kinds:
                self.cache.invalidate(kind)
        for kind in kinds:
            await self.on_change(kind)
        return outcome


async def _step(what: str, step: Awaitable[Any]) -> None:
    try:
        await step
    except Exception:  # noqa: BLE001 - shutting down: go on with the other steps
        _log.exception("%s failed", what)


def parse(kind: str | None, document: Any) -> Resource:
    """A validated resource from a request body; the route's ``kind`` is the default and must match."""
    if not isinstance(document, dict):
        raise RequestError("body: expected a JSON object with metadata and spec", 422)
    if kind is not None:
        given = document.get("kind", kind)
        if given != kind:
            raise ResourceError(f"expected kind '{kind}' on this route, got '{given}'", kind=kind, field="kind")
        document = {**document, "kind": kind}
    return parse_resource(document)


class PluginService:
    """The plugin packages installed where the server runs (listing imports them: done in a thread)."""

    async def list(self) -> list[dict[str, Any]]:
        plugins = await asyncio.to_thread(installed_plugins)
        return [plugin.model_dump(mode="json") for plugin in plugins]

    async def get(self, name: str) -> dict[str, Any]:
        listed = {plugin["name"]: plugin for plugin in await self.list()}
        if name not in listed:
            raise ResourceNotFoundError("plugin", name)
        return listed[name]


class Services:
    """Everything the extension runs; :meth:`start` and :meth:`stop` follow the Jupyter server."""

    def __init__(self, settings: Settings, options: ServerOptions) -> None:
        self.settings = settings
        self.options = options
        self.ready = False
        self.store = HistoryStore.from_settings(settings)
        self.catalog = CatalogCache(self.store, options.catalog_refresh_seconds)
        self.bus: BaseEventBus = create_event_bus(options.event_bus_url)
        self.compute = ComputeService(self.store, self.catalog, self.bus,
                                      max_concurrent_runs=options.max_concurrent_runs)
        self.triggers = TriggerService(self.store, self.bus, self.compute.submit, owner=this_owner(),
                                       lease_seconds=options.trigger_lease_seconds,
                                       refresh_seconds=options.trigger_refresh_seconds,
                                       rate_limit=options.trigger_rate_limit, wait=self.compute.wait)
        self.resources = ResourceService(self.store, self.catalog, self._changed,
                                         {"trigger_rule": self.triggers.status})
        self.stats = StatsService(self.store)
        self.plugins = PluginService()
        self._unbridge: Any = None
        #: Whether jupyter-server-proxy serves this server's ``proxy/<port>/`` routes (set by the app).
        self.proxy_dashboards = False
        #: Called with the kind of every resource created, changed or deleted (live views). Not an event on
        #: the bus: condition triggers must not fire on a trigger being saved.
        self.resource_listeners: list[Callable[[str], None]] = []

    def require_ready(self) -> "Services":
        """These services, or 503 while they start or stop."""
        if not self.ready:
            raise ServiceUnavailableError("the flowdapt services are not running (starting or stopping)")
        return self

    async def start(self) -> None:
        """Open the history (runs a crash left ``running`` become ``interrupted``), start every service."""
        await asyncio.to_thread(self.store.open)
        catalog.set_catalog(self.store)
        await self.bus.start()
        self._unbridge = bridge_engine_events(self.bus, progress_interval=PROGRESS_INTERVAL)
        await self.compute.start()
        await self.triggers.start()
        self.ready = True

    async def stop(self) -> None:
        """Stop triggers, drain runs (then cancel), flush the history, close the bus and executors. A step
        that fails (the database is gone) is logged and the next one still runs: the server always stops."""
        self.ready = False
        await _step("stopping the trigger service", self.triggers.stop())
        await _step("stopping the compute service", self.compute.stop(self.options.drain_timeout))
        if self._unbridge is not None:
            self._unbridge()
        await _step("closing the event bus", self.bus.close())
        await _step("closing the history", asyncio.to_thread(self.store.close))
        catalog.set_catalog(catalog.MemoryCatalog())

    async def save_stage_module(self, module: str, source: str) -> str:
        """Write a ``%%flowdapt stage`` module into this server's stage folder; answers its path."""
        from flowdapt.notebook.cell_stage import CellStageError, save_stage_module

        try:
            path = await asyncio.to_thread(save_stage_module, module, source)
        except CellStageError as exc:
            raise RequestError(f"module '{module}': {exc}", 422) from None
        return str(path)

    async def clear_cache(self, workflow: str | None = None, stage: str | None = None) -> int:
        """Delete result-cache entries (of a workflow, one of its stages, or all); answers how many."""
        from flowdapt.compute.outputs import clear_cache

        return await asyncio.to_thread(clear_cache, workflow, stage)

    def publish(self, event: Event) -> Event:
        """Publish a user event on the bus (condition triggers see it)."""
        self.bus.publish(event)
        return event

    async def status(self) -> ServerStatus:
        """What the server runs and what is stored (the keys of the local ``flowctl status`` and more)."""
        def flushed_status() -> Any:  # read your writes: what the engine reported so far is counted
            self.store.flush()
            return self.store.status()

        database = await asyncio.to_thread(flushed_status)
        counts = {}
        for kind in RESOURCE_KINDS:
            counts[f"{kind}s"] = len(await self.catalog.list(kind))
        return ServerStatus(**{"version": __version__,
                "app_dir": str(self.settings.app_dir), "database": database.url, "backend": database.backend,
                "schema_version": database.schema_version, "executor": self.settings.executor.name,
                "namespace": self.settings.default_namespace, "runs": database.runs, "running": self.compute.running,
                "queued": self.compute.queued, "draining": self.compute.draining, **counts,
                "schedules": len(self.triggers.schedules), "conditions": len(self.triggers.conditions),
                "trigger_firings": self.triggers.fired, "trigger_suppressed": self.triggers.suppressed,
                "dashboards": await asyncio.to_thread(executor_dashboards, self.proxy_dashboards)})

    async def _changed(self, kind: str) -> None:
        if kind == TriggerRule.KIND:
            await self.triggers.reload()
        for listener in self.resource_listeners:
            listener(kind)
