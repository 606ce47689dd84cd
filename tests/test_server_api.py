"""The REST API through a real Jupyter server (pytest-jupyter, base URL ``/a%40b/``), real store and runs."""

from __future__ import annotations

import os
import re

import pytest

from flowdapt.server.handlers import API, ROUTES
from flowdapt.history.stats import VIEWS
from flowdapt.server.openapi import openapi_document
from flowdapt.server.runtime import read_runtime_file
from tests.flowdapt_server import (  # noqa: F401 - fixtures
    error_of,
    eventually,
    jp_flowdapt,
    jp_flowdapt_api,
    jp_server_config,
    trigger_doc,
    workflow_doc,
)

pytest_plugins = ("pytest_jupyter.jupyter_server",)

SLEEP = {"name": "nap", "target": "tests.stages.sleep_for"}


def _template(pattern: str) -> str:
    path = pattern.removeprefix(f"/{API}").rstrip("?").rstrip("/") or "/"
    return re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", path)


def _documented_operations() -> set[tuple[str, str]]:
    return {(path, method) for path, item in openapi_document()["paths"].items() for method in item}


def _routed_operations() -> set[tuple[str, str]]:
    found = set()
    for pattern, handler in ROUTES:
        template = _template(pattern)
        verbs = [verb for verb in ("get", "post", "put", "delete") if verb in handler.__dict__]
        for value in re.findall(r"\(\?P<collection>([^)]*)\)", pattern)[:1] or [None]:
            for concrete in (value.split("|") if value else [None]):
                path = template.replace("{collection}", concrete) if concrete else template
                found.update((path, verb) for verb in verbs)
        if "{view}" in template:  # the statistics route is one handler for one documented path per view
            found = {item for item in found if item[0] != template}
            found.update((template.replace("{view}", view), verb) for view in VIEWS for verb in verbs)
        for verb in verbs:  # the switch route is one handler for two documented paths
            if "{switch}" in template:
                found.discard((template, verb))
                found.update((template.replace("{switch}", s), verb) for s in ("enable", "disable"))
    return found


def test_openapi_document_matches_the_routes():
    assert _documented_operations() == _routed_operations()


async def test_openapi_document_is_served_with_the_base_url(jp_flowdapt_api):
    code, document = await jp_flowdapt_api("GET", "openapi.json")
    assert code == 200 and document["openapi"].startswith("3.")
    assert document["servers"] == [{"url": "/a%40b/flowdapt/api/v1"}]
    assert "Workflow" in document["components"]["schemas"]


@pytest.mark.parametrize("path, method", sorted(_documented_operations()))
async def test_every_route_refuses_requests_without_a_token(jp_flowdapt_api, path, method):
    parts = path.replace("{identifier}", "x").strip("/").split("/")
    code, error = await error_of(jp_flowdapt_api(method.upper(), *[p for p in parts if p],
                                                 headers={"Authorization": ""}))
    assert code == 403 and error["status_code"] == 403 and error["detail"]


async def test_create_get_list_replace_and_delete_a_workflow(jp_flowdapt_api):
    api = jp_flowdapt_api
    code, created = await api("POST", "workflows", body=workflow_doc("hello"))
    assert code == 201 and created["metadata"]["name"] == "hello"
    uid = created["metadata"]["uid"]
    assert (await api("GET", "workflows", uid))[1]["metadata"]["name"] == "hello"
    changed = workflow_doc("hello", {"name": "hi", "target": "tests.stages.greet", "description": "changed"})
    code, replaced = await api("PUT", "workflows", "hello", body=changed)
    assert code == 200 and replaced["spec"]["stages"][0]["name"] == "hi" and replaced["metadata"]["uid"] == uid
    code, listed = await api("GET", "workflows")
    assert [item["metadata"]["name"] for item in listed] == ["hello"]
    assert (await api("DELETE", "workflows", "hello"))[0] == 200
    code, error = await error_of(api("GET", "workflows", "hello"))
    assert code == 404 and error == {"detail": "workflow 'hello' not found", "status_code": 404}


async def test_lists_are_paged(jp_flowdapt_api, jp_fetch):
    for name in "abcde":
        await jp_flowdapt_api("POST", "configs", body={"kind": "config", "metadata": {"name": name},
                                                       "spec": {"data": {"n": name}}})
    response = await jp_fetch("flowdapt", "api", "v1", "configs", params={"limit": "2", "offset": "1"})
    assert response.headers["X-Total-Count"] == "5"
    assert [item["metadata"]["name"] for item in __import__("json").loads(response.body)] == ["b", "c"]
    code, error = await error_of(jp_flowdapt_api("GET", "configs", params={"limit": "0"}))
    assert code == 400 and "limit" in error["detail"]


