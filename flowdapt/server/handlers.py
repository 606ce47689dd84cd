"""REST handlers under ``{base_url}flowdapt/api/v1/``: thin tornado handlers over the services.

Every verb is ``@web.authenticated`` and ``@authorized`` (Jupyter's identity provider and
authorizer, resource ``flowdapt``); verbs that change anything also need the ``execute`` action,
since what they store or start runs code. Errors are mapped to statuses once, in
:meth:`FlowdaptHandler.write_error`, and answered as ``{"detail", "status_code"}``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeVar

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import ensure_async, url_path_join
from pydantic import BaseModel, ValidationError
from tornado import web
from tornado.iostream import StreamClosedError

from flowdapt.events import Event
from flowdapt.history.stats import VIEWS
from flowdapt.server.errors import RequestError, describe_validation, service_error, status_of
from flowdapt.server.models import (
    ApiInfo,
    BackfillAnswer,
    BackfillIn,
    CacheCleared,
    CacheQuery,
    DrainOptions,
    DrainState,
    EventIn,
    FiringsQuery,
    LogsQuery,
    LogsRecorded,
    NotebookIn,
    Page,
    PublishedEvent,
    RunAgainOptions,
    RunOptions,
    RunsQuery,
    SavedStageModule,
    StageModuleIn,
    WorkflowVersionRecorded,
)
from flowdapt.server.openapi import openapi_document
from flowdapt.server.services import Services

API = "flowdapt/api/v1"
KINDS = {"workflows": "workflow", "configs": "config", "triggers": "trigger_rule"}
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
MUTATING_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_BODY_DEPTH = 64  # resources, inputs and events nest far less; deeper bodies are refused before use
FOLLOW_SECONDS = 0.5  # how often a followed run's new log lines are read
M = TypeVar("M", bound=BaseModel)


class FlowdaptHandler(ExtensionHandlerMixin, APIHandler):
    """Base of every flowdapt route: services, request parsing, JSON answers and errors."""

    auth_resource = "flowdapt"

    async def prepare(self) -> None:
        """Besides ``@authorized`` (``read`` or ``write`` by verb): a verb that changes anything needs the
        ``execute`` action too, since workflows, triggers and events run code (the trust model)."""
        await super().prepare()
        user = self.current_user
        if user and self.request.method in MUTATING_VERBS:
            allowed = await ensure_async(self.authorizer.is_authorized(self, user, "execute", self.auth_resource))
            if not allowed:
                raise web.HTTPError(403, f"User is not authorized to execute on resource: {self.auth_resource}.")

    @property
    def services(self) -> Services:
        return self.settings["flowdapt_services"].require_ready()

    def query(self, model: type[M]) -> M:
        """The query string as ``model``; 400 naming the parameter when it does not fit. ``token`` is
        Jupyter's (a token may be given in the URL), not a parameter of the route; nor is the bare
        timestamp JupyterLab's ServerConnection appends to bust caches (``?1712345678901``)."""
        keys = [key for key in self.request.query_arguments
                if key != "token" and not (key.isdigit() and not self.get_query_argument(key))]
        try:
            return model.model_validate({key: self.get_query_argument(key) for key in keys})
        except ValidationError as exc:
            raise RequestError(describe_validation(exc, "query parameter"), 400) from None

    def body(self, model: type[M] | None = None, default: Any = None) -> Any:
        """The JSON body (``default`` when empty), as ``model`` if given; 400 if not JSON, 422 if invalid."""
        if not self.request.body.strip():
            data = default
        else:
            try:
                data = json.loads(self.request.body, parse_constant=_refuse_constant, parse_float=_finite_float)
            except ValueError as exc:
                raise RequestError(f"body: invalid JSON: {exc}", 400) from None
            except RecursionError:
                raise RequestError(f"body: nested deeper than {MAX_BODY_DEPTH} levels", 400) from None
            if _depth_over(data, MAX_BODY_DEPTH):
                raise RequestError(f"body: nested deeper than {MAX_BODY_DEPTH} levels", 400)
        if model is None:
            return data
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise RequestError(describe_validation(exc, "body field"), 422) from None

    def answer(self, data: Any, status: int = 200) -> None:
        """Finish with ``data`` (an answer model of :mod:`flowdapt.server.models`, or plain data) as JSON."""
        if isinstance(data, BaseModel):
            data = data.model_dump(mode="json")
        self.set_status(status)
        self.finish(json.dumps(data, default=str))

    def answer_yaml(self, text: str) -> None:
        """Finish with a YAML document."""
        self.finish(text, set_content_type="application/yaml; charset=UTF-8")

    def wants_yaml(self) -> bool:
        """Whether the request asks for YAML (``Accept: application/yaml``) rather than JSON."""
        return any(kind in self.request.headers.get("Accept", "") for kind in YAML_TYPES)

    def sent_yaml(self) -> bool:
        """Whether the request body is YAML (by its ``Content-Type``)."""
        return self.request.headers.get("Content-Type", "").split(";")[0].strip() in YAML_TYPES

    def answer_page(self, items: list[Any], total: int) -> None:
        """Finish with one page of a list; ``X-Total-Count`` tells how many there are."""
        self.set_header("X-Total-Count", str(total))
        self.answer(items)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, web.HTTPError):
            detail = exc.log_message or exc.reason or self._reason
        elif exc is not None and status_of(exc) is not None:
            status_code = status_of(exc)  # type: ignore[assignment]
            detail = str(service_error(exc))
        else:
            detail = "Internal Server Error"
        self.set_status(status_code)
        self.set_header("Content-Type", "application/json")
        if status_code == 405:  # the verbs this route has (RFC 9110)
            self.set_header("Allow", ", ".join(verb.upper() for verb in ("get", "post", "put", "delete")
                                               if verb in type(self).__dict__))
        self.finish(json.dumps({"detail": detail, "status_code": status_code}))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if value is not None and status_of(value) is not None:
            self.log.info("%s %s: %s", self.request.method, self.request.uri, value)
        else:
            super().log_exception(typ, value, tb)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed (JSON has no NaN or Infinity)")


