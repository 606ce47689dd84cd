"""History write throughput: 10k runs × 10 stages recorded through real engine events.

Each run is a real :class:`WorkflowRun` with ten :class:`StageRun` records (built before the
timer starts, as the engine builds them before a run); the engine's event
classes (``RunStarted``, ``StageStarted``, ``StageFinished``, ``RunFinished``) are dispatched to
the subscribed history store exactly as the runner dispatches them, with the records mutated
between events as the runner does. The timer runs from the first event to the moment the single
writer has committed everything (``store.flush()``). Figures: stage rows/s and all rows/s on
DuckDB, SQLite and PostgreSQL (a server started for the benchmark; left out when the binaries are
absent), next to a raw ``sqlite3.executemany`` of the same 100k stage rows in one transaction, and
the same events dispatched with no history subscribed: building and dispatching the engine's
events is the ceiling any listener can reach, so it is printed first.

Run ``python bench/history_write.py``; results go to ``bench/results/history_write.json``.
"""

from __future__ import annotations

import contextlib
import json
import platform
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flowdapt import events  # noqa: E402
from flowdapt.events import RunFinished, RunStarted, StageFinished, StageStarted  # noqa: E402
from flowdapt.history import HistoryStore  # noqa: E402
from flowdapt.resources.models import StageRun, WorkflowRun  # noqa: E402

RUNS = 10_000
STAGES = 10
RESULTS = ROOT / "bench" / "results" / "history_write.json"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def build_runs(runs: int = RUNS, stages: int = STAGES) -> list[WorkflowRun]:
    """Pending run records, as the engine creates them before a run starts (outside the timer)."""
    return [WorkflowRun(workflow=f"wf{number % 20}", input={"n": number},
                        stages=[StageRun(name=f"s{i}") for i in range(stages)]) for number in range(runs)]


def emit_runs(runs: list[WorkflowRun]) -> None:
    """Run each record through its lifecycle, dispatching the engine's events to the subscribed listeners."""
    listeners = events.listeners()
    dispatch = events.dispatch
    for number, run in enumerate(runs):
        run.state, run.started_at = "running", _now()
        dispatch(RunStarted(run=run), listeners)
        for record in run.stages:
            record.state, record.attempts, record.started_at = "running", 1, _now()
            dispatch(StageStarted(run=run, stage=record), listeners)
            record.state, record.finished_at = "finished", _now()
            dispatch(StageFinished(run=run, stage=record), listeners)
        run.state, run.result, run.finished_at = "finished", number, _now()
        dispatch(RunFinished(run=run), listeners)


def measure_store(url: str) -> dict:
    """Rows/s of the history store at ``url`` for the full 10k × 10 load."""
    with HistoryStore(url) as store:
        emit_runs(build_runs(50))  # warm up connections and code paths
        store.flush()
        runs = build_runs()
        start = time.perf_counter()
        emit_runs(runs)
        emitted = time.perf_counter() - start
        store.flush()
        elapsed = time.perf_counter() - start
        assert store.status().runs == RUNS + 50
    stage_rows = RUNS * STAGES
    return {"seconds": elapsed, "emit_seconds": emitted, "stage_rows_per_s": stage_rows / elapsed,
            "rows_per_s": (stage_rows + RUNS) / elapsed}


def measure_events_only() -> dict:
    """The same events with no history subscribed: what the engine's event path alone allows (the ceiling)."""
    runs = build_runs()
    start = time.perf_counter()
    emit_runs(runs)
    elapsed = time.perf_counter() - start
    stage_rows = RUNS * STAGES
    return {"seconds": elapsed, "stage_rows_per_s": stage_rows / elapsed, "rows_per_s": (stage_rows + RUNS) / elapsed}


def measure_sqlite_baseline(path: Path) -> dict:
    """Raw ``sqlite3.executemany`` of the same stage rows, one transaction, no events, no ORM."""
    now = _now().replace(tzinfo=None).isoformat(sep=" ")
    rows = [(f"{r:032x}:s{i}:1", f"{r:032x}", f"wf{r % 20}", f"s{i}", i, "simple", 1, "finished", now, now, 0.001,
             None, None, 0, 0, None, None) for r in range(RUNS) for i in range(STAGES)]
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
def _postgres():
    try:
        from tests.history_backends import new_postgres_database, postgres_server
    except ImportError:
        yield None
        return
    try:
        with postgres_server() as server:
            yield new_postgres_database(server)
    except FileNotFoundError:
        yield None


def main() -> dict:
    """Run the write benchmark, print a table and write ``bench/results/history_write.json``."""
    results: dict[str, dict] = {"engine events only, no history (ceiling)": measure_events_only()}
    with tempfile.TemporaryDirectory() as tmp:
        results["duckdb (flowdapt store)"] = measure_store(f"duckdb:///{tmp}/h.duckdb")
        results["sqlite (flowdapt store)"] = measure_store(f"sqlite:///{tmp}/h.db")
        with _postgres() as url:
            if url is not None:
                results["postgresql (flowdapt store)"] = measure_store(url)
        results["sqlite3.executemany (raw baseline)"] = measure_sqlite_baseline(Path(tmp) / "raw.db")
    print(f"\nHistory writes: {RUNS:,} runs x {STAGES} stages ({RUNS * STAGES:,} stage rows) via engine events")
    raw = results["sqlite3.executemany (raw baseline)"]["stage_rows_per_s"]
    print(f"{'backend':<44}{'seconds':>9}{'stage rows/s':>15}{'all rows/s':>13}{'vs raw':>9}")
    for name, row in results.items():
        print(f"{name:<44}{row['seconds']:>9.2f}{row['stage_rows_per_s']:>15,.0f}{row['rows_per_s']:>13,.0f}"
              f"{row['stage_rows_per_s'] / raw:>8.2f}x")
    report = {"benchmark": "history_write", "runs": RUNS, "stages_per_run": STAGES,
              "python": platform.python_version(), "machine": platform.machine(), "results": results}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