async def test_creating_a_duplicate_is_a_conflict(jp_flowdapt_api):
    await jp_flowdapt_api("POST", "workflows", body=workflow_doc("hello"))
    code, error = await error_of(jp_flowdapt_api("POST", "workflows", body=workflow_doc("hello")))
    assert code == 409 and error["detail"] == "workflow 'hello' already exists"


@pytest.mark.parametrize("body, status, words", [
    ("{not json", 400, ["invalid JSON"]),
    ([1, 2], 422, ["expected a JSON object"]),
    (workflow_doc("bad", {"name": "a", "target": "tests.stages.add", "depends_on": ["missing"]}), 422,
     ["workflow/bad", "stage 'a'", "missing"]),
    ({"kind": "config", "metadata": {"name": "x"}, "spec": {"data": {}}}, 422, ["kind", "expected kind 'workflow'"]),
    ({"metadata": {"name": "bad name"}, "spec": {"stages": [{"name": "a", "target": "x.y"}]}}, 422, ["metadata.name"]),
])
async def test_bad_resources_are_refused_with_a_message(jp_flowdapt_api, body, status, words):
    code, error = await error_of(jp_flowdapt_api("POST", "workflows", body=body))
    assert code == status and error["status_code"] == status
    assert all(word in error["detail"] for word in words), error["detail"]
    assert (await jp_flowdapt_api("GET", "workflows"))[1] == []


async def test_apply_is_all_or_nothing(jp_flowdapt_api):
    good = workflow_doc("one")
    bad = trigger_doc("t", {"nope": [1]}, "one")
    code, error = await error_of(jp_flowdapt_api("POST", "apply", body=[good, bad]))
    assert code == 422 and "unknown operator 'nope'" in error["detail"]
    assert (await jp_flowdapt_api("GET", "workflows"))[1] == []
    code, outcome = await jp_flowdapt_api("POST", "apply", body=[good, trigger_doc("t", {"var": "x"}, "one")])
    assert [item["outcome"] for item in outcome] == ["created", "created"]


async def test_run_with_wait_answers_the_finished_run(jp_flowdapt_api):
    await jp_flowdapt_api("POST", "workflows", body=workflow_doc("hello"))
    code, run = await jp_flowdapt_api("POST", "workflows", "hello", "run", body={"name": "ada"})
    assert code == 200 and run["state"] == "finished" and run["result"] == "hello ada" and run["source"] == "api"
    code, stages = await jp_flowdapt_api("GET", "runs", run["uid"], "stages")
    assert [(s["stage"], s["state"]) for s in stages] == [("hello", "finished")]


async def test_run_without_wait_then_poll(jp_flowdapt_api):
    api = jp_flowdapt_api
    await api("POST", "workflows", body=workflow_doc("nap", SLEEP))
    code, run = await api("POST", "workflows", "nap", "run", body={"seconds": 0.5}, params={"wait": "false"})
    assert code == 202 and run["state"] in ("pending", "running")

    async def finished():
        state = (await api("GET", "runs", run["name"]))[1]
        return state if state["state"] == "finished" else None

    assert (await eventually(finished))["result"] == 0.5
    code, runs = await api("GET", "runs", params={"workflow": "nap", "state": "finished"})
    assert [item["uid"] for item in runs] == [run["uid"]]


async def test_failed_run_keeps_its_error(jp_flowdapt_api):
    await jp_flowdapt_api("POST", "workflows", body=workflow_doc("boom", {"name": "x", "target": "tests.stages.fail"}))
    code, run = await jp_flowdapt_api("POST", "workflows", "boom", "run", body={})
    assert code == 200 and run["state"] == "failed"
    assert run["error"]["message"] == "stage exploded: bad value 42" and run["error"]["type"] == "ValueError"


@pytest.mark.parametrize("call, status, words", [
    (("POST", "workflows", "ghost", "run"), 404, ["workflow 'ghost' not found"]),
    (("GET", "runs", "ghost"), 404, ["ghost"]),
    (("POST", "runs", "ghost", "cancel"), 404, ["ghost"]),
    (("GET", "triggers", "ghost"), 404, ["trigger_rule 'ghost' not found"]),
    (("GET", "runs"), 400, ["query parameter 'state'"]),
])
async def test_unknown_names_and_bad_queries(jp_flowdapt_api, call, status, words):
    params = {"state": "x", "limit": "-1"} if call == ("GET", "runs") else None
    code, error = await error_of(jp_flowdapt_api(*call, params=params))
    assert code == status and all(word in error["detail"] for word in words), error


