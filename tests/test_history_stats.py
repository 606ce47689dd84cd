"""The dashboard's data: ``GET stats/{view}`` on DuckDB, SQLite and PostgreSQL, against numbers computed here."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

import flowdapt
from flowdapt.client import Client
from flowdapt.errors import FlowdaptError
from flowdapt.history import HistoryStore
from flowdapt.history.stats import HistoryStats
from flowdapt.resources import catalog
from flowdapt.resources.loading import loads
from flowdapt.settings import Settings, set_settings
from tests.dashboard_history import FAILED_HOURS, HOURLY, LATE_HOURS, MISSING_HOURS, aware, make_history, pct
from tests.flowdapt_server import error_of, jp_flowdapt, jp_flowdapt_api, jp_server_config  # noqa: F401
from tests.history_backends import BACKENDS, database_url, flowdapt_postgres_server  # noqa: F401

pytest_plugins = ("pytest_jupyter.jupyter_server",)


@pytest.fixture(params=BACKENDS)
def flowdapt_stats(request, tmp_path, flowdapt_app_dir):
    """A server on a fresh database of each backend holding :func:`make_history`'s rows: (api, history)."""
    set_settings(Settings(app_dir=flowdapt_app_dir, database={"url": database_url(request.param, tmp_path, request)}))
    api = request.getfixturevalue("jp_flowdapt_api")
    server = request.getfixturevalue("jp_flowdapt")
    history = make_history()
    history.load(server.web_app.settings["flowdapt_services"].store)
    return api, history


def _iso(value: datetime) -> str:
    return value.isoformat()


async def test_counts_success_rates_and_percentiles_match_the_history(flowdapt_stats):
    api, history = flowdapt_stats
    expected = history.summary()
    _, summary = await api("GET", "stats", "summary")
    assert (summary["runs"], summary["ended"]) == (expected["runs"], expected["ended"])
    assert summary["states"] == {state: expected["states"].get(state, 0) for state in summary["states"]}
    assert summary["success_rate"] == pytest.approx(expected["success_rate"])
    assert (summary["p50_duration"], summary["p95_duration"]) == (pytest.approx(expected["p50"]),
                                                                  pytest.approx(expected["p95"]))

    week = history.now - timedelta(days=7)
    for filters in ({"workflow": "etl"}, {"source": "api", "since": week}, {"state": "failed", "since": week}):
        expected = history.summary(**filters)
        params = {key: _iso(value) if isinstance(value, datetime) else value for key, value in filters.items()}
        _, summary = await api("GET", "stats", "summary", params=params)
        assert summary["runs"] == expected["runs"], filters
        assert summary["success_rate"] == pytest.approx(expected["success_rate"]), filters
        assert summary["p95_duration"] == pytest.approx(expected["p95"]), filters

    _, workflows = await api("GET", "stats", "workflows", params={"since": _iso(week)})
    assert [w["workflow"] for w in workflows] == ["etl", "report", "train"]
    for row in workflows:
        expected = history.summary(workflow=row["workflow"], since=week)
        assert (row["runs"], row["ended"], row["active"]) == (
            expected["runs"], expected["ended"], expected["runs"] - expected["ended"])
        assert row["success_rate"] == pytest.approx(expected["success_rate"])
        assert row["p50_duration"] == pytest.approx(expected["p50"])


async def test_runs_are_counted_per_hour_and_day_by_state(flowdapt_stats):
    api, history = flowdapt_stats
    for bucket in ("day", "hour"):
        _, rows = await api("GET", "stats", "timeline", params={"bucket": bucket, "workflow": "train"})
        got = {(datetime.fromisoformat(row["start"]), row["state"]): row["runs"] for row in rows}
        assert got == history.timeline(bucket, workflow="train")
        assert [row["start"] for row in rows] == sorted(row["start"] for row in rows)


async def test_daily_percentiles_per_workflow_follow_the_source_filter(flowdapt_stats):
    api, history = flowdapt_stats
    _, days = await api("GET", "stats", "daily", params={"workflow": "report", "source": "manual"})
    runs = [run for run in history.matching(workflow="report", source="manual") if run["state"] not in ("pending", "running")]
    by_day: dict = {}
    for run in runs:
        by_day.setdefault(run["started_at"].date().isoformat(), []).append(run)
    assert [day["day"] for day in days] == sorted(by_day)
    for day in days:
        ended = by_day[day["day"]]
        durations = [run["duration"] for run in ended]
        assert day["runs"] == len(ended)
        assert day["success_rate"] == pytest.approx(sum(run["state"] == "finished" for run in ended) / len(ended))
        assert day["p95_duration"] == pytest.approx(pct(durations, 95))


