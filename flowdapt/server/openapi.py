"""The OpenAPI 3 document of the REST API (served at ``.../openapi.json``).

Operations are written here as data next to the schemas pydantic generates for the models on the
wire; ``tests/test_server_api.py`` checks that every route and verb of
:data:`flowdapt.server.handlers.ROUTES` is documented here and nothing else is.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, get_args, get_origin

from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from flowdapt import __version__
from flowdapt.compute.inputs import WorkflowInputs
from flowdapt.history.models import LogLine, StageAttempt, TriggerFiring
from flowdapt.history.stats import VIEWS
from flowdapt.plugins import Plugin
from flowdapt.resources.models import Config, TriggerRule, Workflow, WorkflowRun

COLLECTIONS = {"workflows": "Workflow", "configs": "Config", "triggers": "TriggerRule"}
_REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": _REF.format(model=name)}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _param(name: str, kind: str = "string", where: str = "query", description: str = "") -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": {"type": kind},
            "description": description}


ID = _param("identifier", where="path", description="name or uid")
STAGE = _param("stage", where="path", description="stage name")
YAML = {"application/yaml": {"schema": {"type": "string", "description": "resource file text, as flowctl apply -p reads"}}}
PAGE = [_param("limit", "integer", description="page size"), _param("offset", "integer", description="items to skip")]


def _op(operation_id: str, summary: str, *, ok: int | tuple[int, ...] = 200, response: dict[str, Any] | None = None,
        params: list[dict[str, Any]] = (), body: dict[str, Any] | None = None,  # type: ignore[assignment]
        errors: tuple[int, ...] = ()) -> dict[str, Any]:
    responses: dict[str, Any] = {str(status): {"description": "OK", **(_json(response) if response else {})}
                                 for status in (ok if isinstance(ok, tuple) else (ok,))}
    for status in (403, *errors):
        responses[str(status)] = {"description": "Error", **_json(_ref("Error"))}
    operation = {"operationId": operation_id, "summary": summary, "parameters": list(params), "responses": responses}
    if body is not None:
        operation["requestBody"] = {"required": True, **_json(body)}
    return operation


def _paths() -> dict[str, dict[str, Any]]:
    paths: dict[str, dict[str, Any]] = {
        "/": {"get": _op("root", "API name and version", response={"type": "object"})},
        "/openapi.json": {"get": _op("openapi", "This document", response={"type": "object"})},
        "/apply": {"post": _op("apply_resources", "Create or update resources of any kinds, all or nothing; "
                                                  "the body is a JSON list or a resource file's YAML text",
                               body={"type": "array", "items": {"type": "object"}},
                               response={"type": "array", "items": {"type": "object"}}, errors=(400, 422, 503))},
        "/workflows/{identifier}/inputs": {"get": _op(
            "get_workflow_inputs", "The run input a workflow takes: its root stages' parameters", params=[ID],
            response=_ref("WorkflowInputs"), errors=(404, 422))},
        "/notebooks/workflow": {"post": _op(
            "create_notebook_workflow", "Create or update the one-stage workflow that runs a notebook",
            body=_ref("NotebookIn"), response={"type": "object", "required": ["workflow", "inputs"], "properties": {
                "workflow": _ref("Workflow"), "inputs": _ref("WorkflowInputs")}}, errors=(400, 422))},
        "/runs/latest": {"get": _op("list_latest_runs", "The newest run of each workflow",
                                    response={"type": "array", "items": _ref("WorkflowRun")})},
        "/runs/{identifier}/stages/{stage}/notebook": {"get": _op(
            "get_output_notebook", "The output notebook of a notebook stage of a run (nbformat JSON)",
            params=[ID, STAGE], response={"type": "object"}, errors=(404,))},
        "/workflows/{identifier}/run": {"post": _op(
            "run_workflow", "Run a workflow; the body is the input. wait=true answers when it has ended",
            ok=(200, 202), params=[ID, _param("wait", "boolean"), _param("namespace"), _param("executor"),
                                    _param("source", description="recorded on the run: api (default), manual or notebook")],
            body={"type": "object"}, response=_ref("WorkflowRun"), errors=(400, 404, 422, 503))},
        "/triggers/{identifier}/enable": {"post": _op("enable_trigger", "Enable a trigger", params=[ID],
                                                      response=_ref("TriggerRule"), errors=(404,))},
        "/triggers/{identifier}/disable": {"post": _op("disable_trigger", "Disable a trigger", params=[ID],
                                                       response=_ref("TriggerRule"), errors=(404,))},
        "/triggers/{identifier}/firings": {"get": _op(
            "list_trigger_firings", "Firings of a trigger with their outcome, newest first",
            params=[ID, *PAGE, _param("since")],
            response={"type": "array", "items": _ref("TriggerFiring")}, errors=(400, 404))},
        "/runs": {"get": _op("list_runs", "Runs, newest first", params=[
            _param("workflow"), _param("state"), _param("source"), _param("since"), _param("until"), *PAGE,
            _param("stages", "boolean", description="include each run's stages (default: false, stages empty)")],
            response={"type": "array", "items": _ref("WorkflowRun")}, errors=(400,))},
        "/runs/{identifier}": {
            "get": _op("get_run", "One run with its stages", params=[ID], response=_ref("WorkflowRun"),
                       errors=(404,)),
            "put": _op("record_run", "Record a run that another process runs (a kernel under this server); "
                                     "the identifier is its uid", params=[ID], body=_ref("WorkflowRun"),
                       response=_ref("WorkflowRun"), errors=(409, 422)),
            "delete": _op("delete_run", "Delete an ended run", params=[ID], response=_ref("WorkflowRun"),
                          errors=(404, 409)),
        },
        "/runs/{identifier}/cancel": {"post": _op("cancel_run", "Cancel a queued or running run", ok=202,
                                                  params=[ID], response=_ref("WorkflowRun"), errors=(404, 409))},
        "/runs/{identifier}/stages": {"get": _op("list_run_stages", "Every stage attempt of a run", params=[ID],
                                                 response={"type": "array", "items": _ref("StageAttempt")},
                                                 errors=(404,))},
        "/events": {"post": _op("publish_event", "Publish an event (condition triggers evaluate it)", ok=202,
                                body=_ref("EventIn"), response={"type": "object"}, errors=(400, 422))},
        "/stage-modules/{module}": {"put": _op(
            "save_stage_module", "Store a %%flowdapt stage cell's module where this server's executors import it",
            params=[_param("module", where="path", description="workflow__stage_<12 hex digits of the source hash>")],
            body=_ref("StageModuleIn"), response={"type": "object"}, errors=(400, 422))},
        "/status": {"get": _op("status", "Services, executor, database and counts", response={"type": "object"})},
        "/plugins": {"get": _op("list_plugins", "Plugin packages installed on the server and what each ships",
                                response={"type": "array", "items": _ref("Plugin")})},
        "/plugins/{identifier}": {"get": _op("get_plugin", "One installed plugin by name", params=[ID],
                                             response=_ref("Plugin"), errors=(404,))},
        "/drain": {
            "post": _op("drain", "Stop accepting runs and wait for the running ones", params=[
                _param("timeout", "number", description="seconds to wait at most")], response={"type": "object"}),
            "delete": _op("undrain", "Accept runs again", response={"type": "object"}),
        },
    }
    paths.update(_operations_paths())
    for collection, model in COLLECTIONS.items():
        one, many = collection.rstrip("s"), collection
        paths[f"/{collection}"] = {
            "get": _op(f"list_{many}", f"List {many} (paged; X-Total-Count has the total)", params=PAGE,
                       response={"type": "array", "items": _ref(model)}, errors=(400,)),
            "post": _op(f"create_{one}", f"Create a {one}", ok=201, body=_ref(model), response=_ref(model),
                        errors=(400, 409, 422)),
        }
        paths[f"/{collection}/{{identifier}}"] = {
            "get": _op(f"get_{one}", f"One {one} by name or uid (YAML with Accept: application/yaml)", params=[ID],
                       response=_ref(model), errors=(404,)),
            "put": _op(f"replace_{one}", f"Replace a {one}'s spec and annotations", params=[ID], body=_ref(model),
                       response=_ref(model), errors=(400, 404, 422)),
            "delete": _op(f"delete_{one}", f"Delete a {one}", params=[ID], response=_ref(model), errors=(404,)),
        }
    for view, spec in VIEWS.items():
        paths[f"/stats/{view}"] = {"get": _op(f"stats_{view}", spec.summary, params=_query_params(spec.query),
                                              response=_answer_schema(spec.answer), errors=(400,))}
    paths["/apply"]["post"]["requestBody"]["content"].update(YAML)
    for collection in COLLECTIONS:
        paths[f"/{collection}/{{identifier}}"]["get"]["responses"]["200"]["content"].update(YAML)
    return paths


def _operations_paths() -> dict[str, dict[str, Any]]:
    """Operating runs: logs, runs again, resumed runs, backfills, the result cache."""
    from flowdapt.server.handlers import CacheQuery, LogsQuery, RunAgainOptions

    again = [ID, *_query_params(RunAgainOptions)]
    return {
        "/runs/{identifier}/rerun": {"post": _op(
            "rerun_run", "Run a run's workflow version again with its input; the new run records rerun_of",
            ok=(200, 202), params=again, response=_ref("WorkflowRun"), errors=(400, 404, 409, 503))},
        "/runs/{identifier}/resume": {"post": _op(
            "resume_run", "Resume a failed or cancelled run: stages it finished are reused where their outputs "
                          "were kept, the rest run again; the new run records resumed_from",
            ok=(200, 202), params=again, response=_ref("WorkflowRun"), errors=(400, 404, 409, 503))},
        "/runs/{identifier}/logs": {
            "get": _op("get_run_logs", "What a run's stages printed and logged, numbered; follow=true streams the "
                                       "lines as NDJSON (application/x-ndjson) until the run has ended",
                       params=[ID, *_query_params(LogsQuery)], response={"type": "array", "items": _ref("LogLine")},
                       errors=(400, 404)),
            "post": _op("record_run_logs", "Record lines of a run that another process runs (a kernel under this "
                                           "server); the identifier is its uid", ok=202, params=[ID],
                        body={"type": "array", "items": _ref("LogLine")}, response={"type": "object"},
                        errors=(400, 409, 422)),
        },
        "/triggers/{identifier}/backfill": {"post": _op(
            "backfill_trigger", "Fire a schedule trigger's action once for each of its due times in a range that "
                                "has not fired yet (runs tagged with their logical time); wait=false answers at once",
            ok=(200, 202), params=[ID], body=_ref("BackfillIn"), response={"type": "object"},
            errors=(400, 404, 409, 422))},
        "/cache": {"delete": _op("clear_cache", "Delete result-cache entries (of a workflow, one of its stages, or "
                                                "all); answers {deleted}", params=_query_params(CacheQuery),
                                 response={"type": "object"}, errors=(400,))},
        "/workflow-versions/{version}": {"put": _op(
            "record_workflow_version", "Record the document of a workflow version a reported run ran",
            ok=201, params=[_param("version", where="path", description="16 hex digits (runs.workflow_version)")],
            body=_ref("Workflow"), response={"type": "object"}, errors=(400, 422))},
    }


def _query_params(model: Any) -> list[dict[str, Any]]:
    """The query parameters of a query model, with their JSON types and enumerations."""
    params = []
    for name, schema in model.model_json_schema()["properties"].items():
        choices = [option for option in schema.get("anyOf", [schema]) if option.get("type") != "null"]
        param = _param(name, choices[0].get("type", "string") if len(choices) == 1 else "string",
                       description=schema.get("description", ""))
        if "enum" in choices[0]:
            param["schema"]["enum"] = choices[0]["enum"]
        if choices[0].get("format") == "date-time":
            param["schema"]["format"] = "date-time"
        params.append(param)
    return params


def _answer_schema(answer: Any) -> dict[str, Any]:
    if get_origin(answer) is list:
        return {"type": "array", "items": _ref(get_args(answer)[0].__name__)}
    return _ref(answer.__name__)


class _WireSchema(GenerateJsonSchema):
    """Schemas where every field of an answer is required: the server writes defaults too (``model_dump``)."""

    def field_is_required(self, field: Any, total: bool) -> bool:
        if self.mode == "serialization":
            return not field.get("serialization_exclude")
        return super().field_is_required(field, total)


@lru_cache(maxsize=1)
def _schemas() -> dict[str, Any]:
    from flowdapt.server.handlers import BackfillIn, EventIn, NotebookIn, StageModuleIn

    models = [(Workflow, "validation"), (Config, "validation"), (TriggerRule, "validation"),
              (WorkflowRun, "serialization"), (StageAttempt, "serialization"), (TriggerFiring, "serialization"),
              (EventIn, "validation"), (StageModuleIn, "validation"), (NotebookIn, "validation"),
              (WorkflowInputs, "serialization"), (LogLine, "serialization"), (BackfillIn, "validation"),
              (Plugin, "serialization")]
    answers = [get_args(spec.answer)[0] if get_origin(spec.answer) is list else spec.answer for spec in VIEWS.values()]
    models += [(model, "serialization") for model in dict.fromkeys(answers)]
    # Field names, not aliases: the server writes names and accepts both (``populate_by_name``).
    _, top = models_json_schema(models, by_alias=False, ref_template=_REF, schema_generator=_WireSchema)
    schemas = dict(top.get("$defs", {}))
    schemas["Error"] = {"type": "object", "required": ["detail", "status_code"],
                        "properties": {"detail": {"type": "string"}, "status_code": {"type": "integer"}}}
    return schemas


def openapi_document(api_root: str = "/flowdapt/api/v1") -> dict[str, Any]:
    """The OpenAPI 3.0 document; ``api_root`` is the API's URL path on this server (with its base URL)."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "flowdapt", "version": __version__,
                 "description": "Workflows, configs, triggers, runs and events of a flowdapt server. "
                                "Authenticate as for Jupyter: 'Authorization: token <token>'."},
        "servers": [{"url": api_root}],
        "components": {"schemas": _schemas(),
                       "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "Authorization"}}},
        "security": [{"token": []}],
        "paths": _paths(),
    }