def _finite_float(text: str) -> float:
    """A JSON number as a float; one too large for a double (``1e400``) would be Infinity: refused."""
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} is too large (it would be Infinity)")
    return value


def _depth_over(value: Any, limit: int) -> bool:
    """Whether ``value`` (parsed JSON) nests lists and objects more than ``limit`` levels deep."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


class RootHandler(FlowdaptHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        from flowdapt import __version__

        self.answer(ApiInfo(version=__version__))


class CollectionHandler(FlowdaptHandler):
    """``workflows``, ``configs``, ``triggers``: list (paged) and create."""

    @web.authenticated
    @authorized
    async def get(self, collection: str) -> None:
        page = self.query(Page)
        resources = self.services.resources
        items, total = await resources.list(KINDS[collection], page.limit, page.offset)
        self.answer_page([resources.to_wire(item) for item in items], total)

    @web.authenticated
    @authorized
    async def post(self, collection: str) -> None:
        resources = self.services.resources
        created = await resources.create(KINDS[collection], self.body())
        self.answer(resources.to_wire(created), 201)


class ResourceHandler(FlowdaptHandler):
    """One workflow, config or trigger by name or uid: get, replace, delete."""

    @web.authenticated
    @authorized
    async def get(self, collection: str, identifier: str) -> None:
        resources = self.services.resources
        if self.wants_yaml():
            self.answer_yaml(await resources.as_yaml(KINDS[collection], identifier))
        else:
            self.answer(resources.to_wire(await resources.get(KINDS[collection], identifier)))

    @web.authenticated
    @authorized
    async def put(self, collection: str, identifier: str) -> None:
        resources = self.services.resources
        self.answer(resources.to_wire(await resources.replace(KINDS[collection], identifier, self.body())))

    @web.authenticated
    @authorized
    async def delete(self, collection: str, identifier: str) -> None:
        resources = self.services.resources
        self.answer(resources.to_wire(await resources.delete(KINDS[collection], identifier)))


class ApplyHandler(FlowdaptHandler):
    """Create or update a list of resources of any kinds, all or nothing (``flowctl apply``); the body is
    a JSON list, or a resource file's YAML text (``Content-Type: application/yaml``)."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        resources = self.services.resources
        if self.sent_yaml():
            outcome = await resources.apply_text(self.request.body.decode("utf-8", errors="replace"))
        else:
            outcome = await resources.apply(self.body())
        self.answer([{"resource": resources.to_wire(item), "outcome": result} for item, result in outcome])