async def test_errors_are_grouped_by_type_and_message_with_their_latest_run(flowdapt_stats):
    api, history = flowdapt_stats
    _, groups = await api("GET", "stats", "errors", params={"limit": 10})
    assert [(g["type"], g["message"], g["runs"], g["last_run_uid"]) for g in groups] == history.errors()
    assert groups[0]["stage"] == "load" and groups[0]["last_workflow"] in ("etl", "train", "report")
    _, top = await api("GET", "stats", "errors", params={"limit": 1, "workflow": "etl"})
    assert [(g["type"], g["runs"]) for g in top] == [(kind, runs) for kind, _, runs, _ in history.errors(workflow="etl")[:1]]


async def test_active_runs_are_the_queued_and_running_ones(flowdapt_stats):
    api, history = flowdapt_stats
    _, active = await api("GET", "stats", "active")
    assert [(run["state"], run["workflow"]) for run in active] == [("pending", "etl"), ("running", "train")]
    _, none = await api("GET", "stats", "active", params={"workflow": "report"})
    assert none == []


async def test_stage_distributions_failures_retries_and_failing_items(flowdapt_stats):
    api, history = flowdapt_stats
    _, stages = await api("GET", "stats", "stages", params={"workflow": "etl"})
    assert [stage["stage"] for stage in stages] == ["extract", "transform", "load"]  # in stage order
    durations = history.stage_durations("etl")
    for stage in stages:
        values = durations[stage["stage"]]
        rows = [row for row in history.stages if row["stage"] == stage["stage"]]
        assert stage["attempts"] == len(values)
        assert stage["failed"] == sum(row["state"] == "failed" for row in rows)
        assert stage["retried"] == sum(row["attempt"] > 1 for row in rows)
        for q in (5, 25, 50, 75, 95):
            assert stage[f"p{q:02d}_duration"] == pytest.approx(pct(values, q))
        assert (stage["min_duration"], stage["max_duration"]) == (pytest.approx(min(values)), pytest.approx(max(values)))
    assert stages[0]["retried"] > 0 and stages[2]["failed"] > 0

    _, items = await api("GET", "stats", "items", params={"workflow": "etl", "limit": 5})
    expected = history.item_failures("etl")
    assert {(item["stage"], item["item"]): item["failures"] for item in items} == dict(expected)
    assert items[0]["failures"] == max(expected.values()) and items[0]["message"].startswith("item ")


async def test_firings_show_lateness_and_late_failed_and_missed_schedule_times(flowdapt_stats):
    api, history = flowdapt_stats
    _, report = await api("GET", "stats", "triggers", params={"late_after": 2})
    by_trigger = {row["trigger"]: row for row in report["triggers"]}
    hourly = by_trigger[HOURLY]
    assert hourly["firings"] == 25 - len(MISSING_HOURS)
    assert (hourly["late"], hourly["failed"], hourly["missed"]) == (len(LATE_HOURS), len(FAILED_HOURS), len(MISSING_HOURS))
    scheduled = [row for row in history.firings if row["scheduled_at"] is not None]
    lateness = [(row["fired_at"] - row["scheduled_at"]).total_seconds() for row in scheduled]
    assert hourly["p95_lateness"] == pytest.approx(pct(lateness, 95), abs=1e-3)
    assert hourly["max_lateness"] == pytest.approx(max(LATE_HOURS.values()), abs=1e-3)
    assert by_trigger["on-data"]["firings"] == 3 and by_trigger["on-data"]["p50_lateness"] is None
    assert [datetime.fromisoformat(miss["scheduled_at"]) for miss in report["missed"]] == history.missed_times()
    late = {datetime.fromisoformat(row["scheduled_at"]) for row in report["firings"] if row["late"]}
    assert late == {history.hour(ago) for ago in LATE_HOURS}
    newest = report["firings"][0]
    assert newest["trigger"] == HOURLY and newest["lateness"] == pytest.approx(0.004, abs=1e-3)

    _, narrow = await api("GET", "stats", "triggers", params={"trigger": "on-data", "limit": 2})
    assert [row["trigger"] for row in narrow["firings"]] == ["on-data", "on-data"] and narrow["missed"] == []


async def test_bad_statistics_parameters_are_refused_with_the_parameter_named(flowdapt_stats):
    api, _ = flowdapt_stats
    for params, named in (({"bucket": "week"}, "bucket"), ({"state": "done"}, "state"), ({"limit": 0}, "limit"),
                          ({"since": "yesterday"}, "since"), ({"colour": "red"}, "colour")):
        code, error = await error_of(api("GET", "stats", "timeline" if "bucket" in params else "errors",
                                         params=params))
        assert code == 400 and named in error["detail"], (params, error)
    code, error = await error_of(api("GET", "stats", "nonsense"))
    assert code == 404 and error["detail"].startswith("unknown statistic 'nonsense' (known: timeline, summary")


