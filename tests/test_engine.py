"""Execution semantics (SPEC §4): the conformance suite, run on every executor of ``tests/conftest.py``."""

from __future__ import annotations

import time

import pytest

import flowdapt
from flowdapt.events import ItemsProgress, RunFinished, RunStarted, StageFinished, StageStarted

S = "tests.stages."


def workflow(*stages: dict, name: str = "wf") -> dict:
    return {"metadata": {"name": name}, "spec": {"stages": list(stages)}}


def stage(name: str, target: str, *depends_on: str, **fields) -> dict:
    return {"name": name, "target": target if "." in target else S + target, "depends_on": list(depends_on), **fields}


def wait_out(started: float, seconds: float) -> None:
    """Let a cancelled sleeper finish: threads and processes cannot be interrupted, and the
    session-wide executor should be idle for the next test."""
    time.sleep(max(0.0, started + seconds + 0.2 - time.monotonic()))


def run(definition: dict, input: dict | None = None, executor=None, **kwargs) -> flowdapt.resources.WorkflowRun:
    return flowdapt.run_workflow(definition, input, executor=executor, **kwargs)


def cancel_when_running(handle: flowdapt.resources.WorkflowRun, stage: str) -> None:
    """Cancel the run once ``stage`` is running, and wait for the run to end."""
    deadline = time.monotonic() + 10
    while handle.stage(stage).state != "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    handle.cancel()
    handle.wait(10)


# -- basics (ported from Flowdapt's test_execute.py) ----------------------------------------------

def test_execute_workflow_records_a_finished_run(executor):
    result = run(workflow(stage("s1", "numbers"), stage("s2", "square", "s1", type="parameterized")), executor=executor)
    assert result.state == "finished"
    assert result.result == [x * x for x in range(10)]
    assert result.started_at <= result.finished_at
    assert result.uid and result.name.count("-") == 2
    assert [s.state for s in result.stages] == ["finished", "finished"]
    assert result.executor == executor.kind


def test_root_stage_receives_input_filtered_to_its_signature(executor):
    result = run(workflow(stage("hi", "greet")), {"name": "ada", "unused": 1}, executor)
    assert result.result == "hello ada"


def test_root_stage_with_var_kwargs_receives_the_whole_input(executor):
    assert run(workflow(stage("echo", "kwargs_echo")), {"a": 1, "b": 2}, executor).result == {"a": 1, "b": 2}


def test_missing_required_input_fails_with_a_message_naming_stage_and_input(executor):
    result = run(workflow(stage("hi", "greet")), {"greeting": "hey"}, executor)
    assert result.state == "failed"
    assert result.error.type == "StageInputError"
    assert "'hi'" in result.error.message and "'name'" in result.error.message


def test_dependent_stages_get_outputs_positionally_in_depends_on_order(executor):
    definition = workflow(
        stage("a", "fast"), stage("b", "noop"), stage("c", "numbers"),
        stage("join", "ordered", "c", "a", "b"),
    )
    assert run(definition, executor=executor).result == [list(range(10)), "fast", None]


def test_input_is_reachable_from_every_stage_through_the_context(executor):
    definition = workflow(stage("a", "numbers"), stage("ctx", "context_info", "a"))
    result = run(definition, {"n": 3}, executor, namespace="ns1", config={"lr": 0.1})
    info = result.result
    assert info["input"] == {"n": 3}
    assert info["config"] == {"lr": 0.1}
    assert info["namespace"] == "ns1"
    assert info["run"] == result.name
    assert info["executor"] == executor.kind
    assert info["stage"] == "ctx"


def test_parameterized_stage_over_input_with_map_on(executor):
    definition = workflow(stage("double", "async_double", type="parameterized", options={"map_on": "x"}))
    assert run(definition, {"x": [1, 2, 3]}, executor).result == [2, 4, 6]


def test_parameterized_root_stage_gets_other_input_as_keywords(executor):
    definition = workflow(stage("scale", "item_with_input", type="parameterized", options={"map_on": "items"}))
    assert run(definition, {"items": [1, 2], "scale": 10}, executor).result == [10, 20]


