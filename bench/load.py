"""Load on a real ``flowdapt serve`` (127.0.0.1 only, bounded loops): figures, and counts proving nothing
was lost.

- ``events``: ``POST events`` at 1,000/s for ``LOAD_SECONDS`` (60 by default) from four client
  threads into five condition triggers; one event in 500 matches one of them. Latency of the POST,
  the rate reached, and firings recorded == matching events sent.
- ``schedules``: 200 schedule triggers due in the same second, every 5 s for 16 s: lateness of every
  firing, and firings recorded == 200 per due time, none twice.
- ``submissions``: ``POST workflows/quick/run?wait=false`` at 500/s for 10 s from four threads:
  latency, the rate reached, and every run recorded and finished.
- ``busy_lateness``: a ``* * * * * *`` schedule while four CPU-bound runs go on, three times:
  p99 lateness of each repetition against the bar (≤ 50 ms in every repetition).

Run ``python bench/load.py`` (``LOAD_SECONDS=10`` for a shorter events phase); results go to
``bench/results/load.json``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from datetime import datetime
from typing import Any, Callable

import httpx

from server import RESULTS, Server, _percentiles, _trigger, _workflow, trigger_latency

LOAD_SECONDS = float(os.environ.get("LOAD_SECONDS", "60"))
LATENESS_BAR_MS = 50.0
RESULT_FILE = RESULTS.parent / "load.json"


def _paced(server: Server, rate: float, seconds: float, threads: int,
           send: Callable[[httpx.Client, int], httpx.Response]) -> tuple[list[float], int, float]:
    """Call ``send(client, index)`` ``rate`` times a second for ``seconds`` from ``threads`` threads; the
    latencies, how many calls failed, and the rate reached."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    failures = [0] * threads
    started = time.perf_counter()
    total = int(rate * seconds)

    def worker(slot: int) -> None:
        with httpx.Client(base_url=server.api.base_url, headers=server.api.headers, timeout=60) as client:
            for index in range(slot, total, threads):
                due = started + index / rate
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                began = time.perf_counter()
                response = send(client, index)
                latencies[slot].append(time.perf_counter() - began)
                failures[slot] += response.status_code >= 300

    workers = [threading.Thread(target=worker, args=(slot,)) for slot in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - started
    return [value for row in latencies for value in row], sum(failures), round(total / elapsed, 1)


def events(server: Server, seconds: float = LOAD_SECONDS, rate: float = 1000.0) -> dict[str, Any]:
    """Events into condition triggers: every matching event fires its trigger once."""
    server.apply(*(_trigger(f"on-{index}", "condition", {"and": [
        {"eq": [{"var": "type"}, "bench.load"]}, {"eq": [{"var": "data.tag"}, f"fire-{index}"]}]}, "quick")
        for index in range(5)))
    sent = Counter()

    def send(client: httpx.Client, index: int) -> httpx.Response:
        tag = f"fire-{(index // 500) % 5}" if index % 500 == 0 else "quiet"
        if tag != "quiet":
            sent[tag] += 1
        return client.post("events", json={"type": "bench.load", "data": {"i": index, "tag": tag}})

    latencies, failed, reached = _paced(server, rate, seconds, 4, send)
    expected = sum(sent.values())
    deadline = time.monotonic() + 60
    while (fired := _firing_count(server, [f"on-{index}" for index in range(5)])) < expected:
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return {"post": _percentiles(latencies), "rate_asked": rate, "rate_reached": reached, "failed": failed,
            "matching_events": expected, "firings": fired, "nothing_lost": fired == expected and not failed}


def _firing_count(server: Server, triggers: list[str]) -> int:
    return sum(len(server.api.get(f"triggers/{name}/firings", params={"limit": 10_000}).json()) for name in triggers)


def schedules(server: Server, count: int = 200, seconds: float = 16.0, every: int = 5) -> dict[str, Any]:
    """``count`` schedules due in the same second, every ``every`` seconds: lateness of each firing, and each
    (trigger, time) of the window fired exactly once."""
    server.apply(_workflow("noop", "bench._stages.first"))
    triggers = [_trigger(f"burst-{index}", "schedule", [f"* * * * * */{every}"], "noop") for index in range(count)]
    for trigger in triggers:
        trigger["spec"]["action"] = {"target": "bench._stages.first", "parameters": {}}  # no run: the firing itself
    server.apply(*triggers)
    begin = time.time()
    time.sleep(seconds)
    stop = time.time()  # times due from here on are not counted: the triggers are being disabled
    for index in range(count):
        server.api.post(f"triggers/burst-{index}/disable")
    due = [when for when in range(int(begin) + 1, int(stop) + 1) if when % every == 0 and when < stop - 1]
    lateness, keys = [], []
    for index in range(count):
        for firing in server.api.get(f"triggers/burst-{index}/firings", params={"limit": 1000}).json():
            scheduled = datetime.fromisoformat(firing["scheduled_at"]).timestamp()
            if round(scheduled) in due:
                lateness.append(datetime.fromisoformat(firing["fired_at"]).timestamp() - scheduled)
                keys.append((index, round(scheduled)))
    return {"lateness": _percentiles(lateness), "schedules": count, "bursts": len(due), "firings": len(keys),
            "expected": count * len(due), "fired_twice": len(keys) - len(set(keys)),
            "nothing_lost": len(set(keys)) == count * len(due) and len(keys) == len(set(keys))}


def submissions(server: Server, rate: float = 500.0, seconds: float = 10.0) -> dict[str, Any]:
    """Run submissions over REST: latency, and every run recorded and finished."""
    uids: list[str] = []

    def send(client: httpx.Client, index: int) -> httpx.Response:
        response = client.post("workflows/quick/run", json={"x": index}, params={"wait": "false"})
        if response.status_code < 300:
            uids.append(response.json()["uid"])
        return response

    latencies, failed, reached = _paced(server, rate, seconds, 4, send)
    deadline = time.monotonic() + 120
    while True:
        runs = server.api.get("runs", params={"workflow": "quick", "limit": 10_000}).json()
        finished = {run["uid"] for run in runs if run["state"] == "finished"}
        if set(uids) <= finished or time.monotonic() > deadline:
            break
        time.sleep(1)
    return {"post": _percentiles(latencies), "rate_asked": rate, "rate_reached": reached, "failed": failed,
            "submitted": len(uids), "finished": len(set(uids) & finished),
            "nothing_lost": not failed and set(uids) <= finished}


def main() -> dict[str, Any]:
    """Run the load benchmarks, print a table, write ``bench/results/load.json``."""
    results: dict[str, Any] = {}
    server = Server()
    try:
        server.apply(_workflow("quick", "bench._stages.first"))
        results["events"] = events(server)
        results["submissions"] = submissions(server)
        results["schedules"] = schedules(server)
    finally:
        server.close()
    repetitions = []
    for _ in range(3):
        server = Server()
        try:
            repetitions.append(trigger_latency(server)["busy"])
        finally:
            server.close()
    results["busy_lateness"] = {"repetitions": repetitions,
                                "met_every_time": all(row["p99_ms"] <= LATENESS_BAR_MS for row in repetitions)}
    print("| load | n | p50 ms | p99 ms | rate | nothing lost |\n|---|---|---|---|---|---|")
    for label, key in (("POST events", "events"), ("POST run (no wait)", "submissions")):
        row = results[key]
        print(f"| {label} | {row['post']['n']} | {row['post']['p50_ms']} | {row['post']['p99_ms']} | "
              f"{row['rate_reached']}/s of {row['rate_asked']}/s | {row['nothing_lost']} |")
    row = results["schedules"]
    print(f"| {row['schedules']} schedules due in the same second ({row['bursts']} times): lateness | "
          f"{row['lateness']['n']} | "
          f"{row['lateness']['p50_ms']} | {row['lateness']['p99_ms']} | - | {row['nothing_lost']} |")
    for index, row in enumerate(repetitions, 1):
        print(f"| schedule lateness, 4 CPU-bound runs, repetition {index} | {row['n']} | {row['p50_ms']} | "
              f"{row['p99_ms']} | - | - |")
    print(f"lateness p99 <= {LATENESS_BAR_MS} ms in every repetition: "
          f"{'met' if results['busy_lateness']['met_every_time'] else 'MISSED'}")
    RESULT_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULT_FILE.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
