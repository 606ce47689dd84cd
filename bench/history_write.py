"""History write throughput: 10k runs × 10 stages recorded through real engine events.

Each run is a real :class:`WorkflowRun` with ten :class:`StageRun` records (built before the
timer starts, as the engine builds them before a run); the engine's event classes
(``RunStarted``, ``StageStarted``, ``StageFinished``, ``RunFinished``) are dispatched to the
subscribed history recorder exactly as the runner dispatches them, with the records changed
between events as the runner changes them. Three measures per backend:

- **end to end**: the events are emitted while the single writer writes; the timer runs from the
  first event until everything is committed (``store.flush()``). The events are emitted by this
  benchmark far faster than the engine runs stages (over 150k stages/s against about 30k), and on
  a 2-core box emitting and writing share one GIL and two cores, so this is bounded by the
  "engine events only" ceiling printed first.
- **write path**: what recording costs: the recorder's share of the emitting thread (emitting
  with the recorder minus emitting without it, the writer not started yet) plus the writer taking
  the queued rows and committing them in batches until flushed. This is the "batched" figure of
  the target (≥ 100k stage rows/s on DuckDB).
- **commit latency**: single runs of 10 stages, one at a time: from ``RunFinished`` to its rows
  committed, p50/p99 over 200 runs.

As the benchmark protocol asks (``../shared/BENCHMARKS.md``), each throughput measure runs once on
a small load to warm up (imports, first conversions, connections), then ``REPEAT`` times on the
full load, each time into a new, empty database; the table shows the median repetition, the JSON
every repetition's rate.

Next to them: a raw ``sqlite3.executemany`` of the same 100k stage rows in one transaction.
PostgreSQL runs on a server started for the benchmark (left out when the binaries are absent).

Run ``python bench/history_write.py``; results go to ``bench/results/history_write.json``.
"""

from __future__ import annotations

import contextlib
import gc
import json
import platform
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flowdapt import events  # noqa: E402
from flowdapt.events import RunFinished, RunStarted, StageFinished, StageStarted  # noqa: E402
from flowdapt.history import HistoryStore  # noqa: E402
from flowdapt.history.store import recording  # noqa: E402
from flowdapt.resources.models import StageRun, WorkflowRun  # noqa: E402

RUNS = 10_000
REPEAT = 3
WARM_UP_RUNS = 200
STAGES = 10
RESULTS = ROOT / "bench" / "results" / "history_write.json"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def build_runs(runs: int = RUNS, stages: int = STAGES) -> list[WorkflowRun]:
    """Pending run records, as the engine creates them before a run starts (outside the timer).

    They are frozen out of the garbage collector (``gc.freeze``): the engine never holds 10k runs
    alive at once, and full collections over 220k pre-built records would otherwise cost more than
    the writes measured (``gc.unfreeze`` after each repetition).
    """
    built = [WorkflowRun(workflow=f"wf{number % 20}", input={"n": number},
                         stages=[StageRun(name=f"s{i}") for i in range(stages)]) for number in range(runs)]
    gc.freeze()
    return built


def emit_runs(runs: list[WorkflowRun]) -> None:
    """Run each record through its lifecycle, dispatching the engine's events to the subscribed listeners.

    Records change as the runner changes them: a run's fields one by one, a stage's in one
    write of its fields straight into the record per event.
    """
    listeners = events.listeners()
    dispatch = events.dispatch
    for number, run in enumerate(runs):
        run.state, run.started_at = "running", _now()
        dispatch(RunStarted(run=run), listeners)
        for record in run.stages:
            record.__dict__.update(attempts=1, state="running", started_at=_now())
            dispatch(StageStarted(run=run, stage=record), listeners)
            record.__dict__.update(state="finished", error=None, finished_at=_now())
            dispatch(StageFinished(run=run, stage=record), listeners)
        run.state, run.result, run.finished_at = "finished", number, _now()
        dispatch(RunFinished(run=run), listeners)


def _rates(runs: int, elapsed: float) -> dict:
    return {"seconds": elapsed, "stage_rows_per_s": runs * STAGES / elapsed, "rows_per_s": runs * (STAGES + 1) / elapsed}


def measure_store(url: str, runs_count: int = RUNS) -> dict:
    """End to end: rows/s of the history store at ``url`` for ``runs_count`` runs, emitted while it writes."""
    with HistoryStore(url) as store:
        emit_runs(build_runs(50))  # warm up connections and code paths
        store.flush()
        before = store.status().runs
        runs = build_runs(runs_count)
        start = time.perf_counter()
        emit_runs(runs)
        emitted = time.perf_counter() - start
        store.flush()
        elapsed = time.perf_counter() - start
        assert store.status().runs == before + runs_count
    return {**_rates(runs_count, elapsed), "emit_seconds": emitted}


def measure_write_path(url: str, runs_count: int = RUNS) -> dict:
    """The recorder's cost on the emitting thread plus the writer's batches until committed."""
    with HistoryStore(url, listen=False) as store:
        before = store.status().runs
        bare_runs, runs = build_runs(runs_count), build_runs(runs_count)
        start = time.perf_counter()
        emit_runs(bare_runs)  # the same events, no listener: subtracted below
        bare = time.perf_counter() - start
        writer, recorder = recording(store.engine)
        unsubscribe = events.subscribe(recorder)
        try:
            start = time.perf_counter()
            emit_runs(runs)
            recorder_cost = time.perf_counter() - start - bare
        finally:
            unsubscribe()
        start = time.perf_counter()
        writer.start()
        writer.flush(timeout=600)
        writing = time.perf_counter() - start
        writer.close()
        assert store.status().runs == before + runs_count
    return {**_rates(runs_count, max(recorder_cost, 0.0) + writing), "recorder_seconds": recorder_cost,
            "writer_seconds": writing}


