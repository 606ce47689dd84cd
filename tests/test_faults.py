"""Faults a scheduler must survive, caused for real: kill -9 of the server while it writes history and
fires triggers, PostgreSQL restarted under a running server, a Dask worker and a Ray worker killed
mid-stage, a full disk under the artifact store. Each asserts that nothing is lost and nothing runs
twice, or that what was lost is recorded as such."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import datetime

import httpx
import pytest

import flowdapt
from flowdapt.compute.object_store import ArtifactStore
from tests.history_backends import new_postgres_database, postgres_server
from tests.test_serve import TOKEN, Server, flowdapt_env  # noqa: F401 - fixture

CHAIN = {"kind": "workflow", "metadata": {"name": "chain"}, "spec": {"stages": [
    {"name": f"s{index}", "target": "tests.stages.fast", **({"depends_on": [f"s{index - 1}"]} if index else {})}
    for index in range(300)]}}
NAP = {"kind": "workflow", "metadata": {"name": "nap"}, "spec": {"stages": [{"name": "nap", "target": "tests.stages.sleep_for"}]}}
TICK = {"kind": "trigger_rule", "metadata": {"name": "tick"}, "spec": {
    "type": "schedule", "rule": ["* * * * * *"], "action": {"target": "run_workflow", "parameters": {"workflow": "chain"}}}}


def _api(server: Server, method: str, path: str, **kwargs) -> httpx.Response:
    return httpx.request(method, f"{server.url}flowdapt/api/v1/{path}", headers={"Authorization": f"token {TOKEN}"},
                         timeout=60, **kwargs)


def test_kill_9_while_writing_history_and_firing_triggers_loses_and_repeats_nothing(tmp_path, flowdapt_env):
    server = Server(flowdapt_env, tmp_path / "serve.log")
    try:
        assert _api(server, "POST", "apply", json=[CHAIN, NAP, TICK]).status_code == 200
        in_flight = _api(server, "POST", "workflows/nap/run", params={"wait": "false"}, json={"seconds": 60}).json()
        for _ in range(3):  # 300-stage runs writing their stage rows while the schedule fires every second
            _api(server, "POST", "workflows/chain/run", params={"wait": "false"}, json={})
        time.sleep(3.3)
    finally:
        killed = time.time()
        server.stop(signal.SIGKILL)
    server = Server(flowdapt_env, tmp_path / "serve.log")  # opens the database the killed server was writing
    try:
        time.sleep(2.2)
        runs = _api(server, "GET", "runs", params={"limit": 1000}).json()
        firings = _api(server, "GET", "triggers/tick/firings", params={"limit": 1000}).json()
        interrupted = _api(server, "GET", f"runs/{in_flight['uid']}").json()
    finally:
        server.stop(signal.SIGTERM)
    assert interrupted["state"] == "interrupted"  # the run in flight is not lost, and says what happened
    scheduled = [firing["scheduled_at"] for firing in firings]
    assert len(scheduled) == len(set(scheduled)) and len(scheduled) >= 4, "a schedule time fired twice"
    by_uid = {run["uid"]: run for run in runs}
    for firing in firings:  # every run a firing started is in the history, ended one way or the other
        if firing["run_uid"]:
            assert by_uid[firing["run_uid"]]["state"] in ("finished", "interrupted", "running", "pending")
    before = [run for run in runs if run["started_at"] and datetime.fromisoformat(run["started_at"]).timestamp() < killed]
    assert len(before) >= 4 and all(run["state"] in ("finished", "interrupted") for run in before)


def test_postgresql_restarted_under_a_running_server_loses_no_record(tmp_path, flowdapt_env):
    with postgres_server() as database:
        env = {**flowdapt_env, "FLOWDAPT__DATABASE__URL": new_postgres_database(database.url)}
        server = Server(env, tmp_path / "serve.log")
        try:
            assert _api(server, "POST", "apply", json=[NAP]).status_code == 200
            run = _api(server, "POST", "workflows/nap/run", params={"wait": "false"}, json={"seconds": 3}).json()
            database.stop()
            down = _api(server, "GET", "runs")  # the database is away: a clear 503, not a 500
            assert down.status_code == 503 and "history database" in down.json()["detail"] and \
                "unreachable" in down.json()["detail"], down.text
            time.sleep(4)  # the run ends while the database is down; its record waits for it
            database.start()
            deadline = time.monotonic() + 60
            while (found := _api(server, "GET", f"runs/{run['uid']}")).status_code != 200 or \
                    found.json()["state"] != "finished":
                assert time.monotonic() < deadline, found.text
                time.sleep(0.5)
            again = _api(server, "POST", "workflows/nap/run", json={"seconds": 0})
            assert again.json()["state"] == "finished"
        finally:
            database.start()  # running again (a no-op if it is), so the server stops cleanly
            server.stop(signal.SIGTERM)


def test_a_dask_worker_killed_during_a_parameterized_stage(tmp_path):
    from flowdapt.compute.executors.dask import DaskExecutor

    with DaskExecutor(workers=2, threads=1, memory="1GB") as executor:
        pids = set(executor.client.run(os.getpid).values())
        definition = {"metadata": {"name": "items"}, "spec": {"stages": [
            {"name": "slow", "target": "tests.stages.interval", "type": "parameterized", "options": {"map_on": "x"}}]}}
        run = flowdapt.run_workflow(definition, {"x": list(range(12)), "seconds": 0.5}, executor=executor, wait=False)
        time.sleep(1.0)
        os.kill(sorted(pids)[0], signal.SIGKILL)  # the nanny starts a new worker; Dask runs its tasks again
        assert run.wait(120).state == "finished", run.error
    assert [item for item, _, _ in run.result] == list(range(12))  # every item once, in input order


def test_a_ray_worker_killed_during_a_stage_fails_the_stage_clearly(flowdapt_ray, tmp_path):
    marker = tmp_path / "pid"
    definition = {"metadata": {"name": "victim"}, "spec": {"stages": [
        {"name": "victim", "target": "tests.stages.write_pid_then_sleep"}]}}
    run = flowdapt.run_workflow(definition, {"path": str(marker), "seconds": 30}, executor=flowdapt_ray, wait=False)
    deadline = time.monotonic() + 60
    while not marker.exists() or not marker.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    os.kill(int(marker.read_text().split()[0]), signal.SIGKILL)
    assert run.wait(60).state == "failed"  # never left running, and not run again behind the user's back
    assert run.stage("victim").state == "failed" and "victim" in str(run.error)
    assert marker.read_text().count("\n") <= 1  # the stage started once


@pytest.fixture
def flowdapt_small_disk(tmp_path):
    """A 256 KiB tmpfs: a disk that fills up (needs root to mount, as in CI)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], check=True)
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_keeps_the_previous_artifact_and_no_partial_file(flowdapt_small_disk):
    store = ArtifactStore("file", str(flowdapt_small_disk))
    store.put("model", {"weights": [1, 2, 3]}, "default")
    with pytest.raises(OSError, match=r"object 'model' in namespace 'default' was not stored as an artifact .*"
                                      r"No space left on device"):
        store.put("model", b"x" * 1_000_000, "default")
    assert store.get("model", "default") == {"weights": [1, 2, 3]}  # the previous value is intact
    assert [path.name for path in (flowdapt_small_disk / "artifacts" / "default").iterdir()] == ["model"]
    store.put("small", 1, "default")  # and the store goes on
    assert store.get("small", "default") == 1
