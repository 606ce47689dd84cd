"""Captured logs: what stage attempts print and log, on every executor, capped, in the history."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from sqlalchemy import func, select, update

import flowdapt
from flowdapt.events import StageLogs
from flowdapt.history import HistoryStore, orm
from flowdapt.history.writer import prune
from flowdapt.settings import Settings, get_settings, set_settings
from tests.history_backends import BACKENDS, database_url, flowdapt_postgres_server  # noqa: F401

CHATTY = {"metadata": {"name": "chatty"}, "spec": {"stages": [
    {"name": "make", "target": "tests.ops_stages.chatty"},
    {"name": "each", "target": "tests.ops_stages.chatty_item", "type": "parameterized", "depends_on": ["make"]},
    {"name": "sum", "target": "tests.ops_stages.chatty_total", "depends_on": ["each"]},
    {"name": "boom", "target": "tests.ops_stages.print_then_fail", "depends_on": ["sum"]},
]}}


def _lines(events: list[StageLogs]) -> dict[str, list[tuple]]:
    by_stage: dict[str, list[tuple]] = {}
    for event in events:
        by_stage.setdefault(event.stage.name, []).extend((line[1], line[2], line[3], line[4]) for line in event.lines)
    return by_stage


def test_each_attempt_output_and_log_records_are_captured_on_every_executor(executor, capfd):
    events: list[StageLogs] = []
    run = flowdapt.run_workflow(CHATTY, {"n": 3}, executor=executor,
                                on_event=lambda event: events.append(event) if isinstance(event, StageLogs) else None)
    assert run.state == "failed" and run.error.stage == "boom"
    lines = _lines(events)
    assert lines["make"] == [
        ("stdout", None, None, f"hello from {executor.kind}"),
        ("stderr", None, None, "to stderr"),
        ("log", "WARNING", "tests.ops", "careful: 3 items"),
        ("log", "INFO", "flowdapt.stage", "info through the run logger"),
        ("stdout", None, None, "no newline at the end"),  # a line without its newline is kept when the attempt ends
    ]
    assert sorted(lines["each"]) == [("stdout", None, None, f"item {x}") for x in range(3)]
    assert lines["sum"] == [("stdout", None, None, "total 30")]
    assert lines["boom"] == [("stdout", None, None, "about to fail")]  # a failing attempt's output is kept too
    numbers = [event.first + index for event in events for index in range(len(event.lines))]
    assert sorted(numbers) == list(range(len(numbers)))  # each line numbered once within the run
    printed = capfd.readouterr()
    assert "hello from" not in printed.out + printed.err and "careful" not in printed.out + printed.err


def test_an_attempt_keeps_its_first_and_last_lines_and_counts_the_rest(executor):
    set_settings(Settings(app_dir=get_settings().app_dir, logs={"max_bytes": 4000}))
    events: list[StageLogs] = []
    workflow = {"metadata": {"name": "loud"}, "spec": {"stages": [
        {"name": "loud", "target": "tests.ops_stages.print_lines"}]}}
    run = flowdapt.run_workflow(workflow, {"count": 1000}, executor=executor, on_event=events.append)
    assert run.state == "finished", run.error
    lines = [line for event in events if isinstance(event, StageLogs) for line in event.lines]
    texts = [line[4] for line in lines]
    assert texts[0].startswith("line 000000") and texts[-1].startswith("line 000999")
    note = next(line for line in lines if line[1] == "flowdapt")
    kept = len(lines) - 1
    assert note[4].startswith(f"{1000 - kept} lines (") and "left out" in note[4]
    assert sum(len(text) + 1 for text in texts if not text.startswith(str(1000 - kept))) <= 4000
    assert texts.index(note[4]) < texts.index(next(text for text in texts if text.startswith("line 000999")))


def test_lines_stream_while_an_attempt_runs_on_threads():
    """On local threads a running attempt's lines are emitted within the flush interval, not at its end."""
    seen: list[float] = []
    workflow = {"metadata": {"name": "slow"}, "spec": {"stages": [
        {"name": "talk", "target": "tests.ops_stages.talk_then_sleep"}]}}
    started = time.monotonic()
    run = flowdapt.run_workflow(workflow, {"seconds": 1.5}, on_event=lambda event: seen.append(
        time.monotonic() - started) if isinstance(event, StageLogs) else None)
    assert run.state == "finished" and seen and seen[0] < 1.0


@pytest.fixture(params=BACKENDS)
def flowdapt_db_url(request, tmp_path):
    return database_url(request.param, tmp_path, request)


def test_logs_are_kept_in_the_history_filtered_read_after_a_line_and_deleted_with_their_run(flowdapt_db_url):
    with HistoryStore(flowdapt_db_url) as store:
        run = flowdapt.run_workflow(CHATTY, {"n": 2})
        store.flush()
        lines = store.run_logs(run.uid)
        assert [line.seq for line in lines] == list(range(len(lines)))
        assert [(line.stage, line.stream, line.message) for line in lines][:2] == [
            ("make", "stdout", "hello from local"), ("make", "stderr", "to stderr")]
        warning = next(line for line in lines if line.level == "WARNING")
        assert warning.logger == "tests.ops" and warning.render().endswith("make WARNING tests.ops: careful: 2 items")
        assert [line.message for line in store.run_logs(run.name, stage="sum")] == ["total 10"]
        assert store.run_logs(run.uid, after=lines[-2].seq) == lines[-1:]
        store.delete_run(run.uid)
        with store.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(orm.stage_logs)).scalar() == 0


def test_logs_are_pruned_with_their_runs(flowdapt_db_url):
    with HistoryStore(flowdapt_db_url) as store:
        run = flowdapt.run_workflow(CHATTY, {"n": 2})
        store.flush()
        assert store.run_logs(run.uid)
        with store.engine.begin() as conn:
            conn.execute(update(orm.runs).values(finished_at=datetime(2000, 1, 1)))
            prune(conn, 86400)
            assert conn.execute(select(func.count()).select_from(orm.stage_logs)).scalar() == 0
