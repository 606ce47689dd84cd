"""flowctl and flowdapt through their real entry points (subprocesses), including every bad input of SPEC §9."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from flowdapt.history.orm import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

RESOURCES = """
kind: workflow
metadata: {name: squares}
spec:
  stages:
    - {name: nums, target: tests.stages.numbers}
    - {name: sq, target: tests.stages.square, type: parameterized, depends_on: [nums]}
    - {name: tot, target: tests.stages.total, depends_on: [sq]}
---
kind: workflow
metadata: {name: echo}
spec:
  stages:
    - {name: show, target: tests.stages.context_info}
---
kind: workflow
metadata: {name: flaky}
spec:
  stages:
    - {name: boom, target: tests.stages.fail}
---
kind: workflow
metadata: {name: slow}
spec:
  stages:
    - {name: nap, target: tests.stages.sleep_for}
---
kind: config
metadata: {name: squares-config}
spec:
  selector: {type: name, value: squares}
  data: {scale: 2}
"""


@pytest.fixture
def flowdapt_cli(tmp_path, flowdapt_app_dir):
    """Run ``flowctl``/``flowdapt`` in a subprocess against this test's app dir."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLOWDAPT")}
    env["FLOWDAPT_APP_DIR"] = str(flowdapt_app_dir)

    def call(program: str, *args: str, extra_env: dict | None = None, check: int | None = 0):
        done = subprocess.run([str(BIN / program), *args], cwd=ROOT, env={**env, **(extra_env or {})},
                              capture_output=True, text=True, timeout=120)
        if check is not None:
            assert done.returncode == check, f"{program} {args}: rc={done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    call.env = env
    return call


@pytest.fixture
def flowdapt_resources(tmp_path):
    path = tmp_path / "resources.yaml"
    path.write_text(RESOURCES)
    return path


def test_apply_creates_then_reports_unchanged_and_updated(flowdapt_cli, flowdapt_resources):
    out = flowdapt_cli("flowctl", "apply", "-p", str(flowdapt_resources)).stdout.splitlines()
    assert out == ["[workflow/squares] created", "[workflow/echo] created", "[workflow/flaky] created",
                   "[workflow/slow] created", "[config/squares-config] created"]
    flowdapt_resources.write_text(RESOURCES.replace("scale: 2", "scale: 3"))
    out = flowdapt_cli("flowctl", "apply", "-p", str(flowdapt_resources.parent)).stdout.splitlines()
    assert out[0] == "[workflow/squares] unchanged" and out[-1] == "[config/squares-config] updated"


def test_get_and_inspect_print_tables_json_and_yaml(flowdapt_cli, flowdapt_resources):
    flowdapt_cli("flowctl", "apply", "-p", str(flowdapt_resources))
    table = flowdapt_cli("flowctl", "get", "workflows").stdout.splitlines()
    assert table[0].split() == ["NAME", "STAGES", "UID", "CREATED"]
    assert [line.split()[0] for line in table[1:]] == ["echo", "flaky", "slow", "squares"]
    listed = json.loads(flowdapt_cli("flowctl", "get", "configs", "-o", "json").stdout)
    assert listed[0]["spec"]["data"] == {"scale": 2}
    one = yaml.safe_load(flowdapt_cli("flowctl", "get", "workflow", "squares", "-o", "yaml").stdout)
    assert [stage["name"] for stage in one[0]["spec"]["stages"]] == ["nums", "sq", "tot"]
    document = yaml.safe_load(flowdapt_cli("flowctl", "inspect", "workflow", one[0]["metadata"]["uid"]).stdout)
    assert document["metadata"]["name"] == "squares"
    assert flowdapt_cli("flowctl", "get", "triggers").stdout.split() == ["NAME", "TYPE", "ENABLED", "ACTION", "UID",
                                                                         "CREATED"]