def median_of_repeats(measure: Callable[..., dict], new_database: Callable[[], str]) -> dict:
    """``measure`` once on a small load (the warm-up), then ``REPEAT`` times on the full load, each on a new
    database: the median repetition, with every repetition's stage rows/s. The records of each repetition
    are released after it."""
    measure(new_database(), WARM_UP_RUNS)
    repeats = []
    for _ in range(REPEAT):
        repeats.append(measure(new_database()))
        gc.unfreeze()
        gc.collect()
    repeats.sort(key=lambda row: row["stage_rows_per_s"])
    return {**repeats[len(repeats) // 2], "repeats_stage_rows_per_s": [row["stage_rows_per_s"] for row in repeats]}


def measure_commit_latency(url: str, samples: int = 200) -> dict:
    """Milliseconds from a lone run's ``RunFinished`` until its rows are committed."""
    with HistoryStore(url) as store:
        emit_runs(build_runs(20))
        store.flush()
        latencies = []
        for run in build_runs(samples):
            emit_runs([run])
            start = time.perf_counter()
            store.flush()
            latencies.append((time.perf_counter() - start) * 1000)
    latencies.sort()
    return {"p50_ms": latencies[len(latencies) // 2], "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
            "max_ms": latencies[-1]}


def measure_events_only(_url: str = "", runs_count: int = RUNS) -> dict:
    """The same events with no history subscribed: what the engine's event path alone allows (the ceiling)."""
    runs = build_runs(runs_count)
    start = time.perf_counter()
    emit_runs(runs)
    return _rates(runs_count, time.perf_counter() - start)


def measure_sqlite_baseline(path: str, runs_count: int = RUNS) -> dict:
    """Raw ``sqlite3.executemany`` of the same stage rows into a new file, one transaction, no events, no ORM."""
    now = _now().replace(tzinfo=None).isoformat(sep=" ")
    rows = [(f"{r:032x}:s{i}:1", f"{r:032x}", f"wf{r % 20}", f"s{i}", i, "simple", 1, "finished", now, now, 0.001,
             None, None, 0, 0, None, None) for r in range(runs_count) for i in range(STAGES)]
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE stage_runs (id TEXT PRIMARY KEY, run_uid TEXT, workflow TEXT, stage TEXT, "
                 "position INT, type TEXT, attempt INT, state TEXT, started_at TEXT, finished_at TEXT, "
                 "duration REAL, error TEXT, items_total INT, items_done INT, items_failed INT, "
                 "item_failures TEXT, output_notebook TEXT)")
    start = time.perf_counter()
    with conn:
        conn.executemany("INSERT INTO stage_runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    elapsed = time.perf_counter() - start
    conn.close()
    return {"seconds": elapsed, "stage_rows_per_s": len(rows) / elapsed, "rows_per_s": len(rows) / elapsed}


@contextlib.contextmanager
def _postgres() -> Iterator[Callable[[], str] | None]:
    """A PostgreSQL server for the benchmark: yields a function that creates a new database on it."""
    try:
        from tests.history_backends import new_postgres_database, postgres_server
    except ImportError:
        yield None
        return
    try:
        with postgres_server() as server:
            yield lambda: new_postgres_database(server.url)
    except FileNotFoundError:
        yield None


def _new_file(folder: str, url: str) -> Callable[[], str]:
    """A function returning ``url`` formatted with a new file path in ``folder`` on each call."""
    return lambda: url.format(Path(folder) / f"history-{time.perf_counter_ns()}")


def main() -> dict:
    """Run the write benchmark, print a table and write ``bench/results/history_write.json``."""
    results = {"engine events only, no history (ceiling)": median_of_repeats(measure_events_only, str)}
    latency: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        backends = {"duckdb": _new_file(tmp, "duckdb:///{}.duckdb"), "sqlite": _new_file(tmp, "sqlite:///{}.db")}
        with _postgres() as new_postgres:
            if new_postgres is not None:
                backends["postgresql"] = new_postgres
            for name, new_database in backends.items():
                results[f"{name}: write path (recorder + batched writer)"] = median_of_repeats(measure_write_path,
                                                                                              new_database)
                results[f"{name}: end to end, emitted while writing"] = median_of_repeats(measure_store, new_database)
                latency[name] = measure_commit_latency(new_database())
        results["sqlite3.executemany (raw baseline)"] = median_of_repeats(measure_sqlite_baseline, _new_file(tmp, "{}.db"))
    print(f"\nHistory writes: {RUNS:,} runs x {STAGES} stages ({RUNS * STAGES:,} stage rows) via engine events; "
          f"median of {REPEAT} after a warm-up")
    raw = results["sqlite3.executemany (raw baseline)"]["stage_rows_per_s"]
    print(f"{'measure':<52}{'seconds':>9}{'stage rows/s':>15}{'all rows/s':>13}{'vs raw':>9}")
    for name, row in results.items():
        print(f"{name:<52}{row['seconds']:>9.2f}{row['stage_rows_per_s']:>15,.0f}{row['rows_per_s']:>13,.0f}"
              f"{row['stage_rows_per_s'] / raw:>8.2f}x")
    print(f"\n{'commit latency of one 10-stage run':<52}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, row in latency.items():
        print(f"{name:<52}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}{row['max_ms']:>9.2f}")
    report = {"benchmark": "history_write", "runs": RUNS, "stages_per_run": STAGES,
              "python": platform.python_version(), "machine": platform.machine(), "results": results,
              "commit_latency": latency}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
