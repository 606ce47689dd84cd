"""Plugin packages, with a real one: ``tests/plugins/flowdapt-example-plugin``, installed into the test
environment by ``make install`` (editable). It ships stage functions, resource files, a stage type
(``documented``), an executor (``example-serial``) and a trigger action (``example_record``), each
through its entry-point group. A broken plugin is a real installed distribution too (a ``.dist-info``
in a folder on the import path of the command under test)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml

from tests.flowdapt_server import (  # noqa: F401 - fixtures
    error_of,
    eventually,
    jp_flowdapt,
    jp_flowdapt_api,
    jp_server_config,
)
from tests.test_cli import flowdapt_cli  # noqa: F401 - fixture

pytest_plugins = ("pytest_jupyter.jupyter_server",)
PLUGIN_SOURCE = Path(__file__).parent / "plugins" / "flowdapt-example-plugin" / "src" / "flowdapt_example_plugin"
FORECAST = {"lisbon": 18, "oslo": 12, "quito": 15}


def test_flowdapt_plugins_list_shows_the_plugin_and_what_it_ships(flowdapt_cli):
    table = flowdapt_cli("flowdapt", "plugins", "list").stdout
    assert "example" in table and "flowdapt-example-plugin" in table and "0.3.1" in table
    assert "2 workflow" in table and "executors: example-serial" in table
    [plugin] = [item for item in json.loads(flowdapt_cli("flowdapt", "plugins", "list", "-o", "json").stdout)
                if item["name"] == "example"]
    assert plugin["package"] == "flowdapt-example-plugin" and plugin["module"] == "flowdapt_example_plugin"
    assert Path(plugin["path"]) == PLUGIN_SOURCE
    assert "flowdapt_example_plugin.stages.forecast" in plugin["stages"]
    assert {(r["kind"], r["name"]) for r in plugin["resources"]} == {
        ("workflow", "example-forecast"), ("workflow", "example-where"), ("config", "example-settings"),
        ("trigger_rule", "example-on-request")}
    assert plugin["extensions"] == {"executors": ["example-serial"], "stage_types": ["documented"],
                                    "trigger_actions": ["example_record"]}
    as_yaml = yaml.safe_load(flowdapt_cli("flowdapt", "plugins", "list", "-o", "yaml").stdout)
    assert [item["name"] for item in as_yaml] == [item["name"] for item in json.loads(
        flowdapt_cli("flowctl", "get", "plugins", "-o", "json").stdout)]
    inspected = yaml.safe_load(flowdapt_cli("flowctl", "inspect", "plugin", "example").stdout)
    assert inspected["extensions"]["stage_types"] == ["documented"] and inspected["version"] == "0.3.1"
    assert flowdapt_cli("flowctl", "get", "plugin", "nope", check=1).stderr.strip() == \
        "error: plugin 'nope' is not installed"


def test_the_plugins_workflow_applies_and_runs_its_stage_functions_on_its_executor(flowdapt_cli):
    applied = flowdapt_cli("flowctl", "apply", "--plugin", "example").stdout
    assert "[workflow/example-forecast] created" in applied and "[trigger_rule/example-on-request] created" in applied
    run = json.loads(flowdapt_cli("flowctl", "run", "example-forecast", "--executor", "example-serial",
                                  "-o", "json").stdout)
    assert run["state"] == "finished" and run["result"] == FORECAST and run["executor"] == "example-serial"
    assert [stage["type"] for stage in run["stages"]] == ["documented", "parameterized", "simple"]
    again = flowdapt_cli("flowctl", "apply", "--plugin", "example").stdout
    assert "[workflow/example-forecast] unchanged" in again


def test_a_plugin_stage_type_validates_what_it_is_given(flowdapt_cli, tmp_path):
    path = tmp_path / "undocumented.yaml"
    path.write_text("kind: workflow\nmetadata: {name: bare}\nspec:\n  stages:\n"
                    "    - {name: a, target: tests.stages.noop, type: documented}\n")
    failed = flowdapt_cli("flowctl", "apply", "-p", str(path), check=1)
    assert failed.stderr.strip().splitlines()[-1].endswith(
        "stage 'a': target: 'tests.stages.noop' has no docstring (documented stages need one)"), failed.stderr
    unknown = flowdapt_cli("flowctl", "apply", "--plugin", "nope", check=1).stderr.strip()
    assert unknown == "error: unknown plugin 'nope' (known: example)"
    flowdapt_cli("flowctl", "apply", "--plugin", "example")
    no_executor = flowdapt_cli("flowctl", "run", "example-where", "--executor", "nope", check=1).stderr.strip().splitlines()
    assert len(no_executor) == 1 and "example-serial" in no_executor[0]


def test_a_broken_plugin_is_one_warning_and_everything_else_works(flowdapt_cli, tmp_path):
    site = tmp_path / "site"
    dist = site / "flowdapt_broken_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: flowdapt-broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[flowdapt.plugins]\nbroken = flowdapt_broken_plugin\n\n"
                                           "[flowdapt.executors]\nbroken-executor = flowdapt_broken_plugin.nothing:Nope\n")
    env = {"PYTHONPATH": str(site)}
    listed = flowdapt_cli("flowdapt", "plugins", "list", "-o", "json", extra_env=env)
    assert [item["name"] for item in json.loads(listed.stdout)] == ["example"]
    warnings = [line for line in listed.stderr.splitlines() if "broken" in line]
    assert len(warnings) == 1 and "plugin 'broken' from package 'flowdapt-broken-plugin' cannot be loaded: " \
                                  "ModuleNotFoundError" in warnings[0], listed.stderr
    flowdapt_cli("flowctl", "apply", "--plugin", "example", extra_env=env)
    run = json.loads(flowdapt_cli("flowctl", "run", "example-forecast", "-o", "json", extra_env=env).stdout)
    assert run["result"] == FORECAST
    broken = flowdapt_cli("flowctl", "run", "example-forecast", "--executor", "broken-executor", extra_env=env,
                          check=1)
    assert "executor 'broken-executor' from package 'flowdapt-broken-plugin' cannot be loaded" in broken.stderr
    assert broken.stderr.strip().splitlines()[-1].startswith("error: unknown executor 'broken-executor'")


async def test_rest_lists_plugins_and_a_plugin_trigger_action_fires_by_name(jp_flowdapt_api, tmp_path):
    api = jp_flowdapt_api
    status, plugins = await api("GET", "plugins")
    assert status == 200 and [plugin["name"] for plugin in plugins] == ["example"]
    _, plugin = await api("GET", "plugins", "example")
    assert plugin["extensions"]["trigger_actions"] == ["example_record"] and plugin["version"] == "0.3.1"
    assert (await error_of(api("GET", "plugins", "nope")))[0] == 404
    record = tmp_path / "fired.jsonl"
    await api("POST", "triggers", body={"kind": "trigger_rule", "metadata": {"name": "on-ping"}, "spec": {
        "type": "condition", "rule": {"eq": [{"var": "type"}, "com.example.ping"]},
        "action": {"target": "example_record", "parameters": {"path": str(record), "note": "from yaml"}}}})
    await api("POST", "events", body={"type": "com.example.ping", "data": {}})

    async def recorded():
        return record.exists() and [json.loads(line) for line in record.read_text().splitlines()]

    assert await eventually(recorded) == [{"trigger": "on-ping", "event": "com.example.ping", "note": "from yaml"}]


async def test_the_client_lists_the_servers_plugins(jp_flowdapt_api, jp_flowdapt, jp_base_url, jp_http_port):
    from flowdapt.client import Client

    client = Client(f"http://localhost:{jp_http_port}{jp_base_url}", jp_flowdapt.identity_provider.token)
    try:
        [plugin] = await asyncio.to_thread(client.plugins)
    finally:
        client.close()
    assert plugin.name == "example" and plugin.resources_path.endswith("resources")
    assert "flowdapt_example_plugin.stages.where_loaded" in plugin.stages