class WorkflowInputsHandler(FlowdaptHandler):
    """The run input a workflow takes: its root stages' parameters (the Run form in Lab)."""

    @web.authenticated
    @authorized
    async def get(self, identifier: str) -> None:
        self.answer((await self.services.resources.inputs(identifier)).model_dump(mode="json"))


class NotebookWorkflowHandler(FlowdaptHandler):
    """Create or update the one-stage workflow that runs a notebook; answers it with its parameters."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        request = self.body(NotebookIn)
        resources = self.services.resources
        workflow, inputs = await resources.notebook_workflow(request.notebook, request.kernel_name,
                                                             request.cell_timeout)
        self.answer({"workflow": resources.to_wire(workflow), "inputs": inputs.model_dump(mode="json")})


class TriggerSwitchHandler(FlowdaptHandler):
    """``triggers/{id}/enable`` and ``/disable``."""

    @web.authenticated
    @authorized
    async def post(self, identifier: str, switch: str) -> None:
        resources = self.services.resources
        self.answer(resources.to_wire(await resources.set_enabled(identifier, switch == "enable")))


class TriggerFiringsHandler(FlowdaptHandler):
    """The firing log of one trigger, newest first."""

    @web.authenticated
    @authorized
    async def get(self, identifier: str) -> None:
        query = self.query(FiringsQuery)
        services = self.services
        trigger = await services.resources.get("trigger_rule", identifier)
        firings = await services.triggers.firings(trigger.name, query.since, query.limit, query.offset)
        self.answer([firing.model_dump(mode="json") for firing in firings])


class RunWorkflowHandler(FlowdaptHandler):
    """Start a run: body = input; ``?wait=true`` (default) answers once it has ended."""

    @web.authenticated
    @authorized
    async def post(self, identifier: str) -> None:
        options = self.query(RunOptions)
        data = self.body(default={})
        if not isinstance(data, dict):
            raise RequestError("body: the run input must be a JSON object", 422)
        compute = self.services.compute
        run = await compute.submit(identifier, data, source=options.source, namespace=options.namespace,
                                   executor=options.executor)
        if options.wait:
            run = await compute.wait(run)
        self.answer(run.to_document(), 200 if options.wait else 202)


class RunsHandler(FlowdaptHandler):
    """Runs newest first; filters ``workflow state source since until``, paging ``limit offset``."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        query = self.query(RunsQuery)
        runs = await self.services.compute.list_runs(query)
        self.answer([run.to_document() for run in runs])


class LatestRunsHandler(FlowdaptHandler):
    """The newest run of each workflow (the last-run column of Lab's workflow list)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.answer([run.to_document() for run in await self.services.compute.latest_runs()])


class RunHandler(FlowdaptHandler):
    """One run by uid or name: get, record (a run another process runs), delete (ended runs only)."""

    @web.authenticated
    @authorized
    async def get(self, identifier: str) -> None:
        self.answer((await self.services.compute.get_run(identifier)).to_document())

    @web.authenticated
    @authorized
    async def put(self, identifier: str) -> None:
        self.answer((await self.services.compute.record_reported(identifier, self.body())).to_document())

    @web.authenticated
    @authorized
    async def delete(self, identifier: str) -> None:
        self.answer((await self.services.compute.delete_run(identifier)).to_document())


class CancelRunHandler(FlowdaptHandler):
    @web.authenticated
    @authorized
    async def post(self, identifier: str) -> None:
        self.answer((await self.services.compute.cancel(identifier)).to_document(), 202)


class RunStagesHandler(FlowdaptHandler):
    """Every stage attempt of a run."""

    @web.authenticated
    @authorized
    async def get(self, identifier: str) -> None:
        attempts = await self.services.compute.stage_attempts(identifier)
        self.answer([attempt.model_dump(mode="json") for attempt in attempts])


async def _run_again(handler: FlowdaptHandler, identifier: str, operation: str) -> None:
    options = handler.query(RunAgainOptions)
    compute = handler.services.compute
    start = compute.rerun if operation == "rerun" else compute.resume_run
    run = await start(identifier, executor=options.executor, source=options.source)
    if options.wait:
        run = await compute.wait(run)
    handler.answer(run.to_document(), 200 if options.wait else 202)


class RerunHandler(FlowdaptHandler):
    """``runs/{id}/rerun``: the run's input and workflow version, again."""

    @web.authenticated
    @authorized
    async def post(self, identifier: str) -> None:
        await _run_again(self, identifier, "rerun")


