"""``flowdapt serve`` as a real subprocess: flowctl over HTTP, kill -9 mid-run, restart, recovery."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TOKEN = "serve-test-token"
RESOURCES = """
kind: workflow
metadata: {name: nap}
spec:
  stages: [{name: nap, target: tests.stages.sleep_for}]
---
kind: workflow
metadata: {name: hello}
spec:
  stages: [{name: hello, target: tests.stages.greet}]
---
kind: trigger_rule
metadata: {name: tick}
spec:
  type: schedule
  rule: ["* * * * * *"]
  action: {target: run_workflow, parameters: {workflow: hello, input: {name: tick}}}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def flowdapt_env(tmp_path, flowdapt_app_dir):
    """Environment of the subprocesses: this app dir, an isolated Jupyter config, no inherited server."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("FLOWDAPT_", "JUPYTER"))}
    env.update(FLOWDAPT_APP_DIR=str(flowdapt_app_dir), HOME=str(tmp_path / "home"), JUPYTER_TOKEN=TOKEN,
               JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               PYTHONPATH=str(ROOT))
    return env


class Server:
    """``flowdapt serve`` on a free port (more Jupyter options in ``options``), up when its API answers."""

    def __init__(self, env: dict[str, str], log: Path, *options: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [str(BIN / "flowdapt"), "serve", "--ip=127.0.0.1", f"--port={self.port}", "--no-browser", *options],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.started = time.time()
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}flowdapt/api/v1/status", headers={"Authorization": f"token {TOKEN}"},
                             timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(f"flowdapt serve did not come up: {log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self, sig: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=60)
        self.log.close()


def flowctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "flowctl"), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def _firings(env: dict[str, str]) -> list[datetime]:
    from flowdapt.client import Client

    with Client(app_dir=env["FLOWDAPT_APP_DIR"]) as client:
        return sorted(datetime.fromisoformat(f["fired_at"]) for f in client.trigger_firings("tick", limit=1000))


def test_serve_flowctl_kill_restart_interrupted_and_schedules_resume_once(tmp_path, flowdapt_env):
    env = flowdapt_env
    (tmp_path / "resources.yaml").write_text(RESOURCES)
    server = Server(env, tmp_path / "serve.log")
    try:
        applied = flowctl(env, "apply", "-p", str(tmp_path / "resources.yaml"))
        assert applied.returncode == 0, applied.stderr
        assert "[workflow/nap] created" in applied.stdout and "[trigger_rule/tick] created" in applied.stdout
        status = json.loads(flowctl(env, "status", "-o", "json").stdout)
        assert status["mode"] == "server" and status["server"] == server.url  # found via the runtime file
        done = flowctl(env, "run", "hello", "--name", "http")
        assert done.returncode == 0 and "[FINISHED]: hello http" in done.stdout
        started = flowctl(env, "run", "nap", "--seconds", "60", "--no-wait", "-o", "json")
        assert started.returncode == 0, started.stderr
        uid = json.loads(started.stdout)["uid"]
        time.sleep(1.5)  # running, and the schedule has fired
    finally:
        server.stop(signal.SIGKILL)

    killed_at = time.time()
    time.sleep(3)  # several schedule times pass while no server runs
    server = Server(env, tmp_path / "serve.log")
    try:
        run = json.loads(flowctl(env, "get", "run", uid, "-o", "json").stdout)
        run = run[0] if isinstance(run, list) else run
        assert run["state"] == "interrupted" and run["error"]["type"] == "Interrupted"
        time.sleep(2.5)
        up = time.time() - server.started
        firings = _firings(env)
        after = [f for f in firings if f.timestamp() > killed_at]
        # Missed times fire once (catchup: false), then every second; nothing fired twice.
        assert 1 <= len(after) <= up + 2, (after, up)
        assert len(firings) == len(set(firings)) and len(firings) > len(after)
        cancel = flowctl(env, "cancel", uid)
        assert cancel.returncode == 1 and "already ended (interrupted)" in cancel.stderr
    finally:
        server.stop(signal.SIGTERM)
    assert server.process.returncode == 0
    assert not (Path(env["FLOWDAPT_APP_DIR"]) / "server.json").exists()  # removed on a clean stop
    local = flowctl(env, "get", "runs", "nap", "-o", "json")  # no server now: the local store answers
    assert local.returncode == 0 and json.loads(local.stdout)[0]["state"] == "interrupted"

