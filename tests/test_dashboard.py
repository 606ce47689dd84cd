"""The dashboard without a browser: URL filters, what each view plots and tables for a history made here,
downloads, the notebook magic, and the Lab route's authentication (the browser tests are in
``test_dashboard_browser.py``)."""

from __future__ import annotations

import io
from collections import Counter
from datetime import datetime, timedelta, timezone

import pandas as pd
import panel as pn
import pytest

from flowdapt.dashboard.app import Dashboard
from flowdapt.dashboard.filters import Filters
from flowdapt.dashboard.parts import Links
from flowdapt.dashboard.source import StoreSource
from flowdapt.history import HistoryStore
from tests.dashboard_history import LATE_HOURS, MISSING_HOURS, make_history, pct
from tests.flowdapt_server import jp_flowdapt, jp_server_config  # noqa: F401

pytest_plugins = ("pytest_jupyter.jupyter_server",)


@pytest.fixture
def flowdapt_history(tmp_path):
    """A SQLite store holding :func:`make_history`'s rows: (store, history)."""
    store = HistoryStore(f"sqlite:///{tmp_path / 'history.db'}", listen=False).open()
    history = make_history()
    history.load(store)
    yield store, history
    store.close()


def _dashboard(store, **filters) -> Dashboard:
    return Dashboard(StoreSource(store), Links("/base/"), Filters(**filters), refresh_seconds=0)


def test_filters_come_from_the_url_and_go_back_to_it():
    filters, problems = Filters.from_query({"workflow": [b"etl"], "state": [b"failed"], "range": [b"30d"],
                                            "late_after": [b"2.5"]})
    assert (filters.workflow, filters.state, filters.range, filters.late_after, problems) == ("etl", "failed", "30d", 2.5, [])
    assert filters.to_query() == "workflow=etl&state=failed&range=30d&late_after=2.5"
    opened, _ = Filters.from_query({"run": [b"etl-run-3"]})
    assert (opened.tab, opened.run) == ("run", "etl-run-3")  # ?run=<uid> opens on the run
    custom, _ = Filters.from_query({"since": [b"2024-03-01T00:00"], "until": [b"2024-03-02T00:00"]})
    since = custom.history_params(datetime.now(timezone.utc))["since"]
    assert custom.range == "custom" and since == datetime(2024, 3, 1, tzinfo=timezone.utc)
    bad, problems = Filters.from_query({"state": [b"done"], "since": [b"yesterday"], "tab": [b"nope"]})
    assert (bad.state, bad.since, bad.tab) == ("", "", "overview")
    assert [problem.split(":")[0] for problem in problems] == ["ignored state='done'", "ignored since='yesterday'",
                                                               "ignored tab='nope'"]


def test_the_overview_plots_and_tables_the_history(flowdapt_history):
    store, history = flowdapt_history
    dashboard = _dashboard(store)
    dashboard.refresh()
    overview = dashboard.view("overview")
    week = history.now - timedelta(days=7)
    expected = history.summary(since=week)
    plotted = overview.timeline.source.data
    stacked: Counter = Counter()
    for state, runs in zip(plotted["state"], plotted["runs"]):
        stacked[state] += runs
    assert stacked == expected["states"]
    assert f'data-kpi="runs">{expected["runs"]}<' in overview.kpis.object
    assert f'data-kpi="success">{expected["success_rate"]:.1%}<' in overview.kpis.object

    p50 = overview.durations.p50.data
    assert p50["workflow"] == ["etl", "report", "train"]
    etl_days: dict = {}
    for run in history.matching(workflow="etl", since=week):
        if run["duration"] is not None:
            etl_days.setdefault(run["started_at"].date(), []).append(run["duration"])
    assert p50["ys"][0] == pytest.approx([pct(etl_days[day], 50) for day in sorted(etl_days)])

    errors = overview.errors.value
    assert list(zip(errors["type"], errors["message"], errors["runs"])) == [
        (kind, message, runs) for kind, message, runs, _ in history.errors(since=week)]
    assert errors["lab_url"][0] == f"/base/lab?flowdapt-run={history.errors(since=week)[0][3]}"
    assert list(overview.active.value["state"]) == ["pending", "running"]
    assert list(overview.workflows.value["workflow"]) == ["etl", "report", "train"]