async def test_run_input_must_be_an_object(jp_flowdapt_api):
    await jp_flowdapt_api("POST", "workflows", body=workflow_doc("hello"))
    code, error = await error_of(jp_flowdapt_api("POST", "workflows", "hello", "run", body=[1]))
    assert code == 422 and "run input" in error["detail"]
    code, error = await error_of(jp_flowdapt_api("POST", "workflows", "hello", "run", params={"wait": "maybe"}))
    assert code == 400 and "wait" in error["detail"]


async def test_cancel_a_running_run(jp_flowdapt_api):
    api = jp_flowdapt_api
    await api("POST", "workflows", body=workflow_doc("nap", SLEEP))
    _, run = await api("POST", "workflows", "nap", "run", body={"seconds": 30}, params={"wait": "false"})
    code, _ = await api("POST", "runs", run["uid"], "cancel")
    assert code == 202

    async def cancelled():
        return (await api("GET", "runs", run["uid"]))[1]["state"] == "cancelled"

    await eventually(cancelled)
    code, error = await error_of(api("POST", "runs", run["uid"], "cancel"))
    assert code == 409 and "already ended (cancelled)" in error["detail"]
    assert (await api("DELETE", "runs", run["uid"]))[0] == 200
    assert (await error_of(api("GET", "runs", run["uid"])))[0] == 404


@pytest.fixture
def one_run_at_a_time(jp_server_config):
    jp_server_config["FlowdaptApp"] = {"max_concurrent_runs": 1}
    return jp_server_config


async def test_runs_beyond_the_limit_wait_in_the_queue(one_run_at_a_time, jp_flowdapt_api):
    api = jp_flowdapt_api
    await api("POST", "workflows", body=workflow_doc("nap", SLEEP))
    _, first = await api("POST", "workflows", "nap", "run", body={"seconds": 1}, params={"wait": "false"})
    _, second = await api("POST", "workflows", "nap", "run", body={"seconds": 0}, params={"wait": "false"})
    _, third = await api("POST", "workflows", "nap", "run", body={"seconds": 0}, params={"wait": "false"})
    assert second["state"] == "pending" and (await api("GET", "status"))[1]["queued"] == 2
    assert (await api("POST", "runs", third["name"], "cancel"))[1]["state"] == "cancelled"
    code, done = await api("POST", "workflows", "nap", "run", body={"seconds": 0})  # waits its turn
    assert done["state"] == "finished"
    assert (await api("GET", "runs", second["uid"]))[1]["state"] == "finished"
    assert (await api("GET", "runs", first["uid"]))[1]["state"] == "finished"
    assert (await api("GET", "runs", third["uid"]))[1]["state"] == "cancelled"


async def test_drain_refuses_new_runs_until_undrained(jp_flowdapt_api):
    api = jp_flowdapt_api
    await api("POST", "workflows", body=workflow_doc("nap", SLEEP))
    _, run = await api("POST", "workflows", "nap", "run", body={"seconds": 0.3}, params={"wait": "false"})
    code, drained = await api("POST", "drain")
    assert drained["drained"] is True and drained["running"] == 0
    assert (await api("GET", "runs", run["uid"]))[1]["state"] == "finished"
    code, error = await error_of(api("POST", "workflows", "nap", "run", body={"seconds": 0}))
    assert code == 503 and "draining" in error["detail"]
    await api("DELETE", "drain")
    assert (await api("POST", "workflows", "nap", "run", body={"seconds": 0}))[1]["state"] == "finished"


async def test_trigger_crud_enable_disable_and_next_fire_time(jp_flowdapt_api):
    api = jp_flowdapt_api
    await api("POST", "workflows", body=workflow_doc("hello"))
    doc = trigger_doc("nightly", ["0 3 * * *"], "hello", kind="schedule", timezone="Europe/Paris")
    code, created = await api("POST", "triggers", body=doc)
    assert code == 201 and created["status"]["enabled"] is True
    assert created["status"]["next_fire_time"].endswith(("01:00:00+00:00", "02:00:00+00:00"))  # 03:00 Paris
    code, disabled = await api("POST", "triggers", "nightly", "disable")
    assert disabled["spec"]["enabled"] is False and disabled["status"]["next_fire_time"] is None
    code, enabled = await api("POST", "triggers", "nightly", "enable")
    assert enabled["status"]["next_fire_time"] is not None
    doc["spec"]["rule"] = ["*/5 * * * *"]
    assert (await api("PUT", "triggers", "nightly", body=doc))[1]["spec"]["rule"] == ["*/5 * * * *"]
    assert (await api("GET", "triggers", "nightly", "firings"))[1] == []
    assert (await api("DELETE", "triggers", "nightly"))[0] == 200
    assert (await api("GET", "triggers"))[1] == []


