"""The dashboard on 1,000,000 runs and 10,000,000 stage rows in DuckDB: every refresh query, side by side
with the raw SQL, through a real server, and the overview's first render in Chromium.

The history: 1M runs of 20 workflows over the last 365 days (88 % finished, 8 % failed with one of
100 error messages and a 900-byte traceback, the rest cancelled or interrupted), 10 stage rows per
run (one parameterized stage whose items fail in a tenth of the runs), and a year of hourly firings
of 10 schedule triggers (87,600, some late). It is generated inside DuckDB (``INSERT ... SELECT`` over
``range()``), never row by row.

Three measures, each the median of ``REPEAT`` calls after one warm-up:

- **store**: the statistic as :class:`~flowdapt.history.stats.HistoryStats` answers it (SQL compiled
  by SQLAlchemy, results as pydantic models): what the server runs for ``GET stats/{view}``;
- **raw SQL**: the same aggregation written by hand, run on the DuckDB connection, rows as tuples;
- **HTTP**: ``GET stats/{view}`` on a ``flowdapt serve`` over that file (server-side time plus a
  loopback round trip; the bar is 150 ms).

Then ``flowdapt dashboard`` reads that server and Chromium opens the overview (default range, the
last 7 days, and all time): the time from navigation to the KPIs and the timeline holding data.

Run ``python bench/dashboard.py``; results go to ``bench/results/dashboard.json``.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from flowdapt.history import HistoryStore  # noqa: E402
from flowdapt.history.stats import HistoryStats  # noqa: E402
from flowdapt.resources.loading import parse_resource  # noqa: E402

RUNS = 1_000_000
STAGES = 10
WORKFLOWS = 20
TRIGGERS = 10
REPEAT = 7
BAR_MS = 150.0
RENDER_BAR_S = 2.0
TOKEN = "bench-token"
UID_TAIL = "-0000-4000-8000-000000000000"  # trigger uids: the trigger number, then this
RESULTS = ROOT / "bench" / "results" / "dashboard.json"
BIN = Path(sys.executable).parent


def generate(store: HistoryStore, now: datetime) -> None:
    """Fill an empty DuckDB history with the benchmark's runs, stage rows, firings and trigger rules."""
    end = now.replace(tzinfo=None, microsecond=0)
    step = 365 * 86400 * 10**6 // RUNS
    with store.engine.begin() as conn:
        duck = conn.connection.driver_connection
        duck.execute(f"""
            INSERT INTO runs
            WITH base AS (SELECT i, hash(i) AS h,
                                 TIMESTAMP '{end}' - INTERVAL 365 DAY + to_microseconds(CAST(i AS BIGINT) * {step}) AS started
                          FROM range({RUNS}) t(i))
            SELECT format('{{:032x}}', i), 'run-' || format('{{:032x}}', i), 'wf' || CAST(h % {WORKFLOWS} AS VARCHAR),
                   ['manual', 'api', 'trigger', 'notebook'][CAST(h // 20 % 4 AS INTEGER) + 1],
                   CASE WHEN h // 80 % 100 < 88 THEN 'finished' WHEN h // 80 % 100 < 96 THEN 'failed'
                        WHEN h // 80 % 100 < 98 THEN 'cancelled' ELSE 'interrupted' END,
                   'local', 'default', '{{}}', NULL,
                   CASE WHEN h // 80 % 100 >= 88 AND h // 80 % 100 < 96 THEN
                     '{{"type": "' || ['ValueError', 'KeyError', 'TimeoutError', 'RuntimeError'][CAST(h // 8000 % 4 AS INTEGER) + 1]
                     || '", "message": "failure ' || CAST(h // 32000 % 25 AS VARCHAR) || '", "traceback": "'
                     || repeat('Traceback line ', 60) || '", "stage": "s3"}}' END,
                   started, started + to_microseconds(CAST(1000000 * (1 + h // 800000 % 600) AS BIGINT)),
                   1 + h // 800000 % 600, NULL
            FROM base""")
        duck.execute(f"""
            INSERT INTO stage_runs
            SELECT r.uid || ':s' || CAST(p AS VARCHAR) || ':1', r.uid, r.workflow, 's' || CAST(p AS VARCHAR), p,
                   CASE WHEN p = 5 THEN 'parameterized' ELSE 'simple' END, 1,
                   CASE WHEN r.state = 'failed' AND p = 3 THEN 'failed' ELSE 'finished' END,
                   r.started_at + to_microseconds(CAST(p * r.duration * 100000 AS BIGINT)),
                   r.started_at + to_microseconds(CAST((p + 1) * r.duration * 100000 AS BIGINT)),
                   r.duration / 10 * (1 + p % 3), NULL,
                   CASE WHEN p = 5 THEN 8 END, CASE WHEN p = 5 THEN 8 ELSE 0 END,
                   CASE WHEN p = 5 AND hash(r.uid) % 10 = 0 THEN 1 ELSE 0 END,
                   CASE WHEN p = 5 AND hash(r.uid) % 10 = 0 THEN '[{{"index": ' || CAST(hash(r.uid) // 10 % 8 AS VARCHAR)
                        || ', "type": "ValueError", "message": "bad item"}}]' END,
                   NULL
            FROM runs r, range({STAGES}) s(p)""")
        hour = end.replace(minute=0, second=0)
        duck.execute(f"""
            INSERT INTO trigger_firings
            SELECT 'f' || CAST(k AS VARCHAR) || '-' || CAST(i AS VARCHAR), 'schedule-' || CAST(k AS VARCHAR),
                   TIMESTAMP '{hour}' - to_microseconds(CAST(i AS BIGINT) * 3600000000)
                     + to_microseconds(CASE WHEN hash(i * 31 + k) % 200 = 0 THEN 5000000 ELSE 3000 END),
                   'run_workflow', NULL, hash(i + k) % 500 <> 0, NULL,
                   TIMESTAMP '{hour}' - to_microseconds(CAST(i AS BIGINT) * 3600000000)
            FROM range({TRIGGERS}) a(k), range(8760) b(i) WHERE hash(i * 7 + k) % 300 <> 0""")
        # The schedules fired this hour already: the server's trigger service does not fire them again.
        duck.execute(f"INSERT INTO trigger_state SELECT format('{{:08x}}', k) || '{UID_TAIL}', TIMESTAMP '{hour}', "
                     f"NULL, NULL FROM range({TRIGGERS}) a(k)")
    year_ago = (now - timedelta(days=366)).isoformat()
    store.apply([parse_resource({
        "kind": "trigger_rule", "metadata": {"name": f"schedule-{k}", "uid": f"{k:08x}{UID_TAIL}",
                                             "created_at": year_ago, "updated_at": year_ago},
        "spec": {"type": "schedule", "rule": ["0 * * * *"], "action": {"target": "run_workflow",
                                                                       "parameters": {"workflow": "wf0"}}}})
        for k in range(TRIGGERS)])


