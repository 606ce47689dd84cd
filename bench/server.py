"""Server benchmarks against a real ``flowdapt serve`` subprocess (DuckDB history, local threads executor).

- ``trigger_latency``: a ``* * * * * *`` schedule; lateness = firing time - scheduled second,
  p50/p99, with the executor idle and then busy (CPU-bound runs in parallel); measured on the
  local executor in threads mode (the stages share the server's GIL) and again in processes mode.
- ``event_to_run``: ``POST events`` → a condition trigger → the first stage starts (stage
  ``started_at`` - time of the POST), p50/p99.
- ``api_latency``: ``GET workflows`` and ``POST workflows/{id}/run?wait=false`` p50/p99 one at a
  time, and requests/s of ``GET workflows`` from 8 concurrent client threads.

Peers fire schedules from polling loops: Flowdapt every 5 s, Prefect 10 s, Dagster 30 s, so their
lateness is up to the interval. Run ``python bench/server.py``; results go to
``bench/results/server.json``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "server.json"
TOKEN = "bench-token"
TARGETS = {"trigger_latency.p99_ms": 50.0, "event_to_run.p50_ms": 10.0, "api_get_workflows.p50_ms": 5.0}
PEERS = {"flowdapt (original)": "polls every 5 s", "prefect": "polls every 10 s", "dagster": "polls every 30 s"}


def spin(seconds: float = 0.2) -> int:
    """A CPU-bound stage (holds the GIL) that keeps the server's executor busy."""
    deadline, count = time.perf_counter() + seconds, 0
    while time.perf_counter() < deadline:
        count += 1
    return count


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"n": len(ordered), "p50_ms": round(pick(0.5) * 1e3, 2), "p99_ms": round(pick(0.99) * 1e3, 2),
            "mean_ms": round(statistics.fmean(ordered) * 1e3, 2)}


class Server:
    """``flowdapt serve`` in a fresh app dir; ``api`` is an httpx client on its REST root."""

    def __init__(self, mode: str = "threads") -> None:
        self.app_dir = tempfile.mkdtemp(prefix="flowdapt-bench-")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {**os.environ, "FLOWDAPT_APP_DIR": self.app_dir, "JUPYTER_TOKEN": TOKEN,
               "JUPYTER_CONFIG_DIR": os.path.join(self.app_dir, "jupyter"), "PYTHONPATH": str(ROOT),
               "FLOWDAPT__EXECUTOR__OPTIONS__MODE": mode, "FLOWDAPT__EXECUTOR__OPTIONS__CPUS": "4"}
        env.pop("FLOWDAPT_URL", None)
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "flowdapt"), "serve", "--ip=127.0.0.1", f"--port={port}",
             "--no-browser", "--allow-root", "--ServerApp.log_level=WARN"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.app_dir, "serve.log"), "wb"))
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{port}/flowdapt/api/v1/",
                                headers={"Authorization": f"token {TOKEN}"}, timeout=60)
        deadline = time.monotonic() + 90
        while True:
            try:
                if self.api.get("status").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError("flowdapt serve did not start")
            time.sleep(0.2)

    def apply(self, *documents: dict[str, Any]) -> None:
        self.api.post("apply", json=list(documents)).raise_for_status()

    def close(self) -> None:
        self.api.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)


def _workflow(name: str, target: str) -> dict[str, Any]:
    return {"kind": "workflow", "metadata": {"name": name}, "spec": {"stages": [{"name": "s", "target": target}]}}


def _trigger(name: str, kind: str, rule: Any, workflow: str, input: dict | None = None) -> dict[str, Any]:
    return {"kind": "trigger_rule", "metadata": {"name": name}, "spec": {
        "type": kind, "rule": rule, "action": {"target": "run_workflow",
                                               "parameters": {"workflow": workflow, "input": input or {}}}}}


def _lateness(server: Server, since: float) -> list[float]:
    firings = server.api.get("triggers/tick/firings", params={"limit": 1000}).json()
    times = [datetime.fromisoformat(f["fired_at"]).timestamp() for f in firings]
    return [t - int(t) for t in times if t > since]


def trigger_latency(server: Server, seconds: float = 8.0) -> dict[str, Any]:
    """Schedule lateness with the executor idle, then busy with CPU-bound runs."""
    server.apply(_workflow("quick", "bench._stages.first"), _workflow("burn", "bench.server.spin"),
                 _trigger("tick", "schedule", ["* * * * * *"], "quick"))
    start = time.time()
    time.sleep(seconds)
    idle = _lateness(server, start)
    busy_start = time.time()
    stop = threading.Event()

    def burn() -> None:
        while not stop.is_set():
            server.api.post("workflows/burn/run", json={"seconds": 0.2}, params={"wait": "true"})

    workers = [threading.Thread(target=burn) for _ in range(4)]
    for worker in workers:
        worker.start()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    busy = _lateness(server, busy_start)
    server.api.post("triggers/tick/disable")
    return {"idle": _percentiles(idle), "busy": _percentiles(busy)}


