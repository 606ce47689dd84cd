"""The server side of the JupyterLab extension: run-form inputs, notebook workflows, output notebooks,
the latest run per workflow, resources as YAML, executor dashboards and live events."""

from __future__ import annotations

import asyncio

import nbformat
import pytest
import yaml

from flowdapt.compute.executors import close_shared_executors
from flowdapt.server.dashboards import dashboard_link
from flowdapt.server.live import SCHEMA_ID
from tests.flowdapt_server import error_of, eventually, jp_flowdapt, jp_flowdapt_api, workflow_doc  # noqa: F401
from flowdapt.client import Client, ServerError
from tests.test_notebook_stage import write_notebook
from tests.test_serve import TOKEN, Server, flowdapt_env  # noqa: F401 - fixture

pytest_plugins = ("pytest_jupyter.jupyter_server",)

GREET = {"name": "greet", "target": "tests.stages.greet"}


@pytest.fixture
def jp_server_config():
    """flowdapt with jupyter-server-proxy (dashboard links) and a fast heartbeat."""
    return {"ServerApp": {"jpserver_extensions": {"flowdapt": True, "jupyter_server_proxy": True}},
            "FlowdaptApp": {"live_heartbeat_seconds": 0.2}}


@pytest.fixture
def live_events(jp_flowdapt):
    """The flowdapt events a browser subscribed to the server's event bus would get, in order."""
    received: list[dict] = []

    async def listener(logger, schema_id, data):
        received.append(data)

    jp_flowdapt.event_logger.add_listener(schema_id=SCHEMA_ID, listener=listener)
    yield received
    jp_flowdapt.event_logger.remove_listener(listener=listener)


async def test_inputs_are_the_root_stages_parameters(jp_flowdapt_api):
    workflow = workflow_doc("form", GREET,
                            {"name": "scaled", "target": "tests.stages.item_with_input", "type": "parameterized",
                             "options": {"map_on": "items"}},
                            {"name": "after", "target": "tests.stages.first", "depends_on": ["greet"]})
    await jp_flowdapt_api("POST", "workflows", body=workflow)
    code, inputs = await jp_flowdapt_api("GET", "workflows", "form", "inputs")
    assert code == 200 and inputs["workflow"] == "form" and inputs["open"] is False
    fields = {field["name"]: field for field in inputs["fields"]}
    assert list(fields) == ["name", "greeting", "items", "scale"]  # not the mapped item, nor 'after''s values
    assert (fields["name"]["type"], fields["name"]["required"]) == ("string", True)
    assert (fields["greeting"]["default"], fields["greeting"]["required"]) == ("hello", False)
    assert (fields["items"]["type"], fields["items"]["stages"]) == ("array", ["scaled"])
    assert (fields["scale"]["type"], fields["scale"]["default"]) == ("integer", 1)


async def test_a_stage_taking_any_keyword_makes_the_input_open(jp_flowdapt_api):
    await jp_flowdapt_api("POST", "workflows", body=workflow_doc("any", {"name": "echo",
                                                                         "target": "tests.stages.kwargs_echo"}))
    code, inputs = await jp_flowdapt_api("GET", "workflows", "any", "inputs")
    assert (code, inputs["fields"], inputs["open"]) == (200, [], True)
    code, error = await error_of(jp_flowdapt_api("GET", "workflows", "missing", "inputs"))
    assert (code, error["detail"]) == (404, "workflow 'missing' not found")


async def test_notebook_workflow_is_created_with_the_parameters_cell(jp_flowdapt_api, jp_root_dir):
    write_notebook(jp_root_dir / "reports" / "city.ipynb", "import flowdapt.notebook as fn\nfn.set_result(n * 2)",
                   parameters="n = 1  # how many\ntitle: str = 'Paris'\nrate = 0.5")
    code, answer = await jp_flowdapt_api("POST", "notebooks", "workflow", body={"notebook": "reports/city.ipynb"})
    assert code == 200 and answer["workflow"]["metadata"]["name"] == "notebook-city"
    assert answer["workflow"]["spec"]["stages"][0]["target"].endswith("reports/city.ipynb")
    fields = {field["name"]: (field["type"], field["default"], field["description"])
              for field in answer["inputs"]["fields"]}
    assert fields == {"n": ("integer", 1, "how many"), "title": ("string", "Paris", ""), "rate": ("number", 0.5, "")}
    assert (await jp_flowdapt_api("GET", "workflows", "notebook-city"))[0] == 200


@pytest.mark.parametrize("notebook, words", [("../outside.ipynb", "workbench root"),
                                             ("nowhere.ipynb", "not found"), ("data.csv", "not a notebook")])
async def test_bad_notebook_paths_are_refused_and_nothing_is_stored(jp_flowdapt_api, notebook, words):
    code, error = await error_of(jp_flowdapt_api("POST", "notebooks", "workflow", body={"notebook": notebook}))
    assert code == 422 and words in error["detail"] and "\n" not in error["detail"]
    assert (await jp_flowdapt_api("GET", "workflows"))[1] == []


