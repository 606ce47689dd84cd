"""The live run view: its widgets' traitlets follow a run while it goes."""

from __future__ import annotations

import flowdapt
from flowdapt.notebook.widget import RunView, run_summary

WORKFLOW = {"metadata": {"name": "fan"}, "spec": {"stages": [
    {"name": "make", "target": "tests.stages.numbers"},
    {"name": "each", "target": "tests.stages.interval", "type": "parameterized", "depends_on": ["make"]},
]}}


def test_view_follows_stage_states_and_item_progress():
    view = RunView(min_interval=0)
    statuses: list[str] = []
    view.status.observe(lambda change: statuses.append(change["new"]), names="value")
    progress: list[int] = []

    def on_event(event):
        view.on_event(event)
        row = view.rows.get("each")
        if row is not None and row.bar.value not in progress[-1:]:
            progress.append(row.bar.value)

    run = flowdapt.run_workflow(WORKFLOW, {"n": 4}, on_event=on_event)
    assert run.state == "finished"
    assert any("running" in status for status in statuses) and "finished" in statuses[-1]
    assert progress[0] < progress[-1] == 4  # the bar moved during the run
    row = view.rows["each"]
    assert row.bar.max == 4 and row.bar.layout.visibility == "visible" and row.bar.bar_style == "success"
    assert "4/4 items" in row.label.value and "finished" in view.rows["make"].label.value
    assert view.rows["make"].bar.layout.visibility == "hidden"
    assert "result:" in view.outcome.value


def test_failed_run_names_the_failing_stage():
    failing = {"metadata": {"name": "bad"}, "spec": {"stages": [{"name": "boom", "target": "tests.stages.fail"}]}}
    run = flowdapt.run_workflow(failing)
    view = RunView(run)  # a finished run renders statically
    assert "failed" in view.status.value
    assert "error in stage <code>boom</code>" in view.outcome.value
    assert "failed" in view.rows["boom"].label.value


def test_view_follows_a_run_started_without_waiting():
    run = flowdapt.run_workflow(WORKFLOW, {"n": 3}, wait=False)
    view = RunView()
    seen: list[str] = []
    view.status.observe(lambda change: seen.append(change["new"]), names="value")
    view.follow(lambda: run, interval=0.05).join(10)
    assert any("running" in value for value in seen) and "finished" in seen[-1]


def test_plain_text_outside_jupyter():
    run = flowdapt.run_workflow(WORKFLOW, {"n": 2})
    text = run_summary(run)
    assert text.splitlines()[0].startswith(f"fan {run.name}: finished")
    assert "  each: finished 2/2" in text and "result: [(0, " in text


def test_the_view_shows_what_the_stages_printed_and_logged():
    from flowdapt.history.models import LogLine

    chatty = {"metadata": {"name": "chatty"}, "spec": {"stages": [{"name": "make", "target": "tests.ops_stages.chatty"}]}}
    view = RunView(min_interval=0)
    flowdapt.run_workflow(chatty, {"n": 2}, on_event=view.on_event)
    assert view.log_count == 5 and view.logs.layout.display == "" and view.logs.get_title(0) == "logs · 5 lines"
    assert "make WARNING tests.ops: careful: 2 items" in view.log_text.value and "hello from local" in view.log_text.value
    remote_run = flowdapt.run_workflow(chatty, {"n": 1})
    remote = RunView(remote_run)  # as for a run of a server: lines read as the view follows it
    served = [LogLine(seq=0, stage="make", attempt=1, time="2024-01-01T00:00:00Z", stream="stdout", message="a <b>")]
    remote.follow(lambda: remote_run, logs=lambda after: served if after < 0 else []).join(5)
    assert remote.log_count == 1 and "a &lt;b&gt;" in remote.log_text.value