class ResumeHandler(FlowdaptHandler):
    """``runs/{id}/resume``: a failed or cancelled run, its finished stages reused where kept."""

    @web.authenticated
    @authorized
    async def post(self, identifier: str) -> None:
        await _run_again(self, identifier, "resume")


class RunLogsHandler(FlowdaptHandler):
    """What a run's stages printed and logged: a JSON list, or with ``follow`` an NDJSON stream of lines
    that ends when the run has ended and every line is sent; ``POST`` records lines a kernel reports."""

    @web.authenticated
    @authorized
    async def get(self, identifier: str) -> None:
        query = self.query(LogsQuery)
        compute = self.services.compute
        filters = {"stage": query.stage, "attempt": query.attempt, "limit": query.limit}
        if not query.follow:
            lines = await compute.run_logs(identifier, after=query.after, **filters)
            self.answer([line.model_dump(mode="json") for line in lines])
            return
        self.set_header("Content-Type", "application/x-ndjson")
        after = query.after
        try:
            while True:
                ended = (await compute.get_run(identifier)).done  # read first: the lines read next are then all of them
                lines = await compute.run_logs(identifier, after=after, **filters)
                if lines:
                    self.write("".join(line.model_dump_json() + "\n" for line in lines))
                    after = lines[-1].seq
                    await self.flush()
                if ended and len(lines) < query.limit:
                    break
                await asyncio.sleep(FOLLOW_SECONDS)
        except StreamClosedError:
            return  # the client went away
        self.finish()

    @web.authenticated
    @authorized
    async def post(self, identifier: str) -> None:
        recorded = await self.services.compute.record_reported_logs(identifier, self.body())
        self.answer(LogsRecorded(recorded=recorded), 202)


class BackfillHandler(FlowdaptHandler):
    """Fire a schedule trigger's action for each of its due times in a range that has not fired yet."""

    @web.authenticated
    @authorized
    async def post(self, identifier: str) -> None:
        request = self.body(BackfillIn)
        services = self.services
        trigger = await services.resources.get("trigger_rule", identifier)
        backfill = await services.triggers.backfill(trigger, request.start, request.end, request.concurrency,
                                                    wait=request.wait)
        self.answer(BackfillAnswer.model_validate(backfill.to_dict()), 200 if request.wait else 202)


class CacheHandler(FlowdaptHandler):
    """``DELETE cache``: clear the result cache (of a workflow, one of its stages, or all)."""

    @web.authenticated
    @authorized
    async def delete(self) -> None:
        query = self.query(CacheQuery)
        self.answer(CacheCleared(deleted=await self.services.clear_cache(query.workflow, query.stage)))


class WorkflowVersionHandler(FlowdaptHandler):
    """Record a workflow version a kernel's reported run ran, so this server can run it again."""

    @web.authenticated
    @authorized
    async def put(self, version: str) -> None:
        self.services.compute.record_workflow_version(version, self.body())
        self.answer(WorkflowVersionRecorded(version=version), 201)


class OutputNotebookHandler(FlowdaptHandler):
    """The output notebook of a notebook stage of a run (nbformat JSON); 404 when it has none."""

    @web.authenticated
    @authorized
    async def get(self, identifier: str, stage: str) -> None:
        self.answer(await self.services.compute.output_notebook(identifier, stage))