def test_run_coerces_input_prints_the_run_and_records_it(flowdapt_cli, flowdapt_resources):
    flowdapt_cli("flowctl", "apply", "-p", str(flowdapt_resources))
    out = flowdapt_cli("flowctl", "run", "squares", "--n", "4").stdout.strip()
    assert out.startswith("[workflow_run/") and out.endswith("] [FINISHED]: 14")
    run_name = out[len("[workflow_run/"):out.index("]")]

    echoed = json.loads(flowdapt_cli("flowctl", "run", "echo", "--a.b", "1", "--flag", "true", "--ratio=0.5",
                                     "--tags[]", "x", "--tags[]", "y", "--name", "abc", "-o", "json").stdout)
    assert echoed["state"] == "finished"
    assert echoed["result"]["input"] == {"a": {"b": 1}, "flag": True, "ratio": 0.5, "tags": ["x", "y"], "name": "abc"}
    assert flowdapt_cli("flowctl", "run", "squares", "--n", "3", "--result-only").stdout.strip() == "5"

    runs = json.loads(flowdapt_cli("flowctl", "get", "runs", "squares", "-o", "json").stdout)
    assert [r["name"] for r in runs][-1] == run_name and len(runs) == 2
    # Documents list each run's stages (the latest attempt of each), as `inspect run` shows them.
    assert [(s["name"], s["state"], s["items_total"]) for s in runs[-1]["stages"]] == [
        ("nums", "finished", None), ("sq", "finished", 4), ("tot", "finished", None)]
    inspected = yaml.safe_load(flowdapt_cli("flowctl", "inspect", "run", run_name).stdout)
    assert inspected["result"] == 14 and [s["name"] for s in inspected["stages"]] == ["nums", "sq", "tot"]
    assert inspected["stages"][1]["items_total"] == 4
    table = flowdapt_cli("flowctl", "get", "runs", "--state", "finished").stdout.splitlines()
    assert table[0].split() == ["NAME", "WORKFLOW", "STATE", "SOURCE", "STARTED", "DURATION"] and len(table) == 4
    status = json.loads(flowdapt_cli("flowctl", "status", "-o", "json").stdout)
    assert (status["mode"], status["backend"], status["runs"], status["workflows"]) == ("local", "duckdb", 3, 4)


def test_a_failed_run_exits_1_with_the_stage_error_and_no_traceback(flowdapt_cli, flowdapt_resources):
    flowdapt_cli("flowctl", "apply", "-p", str(flowdapt_resources))
    done = flowdapt_cli("flowctl", "run", "flaky", check=1)
    assert "[FAILED]" in done.stdout
    assert done.stderr.strip() == "error: ValueError in stage 'boom': stage exploded: bad value 42"