async def test_output_notebook_of_a_notebook_stage(jp_flowdapt_api, jp_root_dir):
    write_notebook(jp_root_dir / "double.ipynb", "import flowdapt.notebook as fn\nfn.set_result(n * 2)",
                   parameters="n = 1")
    await jp_flowdapt_api("POST", "notebooks", "workflow", body={"notebook": "double.ipynb"})
    _, run = await jp_flowdapt_api("POST", "workflows", "notebook-double", "run", body={"n": 21})
    assert (run["state"], run["result"]) == ("finished", 42)
    code, notebook = await jp_flowdapt_api("GET", "runs", run["name"], "stages", "double", "notebook")
    assert code == 200 and nbformat.validate(nbformat.from_dict(notebook)) is None
    injected = [cell for cell in notebook["cells"] if "injected-parameters" in cell["metadata"].get("tags", [])]
    assert "n = 21\n" in injected[0]["source"]  # source as lines, as saved
    code, error = await error_of(jp_flowdapt_api("GET", "runs", run["uid"], "stages", "nope", "notebook"))
    assert (code, error["detail"]) == (404, f"stage '{run['name']}/nope' not found")
    await jp_flowdapt_api("POST", "workflows", body=workflow_doc("plain", GREET))
    _, plain = await jp_flowdapt_api("POST", "workflows", "plain", "run", body={"name": "ada"})
    code, error = await error_of(jp_flowdapt_api("GET", "runs", plain["uid"], "stages", "greet", "notebook"))
    assert (code, error["detail"]) == (404, f"output notebook '{plain['name']}/greet' not found")


async def test_latest_run_of_each_workflow(jp_flowdapt_api):
    for name in ("alpha", "beta"):
        await jp_flowdapt_api("POST", "workflows", body=workflow_doc(name, GREET))
    await jp_flowdapt_api("POST", "workflows", "alpha", "run", body={"name": "a"})
    _, newest = await jp_flowdapt_api("POST", "workflows", "alpha", "run", body={})  # fails: no name
    _, beta = await jp_flowdapt_api("POST", "workflows", "beta", "run", body={"name": "b"})
    code, latest = await jp_flowdapt_api("GET", "runs", "latest")
    assert code == 200
    assert [(run["workflow"], run["uid"], run["state"]) for run in latest] == [
        ("alpha", newest["uid"], "failed"), ("beta", beta["uid"], "finished")]


async def test_resources_as_yaml_both_ways(jp_flowdapt_api, jp_fetch):
    text = ("kind: workflow\nmetadata: {name: from-yaml}\nspec:\n  stages:\n"
            "  - {name: greet, target: tests.stages.greet}\n")
    response = await jp_fetch("flowdapt", "api", "v1", "apply", method="POST", body=text,
                              headers={"Content-Type": "application/yaml"})
    assert response.code == 200
    response = await jp_fetch("flowdapt", "api", "v1", "workflows", "from-yaml",
                              headers={"Accept": "application/yaml"})
    assert response.headers["Content-Type"].startswith("application/yaml")
    document = yaml.safe_load(response.body)
    assert document["metadata"]["name"] == "from-yaml" and document["spec"]["stages"][0]["target"] == "tests.stages.greet"
    assert "status" not in document


async def test_a_bad_yaml_file_is_refused_whole_with_one_line(jp_flowdapt_api, jp_fetch):
    text = ("kind: workflow\nmetadata: {name: good}\nspec: {stages: [{name: a, target: tests.stages.greet}]}\n---\n"
            "kind: workflow\nmetadata: {name: bad}\n"
            "spec: {stages: [{name: a, target: tests.stages.greet, depends_on: [ghost]}]}\n")
    code, error = await error_of(jp_fetch("flowdapt", "api", "v1", "apply", method="POST", body=text,
                                          headers={"Content-Type": "text/yaml"}))
    assert code == 422 and "bad" in error["detail"] and "ghost" in error["detail"] and "\n" not in error["detail"]
    assert (await jp_flowdapt_api("GET", "workflows"))[1] == []
    code, error = await error_of(jp_fetch("flowdapt", "api", "v1", "apply", method="POST", body="kind: [",
                                          headers={"Content-Type": "application/yaml"}))
    assert code == 422 and "invalid YAML" in error["detail"]


def test_dashboard_links_go_through_the_proxy_under_the_base_url():
    assert dashboard_link("dask", "http://127.0.0.1:8787/status", proxy=True) == {
        "kind": "dask", "url": "proxy/8787/status", "proxied": True, "target": "http://127.0.0.1:8787/status"}
    assert dashboard_link("ray", "127.0.0.1:8265", proxy=True)["url"] == "proxy/8265/"
    assert dashboard_link("dask", "http://127.0.0.1:8787/status", proxy=False)["proxied"] is False
    remote = dashboard_link("dask", "http://scheduler.example:8787/status", proxy=True)
    assert (remote["url"], remote["proxied"]) == ("http://scheduler.example:8787/status", False)