class EventsHandler(FlowdaptHandler):
    """Publish an event on the bus (condition triggers evaluate it)."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        event = self.services.publish(Event(**self.body(EventIn).model_dump()))
        self.answer(PublishedEvent(**event.to_dict()), 202)


class StageModuleHandler(FlowdaptHandler):
    """Store a stage cell's module where this server's executors import it (kernels send their cells)."""

    @web.authenticated
    @authorized
    async def put(self, module: str) -> None:
        source = self.body(StageModuleIn).source
        self.answer(SavedStageModule(module=module, path=await self.services.save_stage_module(module, source)))


class StatusHandler(FlowdaptHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.answer(await self.services.status())


class PluginsHandler(FlowdaptHandler):
    """``plugins``: the plugin packages installed on the server; ``plugins/{name}``: one of them."""

    @web.authenticated
    @authorized
    async def get(self, identifier: str | None = None) -> None:
        plugins = self.services.plugins
        self.answer(await (plugins.list() if identifier is None else plugins.get(identifier)))


class DrainHandler(FlowdaptHandler):
    """``POST``: stop accepting runs and wait for the running ones; ``DELETE``: accept runs again."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        compute = self.services.compute
        options = self.query(DrainOptions)
        drained = await compute.drain(options.timeout)
        self.answer(DrainState(draining=True, drained=drained, running=compute.running, queued=compute.queued))

    @web.authenticated
    @authorized
    async def delete(self) -> None:
        compute = self.services.compute
        compute.resume()
        self.answer(DrainState(draining=False, running=compute.running, queued=compute.queued))


class StatsHandler(FlowdaptHandler):
    """``stats/{view}``: one run-history statistic, aggregated by the database (the dashboard's data)."""

    @web.authenticated
    @authorized
    async def get(self, view: str) -> None:
        spec = VIEWS.get(view)
        if spec is None:
            raise RequestError(f"unknown statistic '{view}' (known: {', '.join(VIEWS)})", 404)
        answer = await self.services.stats.answer(view, self.query(spec.query))
        self.set_header("Content-Type", "application/json")
        self.finish(spec.adapter.dump_json(answer))  # pydantic writes the JSON: thousands of rows at once


class OpenAPIHandler(FlowdaptHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.answer(openapi_document(url_path_join(self.base_url, API)))


_ID = r"(?P<identifier>[^/]+)"
ROUTES: list[tuple[str, type[FlowdaptHandler]]] = [
    (rf"/{API}/?", RootHandler),
    (rf"/{API}/openapi.json", OpenAPIHandler),
    (rf"/{API}/(?P<collection>workflows|configs|triggers)/?", CollectionHandler),
    (rf"/{API}/(?P<collection>workflows|configs|triggers)/{_ID}/?", ResourceHandler),
    (rf"/{API}/workflows/{_ID}/run/?", RunWorkflowHandler),
    (rf"/{API}/workflows/{_ID}/inputs/?", WorkflowInputsHandler),
    (rf"/{API}/notebooks/workflow/?", NotebookWorkflowHandler),
    (rf"/{API}/triggers/{_ID}/(?P<switch>enable|disable)/?", TriggerSwitchHandler),
    (rf"/{API}/triggers/{_ID}/firings/?", TriggerFiringsHandler),
    (rf"/{API}/apply/?", ApplyHandler),
    (rf"/{API}/runs/?", RunsHandler),
    (rf"/{API}/runs/latest/?", LatestRunsHandler),
    (rf"/{API}/runs/{_ID}/?", RunHandler),
    (rf"/{API}/runs/{_ID}/cancel/?", CancelRunHandler),
    (rf"/{API}/runs/{_ID}/stages/?", RunStagesHandler),
    (rf"/{API}/runs/{_ID}/stages/(?P<stage>[^/]+)/notebook/?", OutputNotebookHandler),
    (rf"/{API}/events/?", EventsHandler),
    (rf"/{API}/stage-modules/(?P<module>[^/]+)/?", StageModuleHandler),
    (rf"/{API}/status/?", StatusHandler),
    (rf"/{API}/plugins/?", PluginsHandler),
    (rf"/{API}/plugins/{_ID}/?", PluginsHandler),
    (rf"/{API}/drain/?", DrainHandler),
    (rf"/{API}/stats/(?P<view>[^/]+)/?", StatsHandler),
    (rf"/{API}/runs/{_ID}/rerun/?", RerunHandler),
    (rf"/{API}/runs/{_ID}/resume/?", ResumeHandler),
    (rf"/{API}/runs/{_ID}/logs/?", RunLogsHandler),
    (rf"/{API}/triggers/{_ID}/backfill/?", BackfillHandler),
    (rf"/{API}/cache/?", CacheHandler),
    (rf"/{API}/workflow-versions/(?P<version>[^/]+)/?", WorkflowVersionHandler),
]