def test_parameterized_output_keeps_input_order_over_10k_items(executor):
    definition = workflow(stage("src", "numbers"), stage("sq", "square", "src", type="parameterized"),
                          stage("sum", "total", "sq"))
    result = run(definition, {"n": 10_000}, executor)
    assert result.state == "finished"
    assert result.result == sum(x * x for x in range(10_000))
    assert result.stage("sq").items_total == 10_000
    assert result.stage("sq").items_done == 10_000


def _worker_start(executor) -> float:
    """Seconds a stage should last so that a cluster elsewhere can start a worker for it meanwhile (Ray
    starts a job's workers on demand there, a second or more on a loaded machine); none locally."""
    return 2.0 if getattr(executor, "address", None) else 0.0


def test_parameterized_items_really_run_in_parallel(executor):
    definition = workflow(stage("t", "interval", type="parameterized", options={"map_on": "x"}))
    result = run(definition, {"x": [1, 2], "seconds": 0.3 + _worker_start(executor)}, executor)
    (_, start_a, end_a), (_, start_b, end_b) = result.result
    assert start_b < end_a and start_a < end_b, "the two items did not overlap in time"


def test_parameterized_stage_with_empty_input_outputs_empty_list(executor):
    definition = workflow(stage("t", "square", type="parameterized", options={"map_on": "x"}))
    assert run(definition, {"x": []}, executor).result == []


def test_map_on_missing_from_input_fails_naming_the_option(executor):
    definition = workflow(stage("t", "square", type="parameterized", options={"map_on": "x"}))
    result = run(definition, {"y": [1]}, executor)
    assert result.state == "failed"
    assert "map_on" in result.error.message and "'x'" in result.error.message


# -- failures -----------------------------------------------------------------------------------

def test_run_failure_records_exception_type_message_traceback_and_stage(executor):
    result = run(workflow(stage("a", "numbers"), stage("boom", "fail", "a"), stage("after", "total", "boom")),
                 executor=executor)
    assert result.state == "failed"
    assert result.error.type == "ValueError"
    assert result.error.message == "stage exploded: bad value 42"
    assert result.error.stage == "boom"
    assert "tests/stages.py" in result.error.traceback and "raise ValueError" in result.error.traceback
    assert result.stage("boom").state == "failed"
    assert result.stage("after").state == "skipped"
    assert result.result is None


def test_partial_failure_records_each_failed_item_and_keeps_the_rest_in_order(executor):
    definition = workflow(stage("odd", "fail_on_odd", type="parameterized", options={"map_on": "x"}))
    result = run(definition, {"x": list(range(7))}, executor)
    assert result.state == "finished"
    assert result.result == [0, 2, 4, 6]
    record = result.stage("odd")
    assert record.items_total == 7 and record.items_failed == 3
    assert [(f.index, f.type, f.message) for f in record.item_failures] == [
        (1, "ValueError", "odd item 1"), (3, "ValueError", "odd item 3"), (5, "ValueError", "odd item 5")]
    assert "raise ValueError" in record.item_failures[0].traceback


def test_stage_whose_items_all_fail_fails_even_with_partial_failure_allowed(executor):
    definition = workflow(stage("odd", "fail_on_odd", type="parameterized", options={"map_on": "x"}))
    result = run(definition, {"x": [1, 3]}, executor)
    assert result.state == "failed"
    assert result.error.message == "odd item 1"


def test_without_partial_failure_the_first_failed_item_fails_the_run(executor):
    definition = workflow(stage("odd", "fail_on_odd", type="parameterized",
                                options={"map_on": "x", "allow_partial_failure": False}))
    result = run(definition, {"x": [0, 2, 3, 4]}, executor)
    assert result.state == "failed"
    assert (result.error.type, result.error.message, result.error.stage) == ("ValueError", "odd item 3", "odd")
    assert result.stage("odd").item_failures[0].index == 2


