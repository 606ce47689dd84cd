"""Executor benchmarks: flowdapt's Dask and Ray executors against the raw engines on the same graph.

- ``fanout_10k``: a source returns ``list(range(10000))``, a map squares each item, a reduce sums.
  Raw Dask: ``client.submit`` + ``client.map`` + ``client.submit(total, futures)``; raw Ray: one
  ``ray.remote`` task per item, ``ray.get`` of the refs.
- ``pass_100mb``: a stage returns a 100 MB float64 array, two consumers read it (sum, len).
  Raw Dask: futures passed to two ``client.submit`` calls; raw Ray: an ObjectRef passed to two tasks.
- ``chain_1000``: 1000 sequential no-op stages, each taking the previous output. Raw Dask: each
  ``client.submit`` takes the previous future; raw Ray: each ``.remote`` call the previous ObjectRef;
  both submitted at once, then the last result fetched.

Each side is measured the way its user calls it. flowdapt: the workflow is a YAML file loaded with
``flowdapt.load`` and run with ``flowdapt.run_workflow(workflow, input, executor="dask"|"ray")``, the
executor chosen by name and configured in the environment (``FLOWDAPT__EXECUTOR__OPTIONS__WORKERS=2``...:
2 workers × 1 thread; Ray ``num_cpus=2``). Raw Dask: its own ``LocalCluster(n_workers=2, threads_per_worker=1)`` and a
``Client`` with Dask's defaults; raw Ray: ``ray.remote`` functions on the same Ray runtime (one per
process). Start-up excluded (one warm-up round). Each repetition runs flowdapt then the raw engine
back to back (so load on the box hits both alike); the table shows medians and their ratio.
Results: ``bench/results/executors.json``. Run ``python bench/executors.py [dask|ray]``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

import _stages  # noqa: E402

import flowdapt  # noqa: E402
from flowdapt.resources import Workflow  # noqa: E402
from flowdapt.compute.executors import close_shared_executors  # noqa: E402
from flowdapt.settings import set_settings  # noqa: E402

FANOUT = 10_000
BIG = 100 * 1024 * 1024 // 8
CHAIN = 1000
REPEAT = {"fanout_10k": 3, "pass_100mb": 30, "chain_1000": 5}  # timed repetitions after one warm-up
RESULTS = Path(__file__).resolve().parent / "results" / "executors.json"


def big_array() -> np.ndarray:
    """A 100 MB float64 array."""
    return np.ones(BIG)


def array_sum(array: np.ndarray) -> float:
    return float(array.sum())


def array_len(array: np.ndarray) -> int:
    return len(array)


def _workflow(name: str, *stages: dict) -> dict:
    return {"kind": "workflow", "metadata": {"name": name}, "spec": {"stages": list(stages)}}


FANOUT_WF = _workflow("fanout", {"name": "src", "target": "_stages.numbers"},
                      {"name": "sq", "target": "_stages.square", "type": "parameterized", "depends_on": ["src"]},
                      {"name": "sum", "target": "_stages.total", "depends_on": ["sq"]})
CHAIN_WF = _workflow("chain", {"name": "s0", "target": "_stages.first"},
                     *({"name": f"s{index}", "target": "_stages.step", "depends_on": [f"s{index - 1}"]}
                       for index in range(1, CHAIN)))
PASS_WF = _workflow("pass", {"name": "make", "target": "executors.big_array"},
                    {"name": "total", "target": "executors.array_sum", "depends_on": ["make"]},
                    {"name": "count", "target": "executors.array_len", "depends_on": ["make"]})
EXPECTED = {"fanout_10k": sum(i * i for i in range(FANOUT)), "pass_100mb": {"total": float(BIG), "count": BIG},
            "chain_1000": 0}


def _time(runs: dict[str, Callable[[], Any]], expected: Any, repeat: int) -> dict[str, list[float]]:
    """Wall times of each function in ``runs``, interleaved, after one warm-up round."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for repetition in range(repeat + 1):
        for name, function in runs.items():
            started = time.perf_counter()
            result = function()
            elapsed = time.perf_counter() - started
            assert result == expected, f"{name}: wrong result {result!r}"
            if repetition:
                times[name].append(elapsed)
    return times


def _loaded(definition: dict, folder: Path) -> Workflow:
    """The workflow as its user has it: a YAML file, loaded with ``flowdapt.load``."""
    path = folder / f"{definition['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(definition, sort_keys=False))
    [workflow] = flowdapt.load(path)
    return workflow


def _flowdapt(workflow: Workflow, engine: str, input: dict | None = None) -> Callable[[], Any]:
    def run() -> Any:
        finished = flowdapt.run_workflow(workflow, input, executor=engine)
        assert finished.state == "finished", finished.error
        return finished.result
    return run


def _flowdapt_cases(engine: str, folder: Path) -> dict[str, Callable[[], Any]]:
    return {"fanout_10k": _flowdapt(_loaded(FANOUT_WF, folder), engine, {"n": FANOUT}),
            "pass_100mb": _flowdapt(_loaded(PASS_WF, folder), engine),
            "chain_1000": _flowdapt(_loaded(CHAIN_WF, folder), engine, {"x": 0})}


