"""Executor benchmarks: flowdapt's Dask and Ray executors against the raw engines on the same graph.

- ``fanout_10k``: a source returns ``list(range(10000))``, a map squares each item, a reduce sums.
  Raw Dask: ``client.submit`` + ``client.map`` + ``client.submit(total, futures)``; raw Ray: one
  ``ray.remote`` task per item, ``ray.get`` of the refs.
- ``pass_100mb``: a stage returns a 100 MB float64 array, two consumers read it (sum, len).
  Raw Dask: futures passed to two ``client.submit`` calls; raw Ray: an ObjectRef passed to two tasks.

Both run on one 2-worker cluster per engine (Dask ``LocalCluster`` 2×1 processes, Ray ``num_cpus=2``);
start-up excluded; median of the repetitions after a warm-up. Results: ``bench/results/executors.json``.
Run ``python bench/executors.py``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import numpy as np  # noqa: E402

import _stages  # noqa: E402

import flowdapt  # noqa: E402

FANOUT = 10_000
BIG = 100 * 1024 * 1024 // 8
REPEAT = 3
RESULTS = Path(__file__).resolve().parent / "results" / "executors.json"


def big_array() -> np.ndarray:
    """A 100 MB float64 array."""
    return np.ones(BIG)


def array_sum(array: np.ndarray) -> float:
    return float(array.sum())


def array_len(array: np.ndarray) -> int:
    return len(array)


def _workflow(*stages: dict) -> dict:
    return {"metadata": {"name": "bench"}, "spec": {"stages": list(stages)}}


FANOUT_WF = _workflow({"name": "src", "target": "_stages.numbers"},
                      {"name": "sq", "target": "_stages.square", "type": "parameterized", "depends_on": ["src"]},
                      {"name": "sum", "target": "_stages.total", "depends_on": ["sq"]})
PASS_WF = _workflow({"name": "make", "target": "executors.big_array"},
                    {"name": "total", "target": "executors.array_sum", "depends_on": ["make"]},
                    {"name": "count", "target": "executors.array_len", "depends_on": ["make"]})
EXPECTED = {"fanout_10k": sum(i * i for i in range(FANOUT)), "pass_100mb": {"total": float(BIG), "count": BIG}}


def _time(function: Callable[[], Any], expected: Any) -> list[float]:
    times = []
    for repetition in range(REPEAT + 1):  # the first is the warm-up
        started = time.perf_counter()
        result = function()
        elapsed = time.perf_counter() - started
        assert result == expected, f"wrong result {result!r}"
        if repetition:
            times.append(elapsed)
    return times


def _flowdapt(definition: dict, executor: Any, input: dict | None = None) -> Callable[[], Any]:
    def run() -> Any:
        finished = flowdapt.run_workflow(definition, input, executor=executor)
        assert finished.state == "finished", finished.error
        return finished.result
    return run


def _dask_cases() -> tuple[dict[str, dict[str, Callable[[], Any]]], Any]:
    from flowdapt.compute.executors.dask import DaskExecutor

    executor = DaskExecutor(workers=2, threads=1)
    executor.start()
    client = executor.client

    def raw_fanout() -> int:
        source = client.submit(_stages.numbers, FANOUT, pure=False)
        squares = client.map(_stages.square, source.result(), pure=False)
        return client.submit(_stages.total, squares, pure=False).result()

    def raw_pass() -> dict:
        array = client.submit(big_array, pure=False)
        total, count = client.gather([client.submit(array_sum, array, pure=False),
                                      client.submit(array_len, array, pure=False)])
        return {"total": total, "count": count}

    cases = {"fanout_10k": {"flowdapt": _flowdapt(FANOUT_WF, executor, {"n": FANOUT}), "raw": raw_fanout},
             "pass_100mb": {"flowdapt": _flowdapt(PASS_WF, executor), "raw": raw_pass}}
    return cases, executor


def _ray_cases() -> tuple[dict[str, dict[str, Callable[[], Any]]], Any]:
    import ray

    from flowdapt.compute.executors.ray import RayExecutor

    executor = RayExecutor(num_cpus=2, object_store_memory="1GB")
    executor.start()
    numbers, square, total = (ray.remote(f) for f in (_stages.numbers, _stages.square, _stages.total))
    make, summed, length = (ray.remote(f) for f in (big_array, array_sum, array_len))

    def raw_fanout() -> int:
        items = ray.get(numbers.remote(FANOUT))
        return ray.get(total.remote(ray.get([square.remote(item) for item in items])))

    def raw_pass() -> dict:
        array = make.remote()
        total_value, count = ray.get([summed.remote(array), length.remote(array)])
        return {"total": total_value, "count": count}

    cases = {"fanout_10k": {"flowdapt": _flowdapt(FANOUT_WF, executor, {"n": FANOUT}), "raw": raw_fanout},
             "pass_100mb": {"flowdapt": _flowdapt(PASS_WF, executor), "raw": raw_pass}}
    return cases, executor


def main() -> dict[str, Any]:
    """Run every case on Dask then Ray, print ratios, write the JSON results."""
    rows = []
    for engine, build in (("dask", _dask_cases), ("ray", _ray_cases)):
        cases, executor = build()
        try:
            for benchmark, runs in cases.items():
                ours = statistics.median(_time(runs["flowdapt"], EXPECTED[benchmark]))
                raw = statistics.median(_time(runs["raw"], EXPECTED[benchmark]))
                rows.append({"benchmark": benchmark, "engine": engine, "flowdapt_s": round(ours, 4),
                             "raw_s": round(raw, 4), "ratio": round(ours / raw, 3)})
                print(f"{benchmark:<11} {engine:<5} flowdapt {ours * 1000:9.1f} ms   raw {raw * 1000:9.1f} ms   "
                      f"ratio {ours / raw:6.3f}", flush=True)
        finally:
            executor.close()
    report = {"when": datetime.now(timezone.utc).isoformat(), "python": platform.python_version(),
              "cpus": os.cpu_count(), "repeat": REPEAT, "results": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