def event_to_run(server: Server, n: int = 40) -> dict[str, Any]:
    """POST an event → condition trigger → first stage starts."""
    server.apply(_trigger("on-go", "condition", {"eq": [{"var": "type"}, "bench.go"]}, "quick"))
    latencies = []
    for index in range(n):
        before = {run["uid"] for run in server.api.get("runs", params={"workflow": "quick", "limit": 500}).json()}
        sent = time.time()
        server.api.post("events", json={"type": "bench.go", "data": {"i": index}}).raise_for_status()
        while True:
            runs = server.api.get("runs", params={"workflow": "quick", "source": "trigger", "limit": 5}).json()
            new = [run["uid"] for run in runs if run["uid"] not in before]
            stages = server.api.get(f"runs/{new[0]}/stages").json() if new else []
            if stages and stages[0].get("started_at"):
                latencies.append(datetime.fromisoformat(stages[0]["started_at"]).timestamp() - sent)
                break
            time.sleep(0.005)
    return _percentiles(latencies)


def api_latency(server: Server, n: int = 300, seconds: float = 3.0, clients: int = 8) -> dict[str, Any]:
    """GET workflows and POST run (no wait) one at a time, then GET workflows from concurrent clients."""
    get_times, post_times = [], []
    for _ in range(n):
        began = time.perf_counter()
        server.api.get("workflows").raise_for_status()
        get_times.append(time.perf_counter() - began)
    for _ in range(n // 3):
        began = time.perf_counter()
        server.api.post("workflows/quick/run", json={}, params={"wait": "false"}).raise_for_status()
        post_times.append(time.perf_counter() - began)
    counts = [0] * clients
    deadline = time.perf_counter() + seconds

    def hammer(slot: int) -> None:
        with httpx.Client(base_url=server.api.base_url, headers=server.api.headers) as client:
            while time.perf_counter() < deadline:
                client.get("workflows").raise_for_status()
                counts[slot] += 1

    threads = [threading.Thread(target=hammer, args=(slot,)) for slot in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"get_workflows": _percentiles(get_times), "post_run_no_wait": _percentiles(post_times),
            "get_workflows_concurrent": {"clients": clients, "requests_per_s": round(sum(counts) / seconds, 1)}}


def main() -> dict[str, Any]:
    """Run the server benchmarks, print a table, write ``bench/results/server.json``."""
    server = Server()
    try:
        results = {"trigger_latency": trigger_latency(server), "event_to_run": event_to_run(server),
                   "api_latency": api_latency(server)}
    finally:
        server.close()
    server = Server(mode="processes")
    try:
        results["trigger_latency_processes"] = trigger_latency(server)
    finally:
        server.close()
    figures = {"trigger_latency.p99_ms": results["trigger_latency"]["busy"]["p99_ms"],
               "event_to_run.p50_ms": results["event_to_run"]["p50_ms"],
               "api_get_workflows.p50_ms": results["api_latency"]["get_workflows"]["p50_ms"]}
    results["targets"] = [{"metric": key, "target_ms": target, "measured_ms": figures[key],
                           "met": figures[key] <= target} for key, target in TARGETS.items()]
    results["peers"] = PEERS
    rows = [("schedule lateness, idle", results["trigger_latency"]["idle"]),
            ("schedule lateness, busy executor", results["trigger_latency"]["busy"]),
            ("schedule lateness, idle (processes)", results["trigger_latency_processes"]["idle"]),
            ("schedule lateness, busy executor (processes)", results["trigger_latency_processes"]["busy"]),
            ("event -> first stage", results["event_to_run"]),
            ("GET workflows", results["api_latency"]["get_workflows"]),
            ("POST run (no wait)", results["api_latency"]["post_run_no_wait"])]
    print("| measure | n | p50 ms | p99 ms |\n|---|---|---|---|")
    for label, row in rows:
        print(f"| {label} | {row['n']} | {row['p50_ms']} | {row['p99_ms']} |")
    concurrent = results["api_latency"]["get_workflows_concurrent"]
    print(f"GET workflows, {concurrent['clients']} concurrent clients: {concurrent['requests_per_s']} requests/s")
    for target in results["targets"]:
        print(f"target {target['metric']} <= {target['target_ms']} ms: {target['measured_ms']} "
              f"({'met' if target['met'] else 'MISSED'})")
    print("peers fire schedules from polling loops: " + ", ".join(f"{k} {v}" for k, v in PEERS.items()))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