@pytest.mark.parametrize("flowdapt_stats", ["duckdb"], indirect=True)
async def test_the_client_reads_statistics_as_models_and_the_version_moves_with_runs(flowdapt_stats, jp_flowdapt,
                                                                                      jp_base_url, jp_http_port):
    api, history = flowdapt_stats
    client = Client(f"http://localhost:{jp_http_port}{jp_base_url}", jp_flowdapt.identity_provider.token)
    try:
        summary = await asyncio.to_thread(client.stats, "summary", workflow="etl", since=history.now - timedelta(days=7))
        assert summary.runs == history.summary(workflow="etl", since=history.now - timedelta(days=7))["runs"]
        before = await asyncio.to_thread(client.stats, "version")
        assert before.runs == len(history.runs) and before.firings == len(history.firings)
        await api("POST", "workflows", body={"kind": "workflow", "metadata": {"name": "hello"},
                                             "spec": {"stages": [{"name": "hi", "target": "tests.stages.greet"}]}})
        await api("POST", "workflows", "hello", "run", body={"name": "dashboard"})
        after = await asyncio.to_thread(client.stats, "version")
        assert after.runs == before.runs + 1 and after.last_started_at > before.last_started_at
        with pytest.raises(FlowdaptError, match="unknown statistic 'nope'"):
            client.stats("nope")
    finally:
        client.close()


SQUARES = """
kind: workflow
metadata: {name: squares}
spec:
  stages:
    - {name: nums, target: tests.stages.numbers}
    - {name: sq, target: tests.stages.fail_on_odd, type: parameterized, depends_on: [nums],
       options: {allow_partial_failure: true}}
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_failed_items_of_real_runs_are_counted_per_item(backend, tmp_path, request):
    with HistoryStore(database_url(backend, tmp_path, request)) as store:
        catalog.set_catalog(store)
        store.apply(loads(SQUARES))
        for n in (4, 6):
            flowdapt.run_workflow("squares", {"n": n})
        store.flush()
        items = HistoryStats(store).answer("items", workflow="squares", since=datetime.now(timezone.utc) - timedelta(hours=1))
    assert [(item.stage, item.item, item.failures) for item in items] == [("sq", 1, 2), ("sq", 3, 2), ("sq", 5, 1)]
    assert items[0].type == "ValueError" and aware(items[0].last_at) <= datetime.now(timezone.utc)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "Asia/Kolkata"])
@pytest.mark.parametrize("expression", ["0 * * * *", "*/15 9-17 * * 1-5", "0 0 1,15 * 0", "30 2 * * *",
                                        "5 4 * * SUN", "0 0 29 2 *", "*/10 * * * * *", "0 0 L * *", "0 9 * * 5#3"])
def test_due_times_are_the_times_croniter_steps_through(expression, zone):
    from zoneinfo import ZoneInfo

    from croniter import croniter

    from flowdapt.triggers.schedule import due_times_before

    end = datetime(2024, 12, 30, 7, 13, tzinfo=timezone.utc)  # no DST change in the 60 days before
    start = end - timedelta(days=60)
    cron, stepped = croniter(expression, end.astimezone(ZoneInfo(zone))), []
    while len(stepped) < 400 and (when := cron.get_prev(datetime)) >= start:
        stepped.append(when)
    assert due_times_before([expression], end, start, zone, 400) == stepped


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])
@pytest.mark.parametrize("expression", ["* * * * * *", "*/7 1-3 * * *", "30 4 * * *", "0 * * * *"])
@pytest.mark.parametrize("end, span", [
    (datetime(2024, 3, 31, 1, 30, 0, 500_000, tzinfo=timezone.utc), timedelta(seconds=2.5)),  # Berlin springs forward
    (datetime(2024, 3, 10, 8, 0, 0, 1, tzinfo=timezone.utc), timedelta(hours=3)),  # New York springs forward
    (datetime(2024, 4, 7, 1, 0, 0, 1, tzinfo=timezone.utc), timedelta(minutes=90)),  # Lord Howe: a 30-minute change
    (datetime(2024, 6, 1, 12, 0, 0, 250_000, tzinfo=timezone.utc), timedelta(seconds=61)),
])
def test_due_times_in_windows_shorter_than_a_day_and_across_dst_changes(expression, zone, end, span):
    """A schedule's missed times are computed for short windows (a few seconds when the loop is late). Times a
    fall-back change repeats count once, at their second occurrence, where croniter steps to the first."""
    from zoneinfo import ZoneInfo

    from croniter import croniter

    from flowdapt.triggers.schedule import due_times_before

    cron, stepped = croniter(expression, end.astimezone(ZoneInfo(zone))), []
    while len(stepped) < 300 and (when := cron.get_prev(datetime)) >= end - span:
        stepped.append(when)
    assert due_times_before([expression], end, end - span, zone, 300) == stepped
