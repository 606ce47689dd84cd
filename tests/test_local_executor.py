"""Local-executor specifics: resources as concurrency limits, process workers, the registry."""

from __future__ import annotations

import gc
import os
import time
import weakref

import pytest

import flowdapt
from flowdapt.compute.executors import available_executors, create_executor, shared_executor
from flowdapt.compute.executors.local import LocalExecutor
from flowdapt.errors import ExecutorError, UnknownNameError


def mapped(target: str, resources: dict | None = None, **options) -> dict:
    stage = {"name": "m", "target": f"tests.stages.{target}", "type": "parameterized",
             "options": {"map_on": "x", **options}, "resources": resources or {}}
    return {"metadata": {"name": "w"}, "spec": {"stages": [stage]}}


def overlaps(intervals) -> int:
    """The largest number of intervals running at one instant."""
    points = sorted([(start, 1) for _, start, _ in intervals] + [(end, -1) for _, _, end in intervals],
                    key=lambda p: (p[0], p[1]))
    best = current = 0
    for _, step in points:
        current += step
        best = max(best, current)
    return best


def test_resources_cpus_limits_how_many_items_run_at_once():
    with LocalExecutor(cpus=4) as executor:
        free = flowdapt.run_workflow(mapped("interval"), {"x": list(range(4)), "seconds": 0.2}, executor=executor)
        limited = flowdapt.run_workflow(mapped("interval", {"cpus": 2}), {"x": list(range(4)), "seconds": 0.2},
                                        executor=executor)
    assert overlaps(free.result) == 4
    assert overlaps(limited.result) == 2


def test_declared_resources_are_accounted_and_over_asking_fails_at_once():
    with LocalExecutor(cpus=4, resources={"gpus": 1}) as executor:
        run = flowdapt.run_workflow(mapped("interval", {"gpus": 1}), {"x": [1, 2, 3], "seconds": 0.1}, executor=executor)
        assert overlaps(run.result) == 1
        run = flowdapt.run_workflow(mapped("interval", {"gpus": 2}), {"x": [1]}, executor=executor)
    assert run.state == "failed"
    assert run.error.message == "stage 'm' needs gpus=2 but the local executor has gpus=1"


@pytest.mark.parametrize(("visible", "declared"), [("0,1", 2.0), ("GPU-5e0c,1,-1,2", 2.0), ("", None), ("-1", None)])
def test_the_gpus_cuda_lets_this_process_use_are_declared_by_themselves(monkeypatch, visible, declared):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    with LocalExecutor(cpus=4) as executor:
        assert executor.describe()["resources"].get("gpus") == declared
        run = flowdapt.run_workflow(mapped("interval", {"gpus": 3}), {"x": [1]}, executor=executor)
    if declared:  # asking for more GPUs than there are fails at once
        assert run.error.message == f"stage 'm' needs gpus=3 but the local executor has gpus={declared:g}"
    else:  # none here: a stage written for a GPU cluster still runs (unaccounted)
        assert run.state == "finished"