@pytest.mark.parametrize("rule, words", [(["61 * * * *"], ["malformed cron"]), ({"bogus": 1}, ["unknown operator"])])
async def test_bad_trigger_rules_are_refused(jp_flowdapt_api, rule, words):
    kind = "schedule" if isinstance(rule, list) else "condition"
    code, error = await error_of(jp_flowdapt_api("POST", "triggers", body=trigger_doc("t", rule, "w", kind=kind)))
    assert code == 422 and "trigger_rule/t" in error["detail"] and all(w in error["detail"] for w in words)


async def test_events_need_a_type(jp_flowdapt_api):
    code, error = await error_of(jp_flowdapt_api("POST", "events", body={"data": 1}))
    assert code == 422 and error["detail"] == "body field 'type': required field is missing"
    code, event = await jp_flowdapt_api("POST", "events", body={"type": "com.example.ping", "data": {"a": 1}})
    assert code == 202 and event["type"] == "com.example.ping" and event["data"] == {"a": 1}


async def test_status_runtime_file_and_kernel_environment(jp_flowdapt_api, jp_flowdapt, flowdapt_app_dir):
    code, status = await jp_flowdapt_api("GET", "status")
    assert status["mode"] == "server" and status["backend"] == "duckdb" and status["running"] == 0
    url = jp_flowdapt.connection_url
    assert url.endswith("/a%40b/")
    assert os.environ["FLOWDAPT_URL"] == url and os.environ["FLOWDAPT_TOKEN"] == jp_flowdapt.identity_provider.token
    assert read_runtime_file(flowdapt_app_dir)["url"] == url


async def test_a_kernel_sends_a_stage_module_the_servers_runs_import(jp_flowdapt_api, flowdapt_app_dir):
    from flowdapt.notebook.cell_stage import stage_module

    source = "def triple(x: int = 2):\n    return 3 * x\n"
    module, target, _ = stage_module("cells", "triple", source)
    code, saved = await jp_flowdapt_api("PUT", "stage-modules", module, body={"source": source})
    assert code == 200 and (flowdapt_app_dir / "stages" / f"{module}.py").read_text().endswith(source)
    await jp_flowdapt_api("POST", "workflows", body=workflow_doc("cells", {"name": "triple", "target": target}))
    code, run = await jp_flowdapt_api("POST", "workflows", "cells", "run", body={"x": 5})
    assert (run["state"], run["result"]) == ("finished", 15)
    for name, body, words in [("os.path", {"source": source}, "is not a stage module name"),
                              (module, {"source": "x = 1"}, "defines no function"),
                              (module, {}, "body field 'source'")]:
        code, error = await error_of(jp_flowdapt_api("PUT", "stage-modules", name, body=body))
        assert code == 422 and words in error["detail"], (name, error)


async def test_a_run_another_process_runs_is_recorded_when_reported(jp_flowdapt_api):
    from datetime import datetime, timezone

    from flowdapt.resources.models import StageRun, WorkflowRun

    now = datetime.now(timezone.utc)
    run = WorkflowRun(workflow="elsewhere", source="notebook", state="running", started_at=now, stages=[
        StageRun(name="hello", state="running", attempts=1, started_at=now), StageRun(name="later")])
    code, recorded = await jp_flowdapt_api("PUT", "runs", run.uid, body=run.to_document())
    assert code == 200 and (await jp_flowdapt_api("GET", "runs", run.uid))[1]["state"] == "running"
    run.state, run.finished_at, run.result = "finished", now, "hello kernel"
    run.stages[0].state, run.stages[0].finished_at = "finished", now
    run.stages[1].state, run.stages[1].attempts = "finished", 1
    code, recorded = await jp_flowdapt_api("PUT", "runs", run.uid, body=run.to_document())
    assert code == 200 and recorded["uid"] == run.uid
    code, stored = await jp_flowdapt_api("GET", "runs", run.uid)
    assert (stored["state"], stored["result"], [s["state"] for s in stored["stages"]]) == ("finished", "hello kernel",
                                                                                           ["finished", "finished"])
    code, error = await error_of(jp_flowdapt_api("PUT", "runs", "0" * 32, body=run.to_document()))
    assert code == 422 and "is not the one in the path" in error["detail"]
    await jp_flowdapt_api("POST", "workflows", body=workflow_doc("nap", SLEEP))
    code, own = await jp_flowdapt_api("POST", "workflows", "nap", "run", body={"seconds": 2}, params={"wait": "false"})
    code, error = await error_of(jp_flowdapt_api("PUT", "runs", own["uid"], body=own))
    assert code == 409 and "is run by this server" in error["detail"]
    await jp_flowdapt_api("POST", "runs", own["uid"], "cancel")


