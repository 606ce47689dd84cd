"""Dashboard queries over 1M synthetic runs (and 1M stage rows), through the history store's API.

The data: 1,000,000 finished/failed/cancelled runs of 20 workflows spread over 365 days, plus 10
stage rows for each of the newest 100,000 runs. DuckDB is bulk-loaded from Arrow tables (one
``INSERT ... SELECT`` per table, never ``executemany``); SQLite is loaded with ``executemany``,
its fast path. Every query is the store method the CLI, REST API and dashboard call; the figure is
the median of the repetitions after one warm-up call.

Run ``python bench/history_query.py``; results go to ``bench/results/history_query.json``.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from flowdapt.history import HistoryStore, orm  # noqa: E402

RUNS = 1_000_000
STAGE_RUNS = 100_000
STAGES = 10
WORKFLOWS = 20
RESULTS = ROOT / "bench" / "results" / "history_query.json"
TARGETS_MS = {"last 50 runs": 5.0, "daily success/duration per workflow (all 1M runs)": 100.0}


def synthetic_tables(seed: int = 7) -> tuple[pa.Table, pa.Table]:
    """Arrow tables of ``runs`` and ``stage_runs`` rows, columns in table order."""
    rng = np.random.default_rng(seed)
    end = np.datetime64("2024-12-31T00:00:00", "us")
    started = np.sort(end - rng.integers(0, 365 * 86400 * 10**6, RUNS).astype("timedelta64[us]"))
    duration = rng.gamma(2.0, 30.0, RUNS)
    finished = started + (duration * 10**6).astype("timedelta64[us]")
    states = rng.choice(np.array(["finished", "failed", "cancelled"]), RUNS, p=[0.9, 0.08, 0.02])
    uids = np.array([f"{i:032x}" for i in range(RUNS)])
    workflows = np.array([f"wf{i}" for i in range(WORKFLOWS)])[rng.integers(0, WORKFLOWS, RUNS)]
    empty = pa.nulls(RUNS, pa.string())
    runs = pa.table({
        "uid": uids, "name": np.char.add("run-", uids), "workflow": workflows,
        "source": np.full(RUNS, "manual"), "state": states, "executor": np.full(RUNS, "local"),
        "namespace": np.full(RUNS, "default"), "input": np.full(RUNS, "{}"), "result": empty, "error": empty,
        "started_at": started, "finished_at": finished, "duration": duration, "owner": empty,
    })
    newest = np.arange(RUNS - STAGE_RUNS, RUNS)
    run_index = np.repeat(newest, STAGES)
    position = np.tile(np.arange(STAGES), STAGE_RUNS)
    stage_names = np.char.add("s", position.astype(str))
    stage_duration = rng.gamma(2.0, 3.0, len(run_index))
    stage_started = started[run_index]
    count = len(run_index)
    stages = pa.table({
        "id": np.char.add(np.char.add(uids[run_index], ":"), np.char.add(stage_names, ":1")),
        "run_uid": uids[run_index], "workflow": workflows[run_index], "stage": stage_names,
        "position": position, "type": np.full(count, "simple"), "attempt": np.ones(count, dtype=np.int64),
        "state": states[run_index], "started_at": stage_started,
        "finished_at": stage_started + (stage_duration * 10**6).astype("timedelta64[us]"),
        "duration": stage_duration, "error": pa.nulls(count, pa.string()),
        "items_total": pa.nulls(count, pa.int64()), "items_done": np.zeros(count, dtype=np.int64),
        "items_failed": np.zeros(count, dtype=np.int64), "item_failures": pa.nulls(count, pa.string()),
        "output_notebook": pa.nulls(count, pa.string()),
    })
    return runs, stages


def load_duckdb(store: HistoryStore, tables: dict) -> None:
    """Bulk-load Arrow tables into DuckDB: one INSERT ... SELECT per table."""
    with store.engine.begin() as conn:
        duck = conn.connection.driver_connection
        for name, table in tables.items():
            duck.register("bulk", table)
            conn.exec_driver_sql(f"INSERT INTO {name} BY NAME SELECT * FROM bulk")
            duck.unregister("bulk")


def load_sqlite(store: HistoryStore, tables: dict) -> None:
    """Load SQLite with one executemany per table (timestamps as SQLAlchemy stores them)."""
    with store.engine.begin() as conn:
        raw = conn.connection.driver_connection
        for name, table in tables.items():
            columns = table.column_names
            data = [table.column(c).to_pylist() for c in columns]
            for index, column in enumerate(columns):
                if column in ("started_at", "finished_at"):
                    data[index] = [value.isoformat(sep=" ") if value else None for value in data[index]]
            marks = ",".join("?" * len(columns))
            raw.executemany(f"INSERT INTO {name} ({','.join(columns)}) VALUES ({marks})", list(zip(*data)))


def timed(call, repeat: int) -> float:
    """Median milliseconds of ``call()`` over ``repeat`` runs after one warm-up."""
    call()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def queries(store: HistoryStore) -> dict:
    """The dashboard queries, by label."""
    week = datetime(2024, 12, 31) - timedelta(days=7)
    month = datetime(2024, 12, 31) - timedelta(days=30)
    newest = store.list_runs(limit=1)[0].name
    return {
        "last 50 runs": lambda: store.list_runs(limit=50),
        "last 50 runs of one workflow": lambda: store.list_runs(workflow="wf3", limit=50),
        "failed runs, last 7 days, page 2": lambda: store.list_runs(state="failed", since=week, limit=50, offset=50),
        "one run with its stages": lambda: store.get_run(newest),
        "daily success/duration per workflow (all 1M runs)": lambda: store.daily_workflow_stats(),
        "daily success/duration, one workflow, 30 days": lambda: store.daily_workflow_stats(workflow="wf3",
                                                                                            since=month),
        "per-stage duration statistics (1M stage rows)": lambda: store.stage_stats(),
    }


def measure(url: str, loader, tables: dict, repeat: int) -> dict:
    with HistoryStore(url, listen=False) as store:
        start = time.perf_counter()
        loader(store, tables)
        load_seconds = time.perf_counter() - start
        figures = {label: timed(call, repeat) for label, call in queries(store).items()}
    return {"load_seconds": load_seconds, "ms": figures}


def main() -> dict:
    """Run the query benchmark, print a table and write ``bench/results/history_query.json``."""
    runs, stages = synthetic_tables()
    tables = {orm.runs.name: runs, orm.stage_runs.name: stages}
    with tempfile.TemporaryDirectory() as tmp:
        results = {"duckdb": measure(f"duckdb:///{tmp}/h.duckdb", load_duckdb, tables, repeat=7),
                   "sqlite": measure(f"sqlite:///{tmp}/h.db", load_sqlite, tables, repeat=3)}
    print(f"\nHistory queries over {RUNS:,} runs and {STAGE_RUNS * STAGES:,} stage rows (median ms)")
    print(f"{'query':<52}{'duckdb':>10}{'sqlite':>10}{'target':>10}")
    for label in results["duckdb"]["ms"]:
        target = TARGETS_MS.get(label)
        print(f"{label:<52}{results['duckdb']['ms'][label]:>10.1f}{results['sqlite']['ms'][label]:>10.1f}"
              f"{'≤' + format(target, 'g') if target else '':>10}")
    print(f"{'bulk load (s)':<52}{results['duckdb']['load_seconds']:>10.1f}{results['sqlite']['load_seconds']:>10.1f}")
    report = {"benchmark": "history_query", "runs": RUNS, "stage_rows": STAGE_RUNS * STAGES,
              "python": platform.python_version(), "targets_ms": TARGETS_MS, "results": results}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
