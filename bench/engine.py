"""Engine benchmarks: flowdapt's local executor against raw ``concurrent.futures`` and Dask.

Two graphs, the same for every engine (stage bodies in :mod:`_stages` are no-ops on ints):

- ``chain_1000``: 1000 sequential stages, each consuming the previous output (µs per stage).
- ``fanout_10k``: a source returns ``list(range(10000))``, a map squares each item, a reduce sums
  (µs per item).

Engines: flowdapt ``LocalExecutor`` (threads and processes, ``cpus=2``); raw
``ThreadPoolExecutor(2)`` / ``ProcessPoolExecutor(2)`` (Kahn walk in done-callbacks for the chain,
``pool.map`` for the fan-out, ``chunksize=500`` on processes); Dask's threaded scheduler
(``dask.delayed``, 2 workers). Every engine is started and warmed up before timing; the engines of a
benchmark take turns, one repetition each (the shared VM this was written on changes speed by a
third within a minute); the figure is the median of the repetitions. Dask graphs are built outside
the timer (generous to Dask); flowdapt's timer covers ``run_workflow`` of an applied workflow,
validation included (a workflow object run again unchanged is validated once, see the README).

Run ``python bench/engine.py``; results go to ``bench/results/engine.json``.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import platform
import statistics
import sys
import threading
import time
from collections import deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _stages  # noqa: E402

import flowdapt  # noqa: E402
from flowdapt.compute.executors.local import LocalExecutor  # noqa: E402
from flowdapt.resources import Workflow, parse_resource  # noqa: E402

CHAIN = 1000
FANOUT = 10_000
WORKERS = 2
PROCESS_CHUNKSIZE = 500
RESULTS = Path(__file__).resolve().parent / "results" / "engine.json"
EXPECTED = {"chain_1000": 0, "fanout_10k": sum(i * i for i in range(FANOUT))}
UNITS = {"chain_1000": (CHAIN, "µs/stage"), "fanout_10k": (FANOUT, "µs/item")}


@dataclass
class Measurement:
    """Timings of one engine on one benchmark."""

    benchmark: str
    engine: str
    mode: str
    times_s: list[float] = field(default_factory=list)
    per_unit_us: float = 0.0
    vs_raw: float | None = None
    note: str = ""

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)


def timed_together(runs: dict[str, Callable[[], Any]], expected: Any) -> dict[str, list[float]]:
    """Time the engines of one benchmark in turns, so a change in the machine's speed hits them alike.

    Each engine runs once to warm up (its result checked), then the engines take turns until each
    has 5 timed repetitions (3 for an engine whose first repetition took a second or more).
    """
    for name, run in runs.items():
        result = run()
        if result != expected:
            raise AssertionError(f"{name}: wrong result {result!r}, expected {expected!r}")
    times: dict[str, list[float]] = {name: [] for name in runs}
    wanted = dict.fromkeys(runs, 5)
    while any(len(times[name]) < wanted[name] for name in runs):
        for name, run in runs.items():
            if len(times[name]) >= wanted[name]:
                continue
            gc.collect()
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
            if len(times[name]) == 1 and times[name][0] >= 1.0:
                wanted[name] = 3
    return times


# -- raw concurrent.futures --------------------------------------------------------------------------
Node = tuple[Callable[..., Any], tuple[str, ...], dict[str, Any]]


def run_dag(pool: Executor, nodes: dict[str, Node], sink: str) -> Any:
    """Walk a DAG on ``pool``: Kahn's algorithm in done-callbacks, children submitted from there.

    A future that is already done when its callback is added runs the callback at once, in the
    submitting thread: children that became ready while a thread is submitting are queued and
    submitted by its loop, not by recursion (a chain of 1000 fast stages would exceed the
    recursion limit, and ``add_done_callback`` only logs that error, so the walk would hang)."""
    dependents: dict[str, list[str]] = {name: [] for name in nodes}
    waiting: dict[str, int] = {}
    for name, (_, depends_on, _) in nodes.items():
        waiting[name] = len(depends_on)
        for dependency in depends_on:
            dependents[dependency].append(name)
    outputs: dict[str, Any] = {}
    lock = threading.Lock()
    finished = threading.Event()
    remaining = len(nodes)
    errors: list[BaseException] = []

    submitting = threading.local()  # .queue: children this thread submits next

    def submit(names: list[str]) -> None:
        queue = getattr(submitting, "queue", None)
        if queue is not None:
            queue.extend(names)
            return
        queue = submitting.queue = deque(names)
        try:
            while queue:
                function, depends_on, kwargs = nodes[name := queue.popleft()]
                future = pool.submit(function, *(outputs[d] for d in depends_on), **kwargs)
                future.add_done_callback(lambda f, name=name: on_done(name, f))
        finally:
            submitting.queue = None

    def on_done(name: str, future: Future) -> None:
        nonlocal remaining
        try:
            outputs[name] = future.result()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            errors.append(exc)
            finished.set()
            return
        ready = []
        with lock:
            remaining -= 1
            for child in dependents[name]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    ready.append(child)
            if remaining == 0:
                finished.set()
        if ready:
            submit(ready)

    submit([name for name, count in waiting.items() if count == 0])
    finished.wait()
    if errors:
        raise errors[0]
    return outputs[sink]


def raw_chain_nodes(n: int) -> dict[str, Node]:
    nodes: dict[str, Node] = {"s0": (_stages.first, (), {"x": 0})}
    for i in range(1, n):
        nodes[f"s{i}"] = (_stages.step, (f"s{i - 1}",), {})
    return nodes


def raw_fanout(pool: Executor, n: int, chunksize: int) -> int:
    """Source, ``pool.map`` over its items, reduce: each step a task on ``pool``."""
    items = pool.submit(_stages.numbers, n).result()
    squares = list(pool.map(_stages.square, items, chunksize=chunksize))
    return pool.submit(_stages.total, squares).result()


# -- flowdapt ----------------------------------------------------------------------------------------
def chain_workflow(n: int) -> Workflow:
    stages = [{"name": "s0", "target": "_stages.first"}]
    stages += [{"name": f"s{i}", "target": "_stages.step", "depends_on": [f"s{i - 1}"]} for i in range(1, n)]
    return parse_resource({"kind": "workflow", "metadata": {"name": "chain"}, "spec": {"stages": stages}})


def fanout_workflow() -> Workflow:
    return parse_resource({"kind": "workflow", "metadata": {"name": "fanout"}, "spec": {"stages": [
        {"name": "source", "target": "_stages.numbers"},
        {"name": "square", "target": "_stages.square", "type": "parameterized", "depends_on": ["source"]},
        {"name": "reduce", "target": "_stages.total", "depends_on": ["square"]},
    ]}})


def run_flowdapt(workflow: Workflow, input: dict[str, Any], executor: LocalExecutor) -> Any:
    run = flowdapt.run_workflow(workflow, input, executor=executor)
    if run.state != "finished":
        raise RuntimeError(f"flowdapt run {run.state}: {run.error}")
    return run.result


# -- dask --------------------------------------------------------------------------------------------
def dask_graphs() -> dict[str, Any] | None:
    """The two graphs as ``dask.delayed`` objects, or None without Dask."""
    try:
        from dask import delayed
    except ImportError:
        return None
    link = delayed(_stages.first)(0)
    for _ in range(1, CHAIN):
        link = delayed(_stages.step)(link)
    source = delayed(_stages.numbers)(FANOUT)
    reduce = delayed(_stages.total)([delayed(_stages.square)(source[i]) for i in range(FANOUT)])
    return {"chain_1000": link, "fanout_10k": reduce}


# -- the run -----------------------------------------------------------------------------------------
def measure_all() -> list[Measurement]:
    """Time every engine on both benchmarks; the engines of a benchmark and mode take turns."""
    results: list[Measurement] = []
    workflows = {"chain_1000": (chain_workflow(CHAIN), {}), "fanout_10k": (fanout_workflow(), {"n": FANOUT})}
    graphs = dask_graphs()
    forkserver = multiprocessing.get_context("forkserver")
    for mode, pool_class, chunksize in (("threads", ThreadPoolExecutor, 1),
                                        ("processes", ProcessPoolExecutor, PROCESS_CHUNKSIZE)):
        options = {"mp_context": forkserver} if mode == "processes" else {}
        with pool_class(max_workers=WORKERS, **options) as pool, LocalExecutor(mode=mode, cpus=WORKERS) as executor:
            nodes = raw_chain_nodes(CHAIN)
            raw = {"chain_1000": (lambda: run_dag(pool, nodes, f"s{CHAIN - 1}"), "Kahn walk in done-callbacks"),
                   "fanout_10k": (lambda: raw_fanout(pool, FANOUT, chunksize),
                                  f"pool.map chunksize={chunksize}" if chunksize > 1 else "pool.map")}
            for benchmark, (workflow, input) in workflows.items():
                runs = {"raw": raw[benchmark][0],
                        "flowdapt": lambda workflow=workflow, input=input: run_flowdapt(workflow, input, executor)}
                notes = {"raw": raw[benchmark][1], "flowdapt": ""}
                if mode == "threads" and graphs is not None:
                    import dask

                    graph = graphs[benchmark]
                    runs["dask.delayed"] = lambda graph=graph: dask.compute(
                        graph, scheduler="threads", num_workers=WORKERS)[0]
                    notes["dask.delayed"] = f"dask {dask.__version__}, graph built outside the timer"
                for engine, times in timed_together(runs, EXPECTED[benchmark]).items():
                    results.append(Measurement(benchmark, engine, mode, times, note=notes[engine]))
    rank = {("raw", "threads"): 0, ("flowdapt", "threads"): 1, ("dask.delayed", "threads"): 2,
            ("raw", "processes"): 3, ("flowdapt", "processes"): 4}
    results.sort(key=lambda m: (m.benchmark, rank[m.engine, m.mode]))
    for measurement in results:
        count, _ = UNITS[measurement.benchmark]
        measurement.per_unit_us = measurement.median_s / count * 1e6
        raw = next(m for m in results if m.benchmark == measurement.benchmark and m.engine == "raw"
                   and m.mode == measurement.mode)
        measurement.vs_raw = measurement.median_s / raw.median_s
    return results


def check_targets(results: list[Measurement]) -> list[dict[str, Any]]:
    """Our bar (BENCHMARKS.md and issue 2), each as target, measured value and pass/miss."""

    def find(benchmark: str, engine: str, mode: str) -> Measurement | None:
        return next((m for m in results if (m.benchmark, m.engine, m.mode) == (benchmark, engine, mode)), None)

    chain, fanout = find("chain_1000", "flowdapt", "threads"), find("fanout_10k", "flowdapt", "threads")
    fanout_processes = find("fanout_10k", "flowdapt", "processes")
    dask_chain = find("chain_1000", "dask.delayed", "threads")
    assert chain and fanout and fanout_processes
    checks = [
        ("chain_1000 threads ≤ 25 µs/stage", chain.per_unit_us, chain.per_unit_us <= 25),
        ("chain_1000 threads ≤ 2× raw ThreadPool", chain.vs_raw, chain.vs_raw <= 2),
        ("fanout_10k threads ≤ 20 µs/item", fanout.per_unit_us, fanout.per_unit_us <= 20),
        ("fanout_10k threads ≤ 2× raw ThreadPool", fanout.vs_raw, fanout.vs_raw <= 2),
        ("fanout_10k processes ≥ 10k items/s", 1e6 / fanout_processes.per_unit_us,
         fanout_processes.per_unit_us <= 100),
        ("fanout_10k processes ≤ 5 µs/item (ideal)", fanout_processes.per_unit_us,
         fanout_processes.per_unit_us <= 5),
    ]
    if dask_chain:
        speedup = dask_chain.median_s / chain.median_s
        checks.append(("chain_1000 threads ≥ 8× faster than dask threads", speedup, speedup >= 8))
    return [{"target": name, "value": round(value, 3), "met": bool(met)} for name, value, met in checks]


def table(results: list[Measurement]) -> str:
    """A Markdown table of the results (what the README's performance section shows)."""
    lines = ["| benchmark | engine | mode | median | per unit | vs raw (same mode) |",
             "|---|---|---|---:|---:|---:|"]
    for m in results:
        _, unit = UNITS[m.benchmark]
        lines.append(f"| {m.benchmark} | {m.engine} | {m.mode} | {m.median_s * 1e3:.1f} ms "
                     f"| {m.per_unit_us:.2f} {unit} | {m.vs_raw:.2f}× |")
    return "\n".join(lines)


def main() -> dict[str, Any]:
    """Run the engine benchmarks, print the table and targets, write ``bench/results/engine.json``."""
    results = measure_all()
    targets = check_targets(results)
    print(f"\nengine benchmarks — {os.cpu_count()} cores, Python {platform.python_version()}\n")
    print(table(results))
    print()
    for target in targets:
        print(f"  [{'met' if target['met'] else 'MISSED'}] {target['target']}: {target['value']}")
    report = {
        "benchmark": "engine",
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "results": [{**asdict(m), "median_s": m.median_s} for m in results],
        "targets": targets,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {RESULTS}")
    return report


if __name__ == "__main__":
    main()