# -- graph semantics ----------------------------------------------------------------------------

def test_stage_starts_as_soon_as_its_own_dependencies_finish(executor):
    definition = workflow(stage("slow", "slow_then"), stage("quick", "fast"),
                          stage("after_slow", "fast", "slow"), stage("after_quick", "fast", "quick"))
    result = run(definition, {"seconds": 1.0 + _worker_start(executor)}, executor)
    assert result.state == "finished"
    assert result.stage("after_quick").finished_at < result.stage("slow").finished_at


def test_records_show_each_stage_starting_after_its_dependencies_finished(executor):
    # Cluster executors queue a stage before its dependencies finish; its record must not say so.
    definition = workflow(stage("a", "pause"), stage("b", "pause", "a"), stage("c", "pause", "b"),
                          stage("d", "add", "b", "c"))
    result = run(definition, {"x": 1}, executor)
    assert result.state == "finished" and result.result == 2
    for name, dependencies in (("b", "a"), ("c", "b"), ("d", "bc")):
        for dependency in dependencies:
            assert result.stage(name).started_at >= result.stage(dependency).finished_at, (name, dependency)


def test_a_stage_never_runs_when_a_dependency_fails(executor, tmp_path):
    marker = tmp_path / "ran"
    definition = workflow(stage("boom", "fail_after"), stage("after", "touch", "boom"), stage("last", "touch", "after"))
    result = run(definition, {"seconds": 0.3, "marker": str(marker)}, executor)
    assert result.state == "failed" and result.error.stage == "boom"
    assert (result.stage("after").state, result.stage("last").state) == ("skipped", "skipped")
    time.sleep(0.3)
    assert not marker.exists(), "a stage ran although its dependency failed"


def test_a_stage_after_a_retried_dependency_gets_the_retried_output(executor, tmp_path):
    definition = workflow(stage("flaky", "flaky", options={"retries": 1}), stage("after", "square", "flaky"))
    result = run(definition, {"counter": str(tmp_path / "calls"), "failures": 1}, executor)
    assert result.state == "finished" and result.result == 4
    assert result.stage("flaky").attempts == 2 and result.stage("after").attempts == 1


def test_result_of_several_sinks_is_a_dict_by_stage_name(executor):
    definition = workflow(stage("a", "numbers"), stage("left", "total", "a"), stage("right", "first", "a"))
    assert run(definition, {"n": 4}, executor).result == {"left": 6, "right": 0}


def test_workflow_without_dependencies_between_two_stages(executor):
    result = run(workflow(stage("one", "noop"), stage("two", "noop")), executor=executor)
    assert result.state == "finished" and result.result == {"one": None, "two": None}


def test_python_callables_can_be_stage_targets(executor):
    definition = workflow({"name": "src", "target": lambda n=3: list(range(n))},
                          {"name": "inc", "target": lambda x: x + 1, "type": "parameterized", "depends_on": ["src"]})
    assert run(definition, {"n": 3}, executor).result == [1, 2, 3]


# -- object store across stages and runs ------------------------------------------------------------

def test_object_store_shares_objects_between_stages_and_runs(executor):
    definition = workflow(stage("put", "put_model"), stage("get", "get_model", "put"))
    assert run(definition, executor=executor, namespace="shared").result == {"weights": [1, 2, 3]}
    reader = workflow(stage("get", "get_model", type="parameterized", options={"map_on": "x"}), name="reader")
    assert run(reader, {"x": [1]}, executor, namespace="shared").result == [{"weights": [1, 2, 3]}]


def test_object_store_namespaces_are_isolated(executor):
    run(workflow(stage("put", "put_model")), executor=executor, namespace="one")
    reader = workflow(stage("get", "get_model", type="parameterized", options={"map_on": "x"}), name="reader")
    result = run(reader, {"x": [1]}, executor, namespace="two")
    assert result.state == "failed"
    assert result.stage("get").item_failures[0].message == "\"object 'model' not found in namespace 'two'\""


