"""flowctl's commands for operating runs, as real subprocesses: on the embedded store and through a
real ``flowdapt serve`` (logs followed while a run goes on, a kernel's own run reported with its lines)."""

from __future__ import annotations

import json
import subprocess
import time

from flowdapt.client import Client
from tests.test_cli import BIN, ROOT, flowdapt_cli  # noqa: F401 - fixture
from tests.test_serve import TOKEN, Server, flowctl, flowdapt_env  # noqa: F401 - fixture

RESOURCES = """
kind: workflow
metadata: {name: chatty}
spec:
  stages:
    - {name: make, target: tests.ops_stages.chatty}
    - {name: talk, target: tests.ops_stages.talk_then_sleep, depends_on: [make]}
---
kind: workflow
metadata: {name: resumable}
spec:
  stages:
    - {name: prepare, target: tests.ops_stages.prepare, options: {keep_output: true}}
    - {name: total, target: tests.ops_stages.total_unless_flagged, depends_on: [prepare]}
---
kind: workflow
metadata: {name: stamp}
spec:
  stages: [{name: when, target: tests.ops_stages.logical_time_of}]
---
kind: trigger_rule
metadata: {name: hourly}
spec:
  type: schedule
  rule: ["0 * * * *"]
  action: {target: run_workflow, parameters: {workflow: stamp}}
"""


def _name(printed: str) -> str:
    return printed[printed.index("/") + 1:printed.index("]")]


def test_flowctl_operates_runs_on_the_embedded_store(flowdapt_cli, tmp_path):
    (tmp_path / "flows.yaml").write_text(RESOURCES)
    flowdapt_cli("flowctl", "apply", "-p", str(tmp_path / "flows.yaml"))
    done = flowdapt_cli("flowctl", "run", "chatty", "--n", "2", "--seconds", "0", "-o", "json")
    run = json.loads(done.stdout)  # only the document: what the stages printed is captured
    assert run["state"] == "finished" and "hello from" not in done.stdout + done.stderr
    printed = flowdapt_cli("flowctl", "logs", run["name"]).stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in printed] == [
        "make OUT hello from local", "make ERR to stderr", "make WARNING tests.ops: careful: 2 items",
        "make INFO flowdapt.stage: info through the run logger", "make OUT no newline at the end",
        "talk OUT early line"]
    talk = json.loads(flowdapt_cli("flowctl", "logs", run["uid"], "--stage", "talk", "-o", "json").stdout)
    assert [(line["seq"], line["message"]) for line in talk] == [(5, "early line")]
    again = json.loads(flowdapt_cli("flowctl", "rerun", run["name"], "-o", "json").stdout)
    assert again["rerun_of"] == run["uid"] and again["input"] == run["input"]

    flag = tmp_path / "flag"
    flag.touch()
    failed = _name(flowdapt_cli("flowctl", "run", "resumable", "--n", "3", "--flag", str(flag), check=1).stdout)
    flag.unlink()
    resumed = flowdapt_cli("flowctl", "retry", failed).stdout.strip()
    assert resumed.endswith("[FINISHED]: 3")
    stages = yaml_stages(flowdapt_cli("flowctl", "inspect", "run", _name(resumed)).stdout)
    assert stages == [("prepare", "cached"), ("total", "finished")]

    first = flowdapt_cli("flowctl", "backfill", "hourly", "--from", "2024-01-01T00:00", "--to", "2024-01-01T02:00",
                         "--concurrency", "2").stdout.splitlines()
    assert first[0].endswith("3 due time(s) from 2024-01-01T00:00:00+00:00 to 2024-01-01T02:00:00+00:00; "
                             "0 had fired already")
    second = flowdapt_cli("flowctl", "backfill", "hourly", "--from", "2024-01-01T00:00", "--to",
                          "2024-01-01T03:00").stdout.splitlines()
    assert second[0].endswith("3 had fired already") and len(second) == 2 and "2024-01-01T03:00:00" in second[1]
    runs = json.loads(flowdapt_cli("flowctl", "get", "runs", "stamp", "-o", "json").stdout)
    assert sorted(run["result"] for run in runs) == [f"2024-01-01T0{hour}:00:00+00:00" for hour in range(4)]
    assert flowdapt_cli("flowctl", "cache", "clear").stdout == "cleared 0 cache entries\n"
    error = flowdapt_cli("flowctl", "backfill", "hourly", "--from", "2024-01-02", "--to", "2024-01-01", check=1).stderr
    assert error.strip() == "error: --from 2024-01-02T00:00:00+00:00 is after --to 2024-01-01T00:00:00+00:00"


def yaml_stages(document: str) -> list[tuple[str, str]]:
    import yaml

    return [(stage["name"], stage["state"]) for stage in yaml.safe_load(document)["stages"]]


def test_logs_are_followed_through_a_server_and_a_reported_run_brings_its_lines(tmp_path, flowdapt_env):
    env = flowdapt_env
    (tmp_path / "flows.yaml").write_text(RESOURCES)
    server = Server(env, tmp_path / "serve.log")
    try:
        flowctl(env, "apply", "-p", str(tmp_path / "flows.yaml"))
        started = json.loads(flowctl(env, "run", "chatty", "--n", "1", "--seconds", "2", "--no-wait", "-o",
                                     "json").stdout)
        began = time.monotonic()
        followed = flowctl(env, "logs", started["uid"], "--follow")
        assert followed.returncode == 0 and time.monotonic() - began > 1.0  # it waited for the run to end
        assert followed.stdout.splitlines()[-1].endswith("talk OUT early line")
        with Client(server.url, TOKEN) as client:
            again = client.rerun(started["uid"], wait=False)
            streamed = list(client.logs(again.uid, follow=True))
            assert [line.message for line in streamed][-1] == "early line"
            assert client.get_run(again.uid).state == "finished"
            uid = _run_in_a_kernel_like_process(env, server.url)
            lines = client.logs(uid)
            assert [line.message for line in lines][:1] == ["hello from local"]
            assert client.rerun(uid).state == "finished"  # the server holds the version the kernel ran
    finally:
        server.stop(15)


def _run_in_a_kernel_like_process(env: dict, url: str) -> str:
    """A process under the server (as a kernel Lab starts: FLOWDAPT_URL set) runs a workflow itself."""
    script = (
        "import flowdapt\n"
        "from flowdapt.notebook.reporting import flush_reported_runs, report_runs_to_server\n"
        "report_runs_to_server(lambda: flowdapt.Client())\n"
        "run = flowdapt.run_workflow({'metadata': {'name': 'inkernel'}, 'spec': {'stages': [\n"
        "    {'name': 'make', 'target': 'tests.ops_stages.chatty'}]}}, {'n': 1})\n"
        "flush_reported_runs()\n"
        "print(run.uid)\n")
    done = subprocess.run([str(BIN / "python"), "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**env, "FLOWDAPT_URL": url, "FLOWDAPT_TOKEN": TOKEN})
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[-1]