def raw_queries(since: datetime | None) -> dict[str, tuple[str, list[Any]]]:
    """The refresh queries written by hand for DuckDB: (SQL, parameters), by view."""
    window = "started_at >= ?" if since is not None else "TRUE"
    fired = "fired_at >= ?" if since is not None else "TRUE"
    arg = [since.replace(tzinfo=None)] if since is not None else []
    return {
        "summary": (f"""SELECT count(*), count(*) FILTER (state = 'pending'), count(*) FILTER (state = 'running'),
                        count(*) FILTER (state = 'finished'), count(*) FILTER (state = 'failed'),
                        count(*) FILTER (state = 'cancelled'), count(*) FILTER (state = 'interrupted'),
                        avg(CASE WHEN state NOT IN ('pending', 'running') THEN duration END),
                        quantile_cont(CASE WHEN state NOT IN ('pending', 'running') THEN duration END, [0.5, 0.95])
                        FROM runs WHERE {window}""", arg),
        "timeline": (f"""SELECT date_trunc('day', started_at) AS b, state, count(*) FROM runs
                         WHERE started_at IS NOT NULL AND {window} GROUP BY b, state ORDER BY b, state""", arg),
        "daily": (f"""SELECT workflow, CAST(started_at AS DATE) AS d, count(*), count(*) FILTER (state = 'finished'),
                      count(*) FILTER (state = 'failed'), avg(duration), quantile_cont(duration, [0.5, 0.95])
                      FROM runs WHERE state NOT IN ('pending', 'running') AND started_at IS NOT NULL AND {window}
                      GROUP BY workflow, d ORDER BY workflow, d""", arg),
        "workflows": (f"""SELECT workflow, count(*), count(*) FILTER (state NOT IN ('pending', 'running')),
                          count(*) FILTER (state = 'finished'), count(*) FILTER (state = 'failed'),
                          avg(CASE WHEN state NOT IN ('pending', 'running') THEN duration END),
                          quantile_cont(CASE WHEN state NOT IN ('pending', 'running') THEN duration END, [0.5, 0.95]),
                          max(started_at) FROM runs WHERE {window} GROUP BY workflow ORDER BY workflow""", arg),
        "errors": (f"""WITH e AS (SELECT uid, name, workflow, finished_at AS ended, json_extract_string(error, '$.type') AS t,
                                json_extract_string(error, '$.message') AS m FROM runs
                                WHERE error IS NOT NULL AND state IN ('failed', 'interrupted') AND {window})
                       SELECT t, m, count(*) AS n, max(ended), arg_max(uid, ended) FROM e GROUP BY t, m
                       ORDER BY n DESC LIMIT 10""", arg),
        "active": ("""SELECT uid, name, workflow, state, source, executor, started_at FROM runs
                      WHERE state IN ('pending', 'running') ORDER BY started_at DESC NULLS FIRST, uid LIMIT 200""", []),
        "stages": (f"""SELECT workflow, stage, count(*), count(*) FILTER (state = 'failed'), count(*) FILTER (attempt > 1),
                       min(position), avg(duration), min(duration),
                       quantile_cont(duration, [0.05, 0.25, 0.5, 0.75, 0.95]), max(duration), sum(items_failed),
                       sum(items_total) FROM stage_runs
                       WHERE state IN ('finished', 'failed') AND workflow = 'wf3' AND {window}
                       GROUP BY workflow, stage ORDER BY workflow, min(position), stage""", arg),
        "items": (f"""SELECT s.stage, CAST(json_extract_string(item.value, '$.index') AS INTEGER) AS i, count(*) AS n,
                      max(s.started_at) FROM stage_runs s, unnest(json_extract(s.item_failures, '$[*]')) AS item(value)
                      WHERE s.items_failed > 0 AND s.workflow = 'wf3' AND {window.replace('started_at', 's.started_at')}
                      GROUP BY s.stage, i ORDER BY n DESC LIMIT 20""", arg),
        "triggers": (f"""SELECT "trigger", count(*), count(*) FILTER (NOT ok),
                         count(*) FILTER (epoch(fired_at) - epoch(scheduled_at) > 1),
                         quantile_cont(epoch(fired_at) - epoch(scheduled_at), [0.5, 0.95]),
                         max(epoch(fired_at) - epoch(scheduled_at)) FROM trigger_firings WHERE {fired}
                         GROUP BY "trigger" ORDER BY "trigger\"""", arg),
        "version": ("SELECT count(*), max(started_at), max(finished_at) FROM runs", []),
    }