# -- events ------------------------------------------------------------------------------------

def test_events_report_the_run_as_it_goes(executor):
    events = []
    definition = workflow(stage("src", "numbers"), stage("sq", "square", "src", type="parameterized"))
    run(definition, {"n": 100}, executor, on_event=lambda event: events.append((type(event), event.to_dict())))
    kinds = [kind for kind, _ in events]
    assert kinds[0] is RunStarted and kinds[-1] is RunFinished
    assert kinds.count(StageStarted) == 2 and kinds.count(StageFinished) == 2
    progress = [data["data"]["stage"] for kind, data in events if kind is ItemsProgress]
    assert progress and progress[-1]["items_done"] == 100 and progress[-1]["items_total"] == 100
    finished = events[-1][1]
    assert finished["type"] == "com.event.workflow.workflow_finished"
    assert finished["data"]["workflow"] == "wf" and finished["data"]["state"] == "finished"


def test_global_listeners_see_every_run(executor):
    seen = []
    unsubscribe = flowdapt.events.subscribe(lambda event: seen.append(event.type))
    try:
        run(workflow(stage("a", "noop")), executor=executor)
    finally:
        unsubscribe()
    run(workflow(stage("a", "noop")), executor=executor)
    assert seen.count("com.event.workflow.workflow_finished") == 1


def test_a_failing_listener_never_breaks_the_run(executor):
    def broken(event):
        raise RuntimeError("listener bug")

    assert run(workflow(stage("a", "fast")), executor=executor, on_event=broken).result == "fast"


# -- retries, timeouts, async, cancellation (last: cancelled calls may run on briefly) ----------------------------------------------------------

def test_retries_rerun_a_failing_stage_until_it_succeeds(executor, tmp_path):
    counter = tmp_path / "calls"
    definition = workflow(stage("flaky", "flaky", options={"retries": 2, "retry_delay": 0.2}))
    result = run(definition, {"counter": str(counter), "failures": 2}, executor)
    assert result.state == "finished" and result.result == 3
    assert result.stage("flaky").attempts == 3
    times = [float(line) for line in counter.read_text().split()]
    assert all(b - a >= 0.2 for a, b in zip(times, times[1:])), "retry_delay was not honoured"


def test_retries_give_up_with_the_last_error(executor, tmp_path):
    definition = workflow(stage("flaky", "flaky", options={"retries": 1}))
    result = run(definition, {"counter": str(tmp_path / "c"), "failures": 5}, executor)
    assert result.state == "failed"
    assert (result.error.type, result.error.message) == ("ConnectionError", "flaky call 2")
    assert result.stage("flaky").attempts == 2


def test_parameterized_retries_apply_per_item(executor, tmp_path):
    definition = workflow(stage("flaky", "flaky", type="parameterized", options={"map_on": "counter", "retries": 1}))
    result = run(definition, {"counter": [str(tmp_path / "a"), str(tmp_path / "b")], "failures": 1}, executor)
    assert result.result == [2, 2]


def test_timeout_fails_the_stage_without_waiting_for_it(executor):
    definition = workflow(stage("slow", "sleep_for", options={"timeout": 0.5}))
    started = time.monotonic()
    result = run(definition, {"seconds": 2}, executor)
    assert time.monotonic() - started < 1.5
    assert result.state == "failed"
    assert result.error.type == "StageTimeoutError"
    assert "timed out after 0.5s" in result.error.message
    wait_out(started, 2)


def test_a_stage_after_a_timed_out_dependency_never_runs(executor, tmp_path):
    marker = tmp_path / "ran"
    definition = workflow(stage("slow", "sleep_for", options={"timeout": 0.3}), stage("after", "touch", "slow"))
    started = time.monotonic()
    result = run(definition, {"seconds": 1.5, "marker": str(marker)}, executor)
    assert result.state == "failed" and result.error.type == "StageTimeoutError"
    assert result.stage("after").state == "skipped"
    wait_out(started, 2)
    assert not marker.exists(), "a stage ran after its dependency timed out"