def test_declared_gpus_win_over_the_detected_ones(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    with LocalExecutor(cpus=4, resources={"gpus": 0}) as executor:
        run = flowdapt.run_workflow(mapped("interval", {"gpus": 1}), {"x": [1]}, executor=executor)
    assert run.error.message == "stage 'm' needs gpus=1 but the local executor has gpus=0"


def test_process_mode_runs_stages_in_other_processes():
    with LocalExecutor(mode="processes", cpus=2) as executor:
        run = flowdapt.run_workflow(mapped("pid"), {"x": list(range(8))}, executor=executor)
        assert executor.describe()["mode"] == "processes"
    assert os.getpid() not in run.result


def test_unpicklable_items_fail_the_items_with_the_pickling_error():
    with LocalExecutor(mode="processes", cpus=1) as executor:
        run = flowdapt.run_workflow(mapped("square"), {"x": [lambda: 1]}, executor=executor)
    assert run.state == "failed"
    assert "pickle" in run.error.message.lower()


def test_executors_are_chosen_by_name_and_unknown_names_list_the_known_ones():
    assert {"local", "dask", "ray"} <= set(available_executors())
    assert create_executor("local", mode="processes").mode == "processes"
    with pytest.raises(UnknownNameError, match=r"unknown executor 'spark' \(known: .*local.*\)"):
        flowdapt.run_workflow(mapped("square"), {"x": [1]}, executor="spark")
    with pytest.raises(ExecutorError, match="mode must be 'threads' or 'processes'"):
        LocalExecutor(mode="fibers")
    assert shared_executor("local") is shared_executor("local")


def test_get_run_context_outside_a_stage_is_a_clear_error():
    with pytest.raises(RuntimeError, match=r"get_run_context\(\) was called outside a running stage"):
        flowdapt.get_run_context()


@pytest.mark.parametrize("target", ["numbers", "fail"])
def test_a_finished_run_is_freed_when_dropped_without_waiting_for_the_garbage_collector(target):
    """A loop of runs (a trigger, a notebook) must not pile up runs for the cyclic collector."""
    definition = {"metadata": {"name": "w"}, "spec": {"stages": [
        {"name": "a", "target": f"tests.stages.{target}"},
        {"name": "b", "target": "tests.stages.total", "depends_on": ["a"]}]}}
    gc.disable()
    try:
        with LocalExecutor(cpus=2) as executor:
            run = flowdapt.run_workflow(definition, {"n": 3}, executor=executor)
            assert run.state == ("finished" if target == "numbers" else "failed")
            run.cancel()  # a no-op once the run is over
            run.wait(1)
            dropped = weakref.ref(run)
            del run
        assert dropped() is None
    finally:
        gc.enable()


def chain(*resources: dict) -> dict:
    """A workflow of ``pause`` stages s0 → s1 → …, one per entry of ``resources`` (what it asks for)."""
    stages = [{"name": f"s{i}", "target": "tests.stages.pause", "depends_on": [f"s{i - 1}"] if i else [],
               "resources": asked} for i, asked in enumerate(resources)]
    return {"metadata": {"name": "chain"}, "spec": {"stages": stages}}


def test_a_long_chain_leaves_its_capacity_to_a_run_waiting_for_it():
    # A chain on threads goes on in the worker of its last stage, holding its capacity: it must
    # still let a run that waits for that capacity go first.
    with LocalExecutor(cpus=1) as executor:
        long = flowdapt.run_workflow(chain(*[{}] * 20), {"x": 1}, executor=executor, wait=False)
        deadline = time.monotonic() + 10
        while long.stage("s1").state != "running" and time.monotonic() < deadline:
            time.sleep(0.005)
        short = flowdapt.run_workflow(mapped("square"), {"x": [3]}, executor=executor)
        long.wait(10)
    assert (short.state, long.state) == ("finished", "finished")
    assert short.stage("m").finished_at < long.stage("s4").started_at, "the short run waited for the long chain"


def test_a_stage_down_a_chain_holds_what_it_asks_for_not_what_its_dependency_held():
    with LocalExecutor(cpus=4, resources={"gpus": 1}) as executor:
        runs = [flowdapt.run_workflow({"metadata": {"name": "w"}, "spec": {"stages": [
            {"name": "first", "target": "tests.stages.pause"},
            {"name": "gpu", "target": "tests.stages.interval", "depends_on": ["first"], "resources": {"gpus": 1}},
        ]}}, {"x": index}, executor=executor, wait=False) for index in range(2)]
        over_asking = flowdapt.run_workflow(chain({}, {"gpus": 2}), {"x": 1}, executor=executor)
        for run in runs:
            run.wait(10)
    assert [run.state for run in runs] == ["finished", "finished"]
    assert overlaps([run.result for run in runs]) == 1, "two stages held the only GPU at once"
    assert (over_asking.state, over_asking.error.stage) == ("failed", "s1")
    assert over_asking.error.message == "stage 's1' needs gpus=2 but the local executor has gpus=1"


def test_a_stage_on_threads_sees_its_run_cancelled_and_can_stop_early(tmp_path):
    marker = tmp_path / "seen"
    definition = {"metadata": {"name": "w"}, "spec": {"stages": [
        {"name": "poll", "target": "tests.stages.until_cancelled"}]}}
    with LocalExecutor(cpus=1) as executor:
        run = flowdapt.run_workflow(definition, {"marker": str(marker)}, executor=executor, wait=False)
        assert run.in_this_process and run.definition.metadata.name == "w"
        deadline = time.monotonic() + 10
        while run.stage("poll").state != "running" and time.monotonic() < deadline:
            time.sleep(0.005)
        run.cancel()
        run.wait(10)
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
    assert (run.state, run.stage("poll").state) == ("cancelled", "cancelled")
    assert marker.read_text() == "poll saw the cancellation"
    assert not flowdapt.resources.WorkflowRun.model_validate(run.to_document()).in_this_process