def store_queries(stats: HistoryStats, since: datetime | None) -> dict[str, Callable[[], Any]]:
    """The same views through the history's statistics, as the server answers them."""
    window = {"since": since} if since is not None else {}
    return {
        "summary": lambda: stats.answer("summary", **window),
        "timeline": lambda: stats.answer("timeline", bucket="day", **window),
        "daily": lambda: stats.answer("daily", **window),
        "workflows": lambda: stats.answer("workflows", **window),
        "errors": lambda: stats.answer("errors", limit=10, **window),
        "active": lambda: stats.answer("active"),
        "stages": lambda: stats.answer("stages", workflow="wf3", **window),
        "items": lambda: stats.answer("items", workflow="wf3", limit=20, **window),
        "triggers": lambda: stats.answer("triggers", **window),
        "version": lambda: stats.answer("version"),
    }


def http_params(since: datetime | None) -> dict[str, dict[str, Any]]:
    window = {"since": since.isoformat()} if since is not None else {}
    return {"summary": window, "timeline": {"bucket": "day", **window}, "daily": window, "workflows": window,
            "errors": {"limit": 10, **window}, "active": {}, "stages": {"workflow": "wf3", **window},
            "items": {"workflow": "wf3", "limit": 20, **window}, "triggers": window, "version": {}}


def timed(call: Callable[[], Any], repeat: int = REPEAT) -> float:
    """Median milliseconds of ``call()`` over ``repeat`` calls after one warm-up."""
    call()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(url: str, process: subprocess.Popen, what: str, headers: dict | None = None) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url, headers=headers, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.25)


def first_render(url: str, repeat: int = 5) -> list[float]:
    """Seconds from navigation to the overview's KPIs and timeline holding data, in a fresh page each time."""
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=os.environ.get("FLOWDAPT_CHROMIUM", "/usr/bin/chromium"),
                                             args=args)
        for _ in range(repeat + 1):
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            start = time.perf_counter()
            page.goto(url)
            page.wait_for_function("""() => {
                const docs = window.Bokeh && window.Bokeh.documents;
                const source = docs && docs.length && docs[0].get_model_by_name('timeline');
                const data = source && (source.data instanceof Map ? source.data.get('runs') : source.data.runs);
                return Boolean(data && data.length);
            }""", timeout=60_000)
            page.locator("[data-kpi=runs]").wait_for(timeout=60_000)
            times.append(time.perf_counter() - start)
            page.close()
        browser.close()
    return times[1:]  # the first also warms the browser's cache of the dashboard's JS