def test_a_stage_timing_out_down_a_chain_fails_the_run_and_skips_the_rest(executor, tmp_path):
    # On local threads the chain goes on in the worker that ran its first stage: the deadline
    # still holds there.
    marker = tmp_path / "ran"
    definition = workflow(stage("first", "pause"), stage("slow", "sleep_for", "first", options={"timeout": 0.4}),
                          stage("after", "touch", "slow"))
    started = time.monotonic()
    result = run(definition, {"x": 1.5, "marker": str(marker)}, executor)
    assert time.monotonic() - started < 1.3, "the run waited for the timed-out stage"
    assert (result.state, result.error.type, result.error.stage) == ("failed", "StageTimeoutError", "slow")
    assert result.stage("after").state == "skipped"
    wait_out(started, 1.6)
    assert not marker.exists(), "a stage ran after its dependency timed out"


def test_a_stage_down_a_chain_is_retried_and_its_dependent_gets_the_retried_output(executor, tmp_path):
    definition = workflow(stage("first", "pause"), stage("flaky", "flaky", "first", options={"retries": 1}),
                          stage("after", "square", "flaky"))
    result = run(definition, {"x": str(tmp_path / "calls")}, executor)
    assert result.state == "finished" and result.result == 4
    assert [result.stage(name).attempts for name in ("first", "flaky", "after")] == [1, 2, 1]


def test_dependents_made_ready_together_run_at_the_same_time(executor):
    definition = workflow(stage("first", "pause"), stage("left", "interval", "first"),
                          stage("right", "interval", "first"), stage("join", "add", "left", "right"))
    result = run(definition, {"x": 1}, executor)
    assert result.state == "finished"
    (_, left_start, left_end), (_, right_start, right_end) = result.result[:3], result.result[3:]
    assert left_start < right_end and right_start < left_end, "left and right ran one after the other"


def test_async_stage_timeout_is_reported(executor):
    result = run(workflow(stage("slow", "async_sleep", options={"timeout": 0.3})), {"seconds": 2}, executor)
    assert result.state == "failed" and result.error.type == "StageTimeoutError"


def test_async_stages_are_awaited(executor):
    definition = workflow(stage("a", "async_double"), stage("b", "async_double", "a"))
    assert run(definition, {"x": 5}, executor).result == 20


def test_a_running_run_can_be_cancelled(executor):
    definition = workflow(stage("slow", "sleep_for"), stage("after", "total", "slow"))
    started = time.monotonic()
    handle = run(definition, {"seconds": 2}, executor, wait=False)
    cancel_when_running(handle, "slow")
    assert handle.state == "cancelled"
    assert handle.stage("slow").state == "cancelled"
    assert handle.stage("after").state == "skipped"
    assert handle.finished_at is not None
    wait_out(started, 2)


def test_a_run_cancelled_in_the_middle_of_a_chain_runs_none_of_the_rest(executor, tmp_path):
    marker = tmp_path / "ran"
    definition = workflow(stage("first", "pause"), stage("slow", "sleep_for", "first"), stage("after", "touch", "slow"))
    started = time.monotonic()
    handle = run(definition, {"x": 1.5, "marker": str(marker)}, executor, wait=False)
    cancel_when_running(handle, "slow")
    assert handle.state == "cancelled"
    assert [handle.stage(name).state for name in ("first", "slow", "after")] == ["finished", "cancelled", "skipped"]
    wait_out(started, 1.7)
    assert not marker.exists(), "a stage ran after its run was cancelled"


def test_a_failing_stage_cancels_running_siblings_and_ends_the_run_at_once(executor):
    definition = workflow(stage("slow", "sleep_for"), stage("boom", "fail"))
    started = time.monotonic()
    result = run(definition, {"seconds": 3}, executor)
    assert time.monotonic() - started < 2.7, "the run waited for the slow stage"
    assert result.state == "failed"
    assert result.stage("slow").state == "cancelled"
    wait_out(started, 3)