def test_the_workflow_view_shows_stage_boxes_failure_rates_and_failing_items(flowdapt_history):
    store, history = flowdapt_history
    dashboard = _dashboard(store, workflow="etl", tab="workflow", range="all")
    dashboard.refresh()
    view = dashboard.view("workflow")
    boxes = view.boxes.source.data
    durations = history.stage_durations("etl")
    assert boxes["stage"] == ["extract", "transform", "load"]
    assert boxes["p50"] == pytest.approx([pct(durations[stage], 50) for stage in boxes["stage"]])
    assert boxes["p95"] == pytest.approx([pct(durations[stage], 95) for stage in boxes["stage"]])
    rates = view.failures.source.data
    failed = Counter(row["stage"] for row in history.stages if row["state"] == "failed")
    assert rates["value"] == pytest.approx([failed[stage] / len(durations[stage]) for stage in rates["label"]])
    expected_items = history.item_failures("etl")
    assert dict(zip(view.items_chart.source.data["label"], view.items_chart.source.data["value"])) == {
        f"{stage}[{index}]": count for (stage, index), count in expected_items.items()}
    assert view.heading.object.startswith("### etl\n")


def test_the_run_view_draws_every_attempt_and_links_notebooks_and_lab(flowdapt_history):
    store, history = flowdapt_history
    retried = next(row["run_uid"] for row in history.stages if row["attempt"] == 2)
    dashboard = _dashboard(store, tab="run", run=retried)
    dashboard.refresh()
    view = dashboard.view("run")
    gantt = view.gantt.source.data
    attempts = [row for row in history.stages if row["run_uid"] == retried]
    assert sorted(zip(gantt["stage"], gantt["attempt"])) == sorted((row["stage"], row["attempt"]) for row in attempts)
    assert set(zip(gantt["stage"], gantt["label"])) >= {("extract", "#1"), ("extract", "#2")}
    assert view.gantt.figure.y_range.factors == ["load", "transform", "extract"]  # first stage on top
    stages = view.stages.value
    assert stages.set_index("stage")["notebook_url"]["load"] == f"/base/flowdapt/api/v1/runs/{retried}/stages/load/notebook"
    assert f'href="/base/lab?flowdapt-run={retried}"' in view.heading.object
    assert not view.live

    dashboard.navigate(run="no-such-run")
    assert dashboard.alert.visible and "workflow_run 'no-such-run' not found" in dashboard.alert.object


def test_the_triggers_view_marks_late_failed_and_missed_firings(flowdapt_history):
    store, history = flowdapt_history
    dashboard = _dashboard(store, tab="triggers", late_after=2.0)
    dashboard.refresh()
    view = dashboard.view("triggers")
    outcomes = Counter(view.firings.value["outcome"])
    assert (outcomes["late"], outcomes["failed"], outcomes["missed"]) == (len(LATE_HOURS), 1, len(MISSING_HOURS))
    assert sorted(view.chart.missed.data["scheduled"]) == sorted(t.replace(tzinfo=None) for t in history.missed_times())
    assert view.chart.threshold.location == 2.0
    styled = view.firings.style.to_html()
    assert "#ffcdd2" in styled and "#fff3e0" in styled  # missed and late rows stand out


def test_the_runs_table_downloads_as_csv_and_parquet(flowdapt_history):
    store, history = flowdapt_history
    dashboard = _dashboard(store, tab="runs", workflow="train", range="all")
    dashboard.refresh()
    view = dashboard.view("runs")
    expected = sorted(run["uid"] for run in history.matching(workflow="train"))
    assert sorted(view.table.value["uid"]) == expected
    csv = pd.read_csv(io.BytesIO(view.csv.callback().getvalue()))
    parquet = pd.read_parquet(view.parquet.callback())
    assert sorted(csv["uid"]) == sorted(parquet["uid"]) == expected
    assert str(parquet["started_at"].dtype) == "datetime64[us, UTC]" and parquet["duration"].notna().any()


SQUARES = """
kind: workflow
metadata: {name: squares}
spec:
  stages:
    - {name: nums, target: tests.stages.numbers}
"""


def test_the_magic_shows_the_dashboard_of_the_notebooks_history(flowdapt_app_dir):
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython() or get_ipython()
    shell.run_line_magic("load_ext", "flowdapt")
    try:
        shell.run_line_magic("flowdapt", "apply " + str(_write(flowdapt_app_dir / "squares.yaml", SQUARES)))
        runs = [shell.run_line_magic("flowdapt", "run squares --n 3") for _ in range(2)]
        shown = shell.run_line_magic("flowdapt", "dashboard --range 24h")
        html = "".join(str(part.object) for part in shown.select(pn.pane.HTML))
        assert 'data-kpi="runs">2<' in html and all(run.state == "finished" for run in runs)
        bundle = shown._repr_mimebundle_()
        assert "application/vnd.holoviews_exec.v0+json" in bundle[0] and "cdn." not in str(bundle)
    finally:
        shell.run_line_magic("unload_ext", "flowdapt")


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


async def test_the_dashboard_in_jupyter_needs_jupyter_auth(jp_flowdapt, jp_fetch):
    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as refused:
        await jp_fetch("flowdapt", "dashboard", "", headers={"Authorization": ""}, follow_redirects=False)
    assert refused.value.code in (302, 403)  # to the login page, never the dashboard (nor a 404: it is routed)