def main() -> dict[str, Any]:
    """Run the dashboard benchmark, print a table and write ``bench/results/dashboard.json``."""
    now = datetime.now(timezone.utc)
    week = now - timedelta(days=7)
    folder = Path(tempfile.mkdtemp(prefix="flowdapt-dashboard-bench-"))
    url = f"duckdb:///{folder / 'history.duckdb'}"
    results: dict[str, Any] = {}
    try:
        with HistoryStore(url, listen=False) as store:
            start = time.perf_counter()
            generate(store, now)
            results["generate_seconds"] = round(time.perf_counter() - start, 1)
            stats = HistoryStats(store)
            duck = store.engine.raw_connection().driver_connection
            for label, since in (("last 7 days", week), ("all time", None)):
                raw = raw_queries(since)
                ours = store_queries(stats, since)
                results[label] = {view: {"store_ms": round(timed(ours[view]), 1),
                                         "raw_ms": round(timed(lambda sql=raw[view]: duck.execute(*sql).fetchall()), 1)}
                                  for view in ours}
            duck.close()
        results["server"] = serve_and_measure(folder, url, week)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    report = {"benchmark": "dashboard", "runs": RUNS, "stage_rows": RUNS * STAGES, "cpus": os.cpu_count(),
              "python": platform.python_version(), "bar_ms": BAR_MS, "render_bar_s": RENDER_BAR_S, "results": results}
    _print(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    return report


def serve_and_measure(folder: Path, url: str, week: datetime) -> dict[str, Any]:
    """``GET stats/{view}`` latencies on a real server over the file, then Chromium on ``flowdapt dashboard``."""
    port, dash_port = _free_port(), _free_port()
    env = {**os.environ, "FLOWDAPT_APP_DIR": str(folder / "app"), "JUPYTER_TOKEN": TOKEN,
           "JUPYTER_CONFIG_DIR": str(folder / "jupyter"), "FLOWDAPT__DATABASE__URL": url, "PYTHONPATH": str(ROOT)}
    env.pop("FLOWDAPT_URL", None)
    server = subprocess.Popen([str(BIN / "flowdapt"), "serve", "--ip=127.0.0.1", f"--port={port}", "--no-browser",
                               "--allow-root", "--ServerApp.log_level=WARN"], cwd=folder, env=env,
                              stdout=subprocess.DEVNULL, stderr=(folder / "serve.log").open("wb"))
    dashboard = None
    measured: dict[str, Any] = {}
    try:
        root = f"http://127.0.0.1:{port}/"
        headers = {"Authorization": f"token {TOKEN}"}
        _wait(f"{root}flowdapt/api/v1/status", server, "flowdapt serve", headers)
        with httpx.Client(base_url=f"{root}flowdapt/api/v1/", headers=headers, timeout=120) as api:
            for label, since in (("last 7 days", week), ("all time", None)):
                measured[label] = {view: round(timed(lambda view=view, params=params: api.get(
                    f"stats/{view}", params=params).raise_for_status()), 1)
                    for view, params in http_params(since).items()}
        dashboard = subprocess.Popen([str(BIN / "flowdapt"), "dashboard", f"--port={dash_port}"],
                                     env={**env, "FLOWDAPT_URL": root, "FLOWDAPT_TOKEN": TOKEN}, cwd=folder,
                                     stdout=subprocess.DEVNULL, stderr=(folder / "dashboard.log").open("wb"))
        page = f"http://127.0.0.1:{dash_port}/"
        _wait(page, dashboard, "flowdapt dashboard")
        measured["first_render_s"] = {label: [round(value, 2) for value in first_render(page + query)]
                                      for label, query in (("last 7 days", ""), ("all time", "?range=all"))}
    finally:
        for process in (dashboard, server):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
    return measured


def _print(results: dict[str, Any]) -> None:
    print(f"\nDashboard refresh queries: {RUNS:,} runs, {RUNS * STAGES:,} stage rows, DuckDB "
          f"(generated in {results['generate_seconds']} s); median ms")
    for label in ("last 7 days", "all time"):
        print(f"\n{label}\n{'view':<12}{'store':>9}{'raw SQL':>9}{'ratio':>8}{'HTTP':>9}{'bar':>8}")
        for view, figures in results[label].items():
            http = results["server"][label][view]
            ratio = figures["store_ms"] / figures["raw_ms"] if figures["raw_ms"] else float("nan")
            print(f"{view:<12}{figures['store_ms']:>9.1f}{figures['raw_ms']:>9.1f}{ratio:>7.2f}x{http:>9.1f}"
                  f"{'ok' if http <= BAR_MS else 'OVER':>8}")
    for label, values in results["server"]["first_render_s"].items():
        print(f"overview first render in Chromium, {label}: {', '.join(f'{v:.2f}' for v in values)} s "
              f"(bar {RENDER_BAR_S} s)")


if __name__ == "__main__":
    main()