@pytest.mark.parametrize("path, params, words", [
    (("runs",), {"since": "0001-01-01T00:00:00"}, "query parameter 'since'"),
    (("runs",), {"until": "9999-12-31T23:59:59.999999"}, "query parameter 'until'"),
    (("runs",), {"since": "9999-12-31T23:59:59+00:00"}, "query parameter 'since'"),
    (("runs",), {"offset": str(2 ** 63)}, "query parameter 'offset'"),
    (("triggers", "t", "firings"), {"since": "0001-01-01T00:00:00"}, "query parameter 'since'"),
])
async def test_out_of_range_queries_are_400_not_500(jp_flowdapt_api, path, params, words):
    await jp_flowdapt_api("POST", "triggers", body=trigger_doc("t", {"eq": [1, 1]}, "w"))
    code, error = await error_of(jp_flowdapt_api("GET", *path, params=params))
    assert code == 400 and words in error["detail"], error


async def test_a_token_in_the_url_is_accepted_on_routes_with_query_models(jp_flowdapt_api, jp_flowdapt, jp_base_url,
                                                                        jp_http_port):
    import json

    from tornado.httpclient import AsyncHTTPClient

    token = jp_flowdapt.identity_provider.token  # in the URL only, Jupyter's documented way; no header
    url = f"http://localhost:{jp_http_port}{jp_base_url}flowdapt/api/v1/runs?limit=5&token={token}"
    response = await AsyncHTTPClient().fetch(url)
    assert response.code == 200 and json.loads(response.body) == []


@pytest.mark.parametrize("body, status, words", [
    ("[" * 5000 + "]" * 5000, 400, "body: nested deeper than"),
    ('{"type": "x", "data": NaN}', 400, "body: invalid JSON: NaN is not allowed"),
    ('{"type": "x", "data": [Infinity]}', 400, "body: invalid JSON: Infinity is not allowed"),
])
async def test_bodies_too_deep_or_with_non_json_numbers_are_400(jp_flowdapt_api, body, status, words):
    code, error = await error_of(jp_flowdapt_api("POST", "events", body=body))
    assert code == status and words in error["detail"], error


async def test_conditions_are_bounded_in_depth_and_size(jp_flowdapt_api):
    deep: dict = {"eq": [1, 1]}
    for _ in range(40):  # within what a body may nest, beyond what a condition may
        deep = {"not": deep}
    code, error = await error_of(jp_flowdapt_api("POST", "triggers", body=trigger_doc("deep", deep, "w")))
    assert code == 422 and "nested deeper than" in error["detail"], error
    wide = {"or": [{"eq": [{"var": "type"}, str(index)]} for index in range(3000)]}
    code, error = await error_of(jp_flowdapt_api("POST", "triggers", body=trigger_doc("wide", wide, "w")))
    assert code == 422 and "more than" in error["detail"], error


async def test_engine_events_cannot_be_forged(jp_flowdapt_api):
    await jp_flowdapt_api("POST", "workflows", body=workflow_doc("nap", SLEEP))
    code, run = await jp_flowdapt_api("POST", "workflows", "nap", "run", body={"seconds": 2}, params={"wait": "false"})
    forged = {"type": "com.event.workflow.workflow_finished", "data": {"uid": run["uid"], "state": "finished"}}
    code, error = await error_of(jp_flowdapt_api("POST", "events", body=forged))
    assert code == 422 and "is an engine event type" in error["detail"]
    code, error = await error_of(jp_flowdapt_api("POST", "events", body={"type": "com.event.trigger.trigger_fired"}))
    assert code == 422
    assert (await jp_flowdapt_api("GET", "status"))[1]["running"] == 1  # the run is still counted as running
    await jp_flowdapt_api("POST", "runs", run["uid"], "cancel")