def _dask_cases(folder: Path) -> tuple[dict[str, dict[str, Callable[[], Any]]], Callable[[], None]]:
    from distributed import Client, LocalCluster

    ours = _flowdapt_cases("dask", folder)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
    client = Client(cluster)

    def raw_fanout() -> int:
        source = client.submit(_stages.numbers, FANOUT, pure=False)
        squares = client.map(_stages.square, source.result(), pure=False)
        return client.submit(_stages.total, squares, pure=False).result()

    def raw_pass() -> dict:
        array = client.submit(big_array, pure=False)
        total, count = client.gather([client.submit(array_sum, array, pure=False),
                                      client.submit(array_len, array, pure=False)])
        return {"total": total, "count": count}

    def raw_chain() -> int:
        future = client.submit(_stages.first, 0, pure=False)
        for _ in range(1, CHAIN):
            future = client.submit(_stages.step, future, pure=False)
        return future.result()

    def close() -> None:
        client.close()
        cluster.close()

    raw = {"fanout_10k": raw_fanout, "pass_100mb": raw_pass, "chain_1000": raw_chain}
    return {name: {"flowdapt": ours[name], "raw": raw[name]} for name in raw}, close


def _ray_cases(folder: Path) -> tuple[dict[str, dict[str, Callable[[], Any]]], Callable[[], None]]:
    import ray

    from flowdapt.compute.api import resolve_executor

    ours = _flowdapt_cases("ray", folder)
    resolve_executor("ray")  # starts Ray as configured; the raw functions run on the same runtime
    numbers, square, total, first, step = (ray.remote(f) for f in (_stages.numbers, _stages.square, _stages.total,
                                                                   _stages.first, _stages.step))
    make, summed, length = (ray.remote(f) for f in (big_array, array_sum, array_len))

    def raw_fanout() -> int:
        items = ray.get(numbers.remote(FANOUT))
        return ray.get(total.remote(ray.get([square.remote(item) for item in items])))

    def raw_pass() -> dict:
        array = make.remote()
        total_value, count = ray.get([summed.remote(array), length.remote(array)])
        return {"total": total_value, "count": count}

    def raw_chain() -> int:
        ref = first.remote(0)
        for _ in range(1, CHAIN):
            ref = step.remote(ref)
        return ray.get(ref)

    raw = {"fanout_10k": raw_fanout, "pass_100mb": raw_pass, "chain_1000": raw_chain}
    return {name: {"flowdapt": ours[name], "raw": raw[name]} for name in raw}, lambda: None


# The executor each engine's flowdapt side gets by name, as flowdapt.yaml or the environment configures it.
OPTIONS = {"dask": {"workers": 2, "threads": 1}, "ray": {"num_cpus": 2, "object_store_memory": "1GB"}}


def _configure(engine: str, app_dir: Path) -> None:
    """Settings from the environment, as a user's shell would set them: ``engine`` is the executor by name."""
    for name in [name for name in os.environ if name.startswith("FLOWDAPT__EXECUTOR__")]:
        del os.environ[name]
    os.environ["FLOWDAPT_APP_DIR"] = str(app_dir)
    os.environ["FLOWDAPT__EXECUTOR__NAME"] = engine
    for option, value in OPTIONS[engine].items():
        os.environ[f"FLOWDAPT__EXECUTOR__OPTIONS__{option.upper()}"] = str(value)
    set_settings(None)  # read again on next use


def _row(benchmark: str, engine: str, times: dict[str, list[float]]) -> dict[str, Any]:
    ours, raw = statistics.median(times["flowdapt"]), statistics.median(times["raw"])
    print(f"{benchmark:<11} {engine:<5} flowdapt {ours * 1000:9.1f} ms   raw {raw * 1000:9.1f} ms   "
          f"ratio {ours / raw:6.3f}", flush=True)
    return {"benchmark": benchmark, "engine": engine, "flowdapt_s": round(ours, 4), "raw_s": round(raw, 4),
            "ratio": round(ours / raw, 3),
            "flowdapt_range_s": [round(min(times["flowdapt"]), 4), round(max(times["flowdapt"]), 4)],
            "raw_range_s": [round(min(times["raw"]), 4), round(max(times["raw"]), 4)]}


def main(engines: list[str] | None = None) -> dict[str, Any]:
    """Run every case on Dask then Ray (or the ``engines`` named), print ratios, write the JSON results."""
    rows = []
    builders = {"dask": _dask_cases, "ray": _ray_cases}
    for engine in engines or list(builders):
        with tempfile.TemporaryDirectory(prefix="flowdapt-bench-") as tmp:
            _configure(engine, Path(tmp) / "app")
            cases, close = builders[engine](Path(tmp))
            try:
                for benchmark, runs in cases.items():
                    times = _time(runs, EXPECTED[benchmark], REPEAT[benchmark])
                    rows.append(_row(benchmark, engine, times))
            finally:
                close()
                close_shared_executors()
    report = {"when": datetime.now(timezone.utc).isoformat(), "python": platform.python_version(),
              "cpus": os.cpu_count(), "repeat": REPEAT, "results": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main(sys.argv[1:] or None)