def test_cancel_stops_a_run_started_by_another_flowctl(flowdapt_cli, flowdapt_resources, tmp_path):
    sqlite = {"FLOWDAPT__DATABASE__URL": f"sqlite:///{tmp_path / 'history.db'}"}
    flowdapt_cli("flowctl", "apply", "-p", str(flowdapt_resources), extra_env=sqlite)
    runner = subprocess.Popen([str(BIN / "flowctl"), "run", "slow", "--seconds", "60"], cwd=ROOT,
                              env={**flowdapt_cli.env, **sqlite}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        deadline = time.monotonic() + 60
        running: list = []
        while not running and time.monotonic() < deadline:
            time.sleep(0.3)
            running = json.loads(flowdapt_cli("flowctl", "get", "runs", "--state", "running", "-o", "json",
                                              extra_env=sqlite).stdout)
        assert running, "the run never showed up as running"
        name = running[0]["name"]
        assert flowdapt_cli("flowctl", "cancel", name, extra_env=sqlite).stdout.strip() == \
            f"[workflow_run/{name}] cancel requested"
        out, err = runner.communicate(timeout=30)
    finally:
        runner.kill()
    assert runner.returncode == 1 and f"[workflow_run/{name}] [CANCELLED]" in out
    done = flowdapt_cli("flowctl", "cancel", name, extra_env=sqlite, check=1)
    assert done.stderr.strip() == f"error: run '{name}' already ended (cancelled)"


def test_delete_by_name_and_by_file(flowdapt_cli, flowdapt_resources):
    flowdapt_cli("flowctl", "apply", "-p", str(flowdapt_resources))
    assert flowdapt_cli("flowctl", "delete", "workflow", "echo").stdout.strip() == "[workflow/echo] deleted"
    done = flowdapt_cli("flowctl", "delete", "-p", str(flowdapt_resources), check=1)
    assert done.stderr.strip() == "error: workflow 'echo' not found"
    assert len(json.loads(flowdapt_cli("flowctl", "get", "workflows", "-o", "json").stdout)) == 3  # nothing deleted
    flowdapt_resources.write_text(RESOURCES.split("---")[0])
    assert flowdapt_cli("flowctl", "delete", "-p", str(flowdapt_resources)).stdout.strip() == \
        "[workflow/squares] deleted"
    assert flowdapt_cli("flowctl", "delete", "workflow", check=2).stderr.strip().endswith(
        "Error: give either KIND NAME or -p PATH")


BAD_FILES = {
    "bad YAML": ("kind: workflow\nmetadata: {name: x\n", "line 3: invalid YAML"),
    "unknown kind": ("kind: workflo\nmetadata: {name: x}\nspec: {}\n",
                     "resource/x: kind: unknown kind 'workflo' (known: workflow, config, trigger_rule)"),
    "invalid value": ("kind: workflow\nmetadata: {name: x}\nspec:\n  stages:\n"
                      "    - {name: a, target: tests.stages.noop, options: {retries: -1}}\n",
                      "workflow/x: stage 'a': options.retries:"),
    "one bad document of two": (RESOURCES.split("---")[0] + "---\nkind: workflow\nmetadata: {name: y}\nspec:\n"
                                "  stages:\n    - {name: a, target: tests.stages.noop, depends_on: [zz]}\n",
                                "workflow/y: stage 'a': depends_on:"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_resource_files_exit_1_naming_the_problem_and_store_nothing(flowdapt_cli, tmp_path, case):
    content, message = BAD_FILES[case]
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    done = flowdapt_cli("flowctl", "apply", "-p", str(path), check=1)
    assert done.stderr.startswith(f"error: {path}: ") and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert flowdapt_cli("flowctl", "get", "workflows", "-o", "json").stdout.strip() == "[]"


def test_unreadable_and_missing_files_are_named(flowdapt_cli, tmp_path):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00kind")
    done = flowdapt_cli("flowctl", "apply", "-p", str(binary), check=1)
    assert done.stderr.startswith(f"error: {binary}: cannot read file:")
    done = flowdapt_cli("flowctl", "apply", "-p", str(tmp_path / "missing.yaml"), check=1)
    assert done.stderr.strip() == f"error: {tmp_path / 'missing.yaml'}: no such file or folder"


def test_unknown_names_and_invalid_values_fail_with_one_line(flowdapt_cli, flowdapt_resources):
    flowdapt_cli("flowctl", "apply", "-p", str(flowdapt_resources))
    assert flowdapt_cli("flowctl", "run", "nope", check=1).stderr.strip() == "error: workflow 'nope' not found"
    assert flowdapt_cli("flowctl", "get", "runs", "nope", check=1).stderr.strip() == "error: workflow 'nope' not found"
    assert flowdapt_cli("flowctl", "inspect", "run", "nope", check=1).stderr.strip() == \
        "error: workflow_run 'nope' not found"
    done = flowdapt_cli("flowctl", "run", "squares", "--executor", "bogus", check=1)
    assert done.stderr.strip().startswith("error: unknown executor 'bogus' (known: ")
    assert "unknown kind 'gadgets'" in flowdapt_cli("flowctl", "get", "gadgets", check=2).stderr
    assert "Invalid value for '-o'" in flowdapt_cli("flowctl", "get", "workflows", "-o", "xml", check=2).stderr
    assert "Error: unexpected argument 'oops' (input is given as --key value)" in \
        flowdapt_cli("flowctl", "run", "squares", "oops", check=2).stderr
    done = flowdapt_cli("flowctl", "get", "workflows", extra_env={"FLOWDAPT__RUN_RETENTION": "forever"}, check=1)
    assert done.stderr.strip().startswith("error: environment: run_retention: invalid retention 'forever'")


def test_debug_shows_the_traceback(flowdapt_cli):
    done = flowdapt_cli("flowctl", "--debug", "run", "nope", check=1)
    assert "Traceback (most recent call last)" in done.stderr and "workflow 'nope' not found" in done.stderr


def test_a_server_url_without_an_http_client_is_a_clear_error(flowdapt_cli):
    done = flowdapt_cli("flowctl", "status", extra_env={"FLOWDAPT_URL": "http://127.0.0.1:9/"}, check=1)
    assert done.stderr.strip().startswith("error: cannot talk to the server at http://127.0.0.1:9/")


def test_flowdapt_config_show_get_set(flowdapt_cli, flowdapt_app_dir):
    assert flowdapt_cli("flowdapt", "config", "get", "executor.name").stdout.strip() == "local"
    out = flowdapt_cli("flowdapt", "config", "set", "run_retention", "7d").stdout
    assert out.startswith("run_retention = '7d'")
    assert yaml.safe_load((flowdapt_app_dir / "flowdapt.yaml").read_text()) == {"run_retention": "7d"}
    shown = yaml.safe_load(flowdapt_cli("flowdapt", "-o", "executor.options.cpus=3", "config", "show").stdout)
    assert shown["run_retention"] == "7d" and shown["executor"]["options"] == {"cpus": 3}
    env = {"FLOWDAPT__DEFAULT_NAMESPACE": "team-a"}
    assert flowdapt_cli("flowdapt", "config", "get", "default_namespace", extra_env=env).stdout.strip() == "team-a"
    done = flowdapt_cli("flowdapt", "config", "set", "run_retension", "7d", check=1)
    assert done.stderr.strip() == f"error: {flowdapt_app_dir / 'flowdapt.yaml'}: run_retension: unknown key"
    done = flowdapt_cli("flowdapt", "config", "set", "logging.level", "loud", check=1)
    assert "logging.level: Input should be" in done.stderr
    assert yaml.safe_load((flowdapt_app_dir / "flowdapt.yaml").read_text()) == {"run_retention": "7d"}
    assert flowdapt_cli("flowdapt", "config", "get", "nope", check=1).stderr.strip() == "error: nope: unknown key"


def test_flowdapt_db_current_and_upgrade(flowdapt_cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    assert flowdapt_cli("flowdapt", "-o", f"database.url={url}", "db", "current").stdout.strip() == \
        f"{url}: no schema yet (head is {SCHEMA_VERSION})"
    assert flowdapt_cli("flowdapt", "-o", f"database.url={url}", "db", "upgrade").stdout.strip() == \
        f"upgraded from an empty database to version {SCHEMA_VERSION}"
    assert flowdapt_cli("flowdapt", "-o", f"database.url={url}", "db", "upgrade").stdout.strip() == \
        f"already at version {SCHEMA_VERSION}"
    assert flowdapt_cli("flowdapt", "-o", f"database.url={url}", "db", "current").stdout.strip() == \
        f"{url}: version {SCHEMA_VERSION} (head)"


def test_an_input_key_without_a_value_is_a_usage_error(flowdapt_cli, flowdapt_resources):
    flowdapt_cli("flowctl", "apply", "-p", str(flowdapt_resources))
    done = flowdapt_cli("flowctl", "run", "echo", "--name", check=2)
    assert "Error: --name needs a value (input is given as --name VALUE; write --name true for a flag)" in done.stderr
    done = flowdapt_cli("flowctl", "run", "echo", "--name", "--other", "1", check=2)
    assert "--name needs a value" in done.stderr
    assert json.loads(flowdapt_cli("flowctl", "get", "runs", "-o", "json").stdout) == []  # nothing ran


def test_no_wait_returns_at_once_and_a_second_shell_lists_and_cancels_the_run(flowdapt_cli, flowdapt_resources,
                                                                             flowdapt_app_dir):
    flowdapt_cli("flowctl", "apply", "-p", str(flowdapt_resources))
    started = time.monotonic()
    done = flowdapt_cli("flowctl", "run", "slow", "--seconds", "60", "--no-wait", "-o", "json")
    assert time.monotonic() - started < 30
    run = json.loads(done.stdout)  # stdout holds only the document; where the run goes on is on stderr
    assert run["state"] == "running" and "the run goes on in process" in done.stderr
    # The background process holds the DuckDB store and serves it: other commands work through it.
    listed = json.loads(flowdapt_cli("flowctl", "get", "runs", "-o", "json").stdout)
    assert [(item["uid"], item["state"]) for item in listed] == [(run["uid"], "running")]
    status = json.loads(flowdapt_cli("flowctl", "status", "-o", "json").stdout)
    assert status["shared_by"].startswith("flowctl run (pid ") and status["running"] == 1
    refused = flowdapt_cli("flowctl", "run", "squares", "--n", "2", check=1)
    assert refused.stderr.strip().startswith("error: the embedded store is held by flowctl run (pid ")
    assert "flowdapt serve" in refused.stderr
    assert flowdapt_cli("flowctl", "cancel", run["name"]).stdout.strip() == f"[workflow_run/{run['name']}] cancel requested"
    deadline = time.monotonic() + 30
    while (state := json.loads(flowdapt_cli("flowctl", "get", "run", run["uid"], "-o", "json").stdout)[0]["state"]) \
            == "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert state == "cancelled"
    deadline = time.monotonic() + 30
    while (flowdapt_app_dir / "store.json").exists():  # the background process ends with its run
        assert time.monotonic() < deadline
        time.sleep(0.2)
    log = next((flowdapt_app_dir / "logs").glob(f"{run['uid']}.log")).read_text()
    assert f"error: run '{run['name']}' was cancelled" in log  # why it exited 1, in its output
    assert flowdapt_cli("flowctl", "run", "squares", "--n", "2").stdout.strip().endswith("[FINISHED]: 1")


def test_a_cancelled_run_says_why_the_command_failed(flowdapt_cli, flowdapt_resources):
    flowdapt_cli("flowctl", "apply", "-p", str(flowdapt_resources))
    waiting = subprocess.Popen([str(BIN / "flowctl"), "run", "slow", "--seconds", "60"], cwd=ROOT,
                               env=flowdapt_cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while True:  # a second shell finds the run through the process that runs it, and cancels it
        listed = flowdapt_cli("flowctl", "get", "runs", "slow", "-o", "json", check=None)
        runs = json.loads(listed.stdout) if listed.returncode == 0 else []
        if runs:
            break
        assert time.monotonic() < deadline and waiting.poll() is None, listed.stderr
        time.sleep(0.2)
    flowdapt_cli("flowctl", "cancel", runs[0]["uid"])
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 1 and "[CANCELLED]" in out
    assert err.strip().splitlines()[-1] == f"error: run '{runs[0]['name']}' was cancelled"


def test_triggers_are_enabled_disabled_and_their_fire_times_shown(flowdapt_cli, tmp_path):
    path = tmp_path / "trigger.yaml"
    path.write_text("kind: workflow\nmetadata: {name: hello}\nspec: {stages: [{name: hi, target: tests.stages.greet}]}"
                    "\n---\nkind: trigger_rule\nmetadata: {name: nightly}\nspec:\n  type: schedule\n"
                    "  rule: ['0 3 * * *']\n  action: {target: run_workflow, parameters: {workflow: hello}}\n")
    flowdapt_cli("flowctl", "apply", "-p", str(path))
    status = json.loads(flowdapt_cli("flowctl", "trigger", "status", "nightly", "-o", "json").stdout)
    assert status["enabled"] is True and status["last_fire_time"] is None
    assert status["next_fire_time"].endswith("T03:00:00+00:00")
    assert flowdapt_cli("flowctl", "trigger", "disable", "nightly").stdout.strip() == "[trigger_rule/nightly] disabled"
    status = json.loads(flowdapt_cli("flowctl", "trigger", "status", "nightly", "-o", "json").stdout)
    assert (status["enabled"], status["next_fire_time"]) == (False, None)
    assert flowdapt_cli("flowctl", "trigger", "enable", "nightly").stdout.strip() == "[trigger_rule/nightly] enabled"
    assert json.loads(flowdapt_cli("flowctl", "trigger", "firings", "nightly", "-o", "json").stdout) == []
    assert flowdapt_cli("flowctl", "trigger", "firings", "nope", check=1).stderr.strip() == \
        "error: trigger_rule 'nope' not found"


def test_a_dask_run_whose_stage_timed_out_prints_no_dask_noise(flowdapt_cli, tmp_path):
    path = tmp_path / "slow.yaml"
    path.write_text("kind: workflow\nmetadata: {name: late}\nspec: {stages: [{name: nap, target: "
                    "tests.stages.sleep_for, options: {timeout: 1}}]}\n")
    flowdapt_cli("flowctl", "apply", "-p", str(path))
    done = flowdapt_cli("flowctl", "run", "late", "--seconds", "8", "--executor", "dask", check=1)
    assert done.stderr.strip() == "error: StageTimeoutError in stage 'nap': stage 'nap' timed out after 1s"


def test_templates_apply_and_their_notebook_stage_runs_from_any_directory(flowdapt_cli, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def flowctl(*args: str, check: int = 0) -> subprocess.CompletedProcess:
        done = subprocess.run([str(BIN / "flowctl"), *args], cwd=elsewhere, env=flowdapt_cli.env, capture_output=True,
                              text=True, timeout=180)
        assert done.returncode == check, done.stderr
        return done

    assert "[workflow/notebook-stage] created" in flowctl("apply", "-p", str(ROOT / "templates")).stdout
    stage = json.loads(flowctl("get", "workflow", "notebook-stage", "-o", "json").stdout)[0]["spec"]["stages"][1]
    assert stage["target"] == str(ROOT / "templates" / "notebooks" / "notebook-stage.ipynb")  # read against the file
    done = flowctl("run", "notebook-stage", "--name", "x", "-o", "json")
    assert json.loads(done.stdout)["state"] == "finished"


def test_a_command_waits_for_a_short_holder_of_the_duckdb_file(flowdapt_cli, flowdapt_resources, flowdapt_app_dir):
    flowdapt_cli("flowctl", "apply", "-p", str(flowdapt_resources))
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); time.sleep(2)", str(flowdapt_app_dir / "history.duckdb")],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    listed = flowdapt_cli("flowctl", "get", "workflows")  # DuckDB refuses a second process: tried again
    assert "squares" in listed.stdout and time.monotonic() - started >= 1
    holder.wait(timeout=10)


def test_a_module_in_the_current_directory_never_shadows_what_flowctl_imports(flowdapt_cli, flowdapt_resources,
                                                                            tmp_path):
    (tmp_path / "duckdb.py").write_text("raise SystemExit('not the real duckdb')\n")  # imported when the store opens
    (tmp_path / "mystage.py").write_text("def double(x: int = 1):\n    return 2 * x\n")
    (tmp_path / "w.yaml").write_text("kind: workflow\nmetadata: {name: w}\nspec: {stages: [{name: d, target: "
                                     "mystage.double}]}\n")
    done = subprocess.run([str(BIN / "flowctl"), "apply", "-p", "w.yaml"], cwd=tmp_path, env=flowdapt_cli.env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([str(BIN / "flowctl"), "run", "w", "--x", "4"], cwd=tmp_path, env=flowdapt_cli.env,
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().endswith("[FINISHED]: 8"), done.stderr  # stage modules there still import