async def test_status_shows_the_dask_dashboard_of_a_run_on_dask(jp_flowdapt_api):
    await jp_flowdapt_api("POST", "workflows", body=workflow_doc("on-dask", GREET))
    try:
        _, run = await jp_flowdapt_api("POST", "workflows", "on-dask", "run", body={"name": "d"},
                                       params={"executor": "dask"})
        assert (run["state"], run["executor"]) == ("finished", "dask")
        _, status = await jp_flowdapt_api("GET", "status")
        [dask] = [board for board in status["dashboards"] if board["kind"] == "dask"]
        assert dask["proxied"] and dask["url"].startswith("proxy/") and dask["url"].endswith("/status")
    finally:
        await asyncio.to_thread(close_shared_executors)


async def test_live_events_carry_runs_stages_and_progress_in_sequence(jp_flowdapt_api, live_events):
    workflow = workflow_doc("live", {"name": "numbers", "target": "tests.stages.numbers"},
                            {"name": "square", "target": "tests.stages.square", "type": "parameterized",
                             "depends_on": ["numbers"]})
    await jp_flowdapt_api("POST", "workflows", body=workflow)
    _, run = await jp_flowdapt_api("POST", "workflows", "live", "run", body={"n": 40})
    await eventually(lambda: asyncio.sleep(0, [e for e in live_events if e["kind"] == "run"
                                               and e["run"]["state"] == "finished"]))
    events = [event for event in live_events if event["kind"] != "heartbeat"]
    assert [event["seq"] for event in events] == list(range(events[0]["seq"], events[0]["seq"] + len(events)))
    assert len({event["boot"] for event in live_events}) == 1
    assert events[0] == {**events[0], "kind": "resource", "resource": {"kind": "workflow"}}
    mine = [event for event in events if event.get("run", {}).get("uid") == run["uid"]]
    assert [(e["kind"], e["run"]["state"]) for e in (mine[0], mine[-1])] == [("run", "running"), ("run", "finished")]
    assert "result" not in mine[-1]["run"] and mine[-1]["run"]["error"] is None
    stages = [(e["stage"]["name"], e["stage"]["state"]) for e in mine if e["kind"] == "stage"]
    assert stages == [("numbers", "running"), ("numbers", "finished"), ("square", "running"), ("square", "finished")]
    progress = [e["stage"] for e in mine if e["kind"] == "progress"]
    assert progress and progress[-1]["items_total"] == 40 and len(progress) < 40  # throttled, the last one kept


async def test_heartbeats_repeat_the_last_sequence_number(jp_flowdapt_api, live_events):
    await jp_flowdapt_api("POST", "workflows", body=workflow_doc("beat", GREET))
    beats = await eventually(lambda: asyncio.sleep(0, [e for e in live_events if e["kind"] == "heartbeat"]))
    last = max(event["seq"] for event in live_events if event["kind"] != "heartbeat")
    assert beats[-1]["seq"] == last and isinstance(beats[-1]["time"], float)


def test_client_reads_output_notebooks_and_inputs(flowdapt_env, tmp_path):
    server = Server(flowdapt_env, tmp_path / "serve.log")
    try:
        check_client(server.url)
    finally:
        server.stop(15)


def check_client(url: str) -> None:
    with Client(url, TOKEN) as client:
        client.apply([workflow_doc("hello", GREET)])
        assert [field["name"] for field in client.workflow_inputs("hello")["fields"]] == ["name", "greeting"]
        run = client.run("hello", {"name": "ada"})
        with pytest.raises(ServerError) as caught:
            client.output_notebook(run.uid, "greet")
        assert caught.value.status_code == 404


async def test_lab_cache_busting_parameter_is_ignored(jp_flowdapt_api):
    """JupyterLab's ServerConnection adds ``?<timestamp>`` to every GET; other unknown parameters stay errors."""
    code, runs = await jp_flowdapt_api("GET", "runs", params={"1796523195454": ""})
    assert (code, runs) == (200, [])
    code, error = await error_of(jp_flowdapt_api("GET", "runs", params={"limt": "5"}))
    assert (code, error["detail"]) == (400, "query parameter 'limt': unknown field")


async def test_a_renamed_copy_of_a_resource_is_a_new_resource(jp_flowdapt_api, jp_fetch):
    """Saving a resource's YAML under another name (its uid copied along) creates a resource of its own."""
    _, original = await jp_flowdapt_api("POST", "workflows", body=workflow_doc("original", GREET))
    response = await jp_fetch("flowdapt", "api", "v1", "workflows", "original", headers={"Accept": "application/yaml"})
    copy = response.body.decode().replace("name: original", "name: copy")
    _, [applied] = await jp_flowdapt_api("POST", "apply", body=copy, headers={"Content-Type": "application/yaml"})
    assert applied["outcome"] == "created" and applied["resource"]["metadata"]["uid"] != original["metadata"]["uid"]
    names = sorted(item["metadata"]["name"] for item in (await jp_flowdapt_api("GET", "workflows"))[1])
    assert names == ["copy", "original"]
