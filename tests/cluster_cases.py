"""Tests shared by the Dask and Ray executors, and the stage functions they use.

``test_executor_dask.py`` and ``test_executor_ray.py`` import these tests and provide a started
executor as the ``cluster`` fixture; workers import this module to run its stage functions.
"""

from __future__ import annotations

import threading
import time

import numpy as np

import flowdapt
from flowdapt.compute import object_store
from flowdapt.compute.context import RunContext, RunInfo
from flowdapt.compute.executors.base import Outcome
from flowdapt.compute.invoke import StageCall

HERE = "tests.cluster_cases."
BIG = 100 * 1024 * 1024 // 8  # float64 items in 100 MB


class Model:
    """A plain class: the object store holds any picklable object, not only arrays."""

    def __init__(self, weights: list[int]) -> None:
        self.weights = weights


def big_array(size: int = BIG):
    return np.ones(size)


def array_sum(array):
    return float(array.sum())


def array_len(array):
    return len(array)


def store_model(**kwargs):
    object_store.put("model", Model([1, 2, 3]))
    object_store.put("labels", {"a", "b"})
    return True


def load_model(_=None):
    model = object_store.get("model")
    return [type(model).__name__, model.weights, sorted(object_store.get("labels"))]


def missing(**kwargs):
    return object_store.get("never-stored")


def interval(x, seconds: float = 0.4):
    start = time.time()
    time.sleep(seconds)
    return (start, time.time())


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals running at one moment."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def workflow(*stages: dict, name: str = "wf") -> dict:
    return {"metadata": {"name": name}, "spec": {"stages": list(stages)}}


def stage(name: str, target: str, *depends_on: str, **fields) -> dict:
    return {"name": name, "target": target if "." in target else HERE + target, "depends_on": list(depends_on),
            **fields}


# -- the shared tests -------------------------------------------------------------------------------

def test_stage_asking_for_a_resource_no_worker_has_fails_at_once_naming_stage_and_resource(cluster):
    started = time.monotonic()
    result = flowdapt.run_workflow(workflow(stage("fit", "tests.stages.noop", resources={"gpus": 2})),
                                   executor=cluster)
    assert time.monotonic() - started < 5
    assert result.state == "failed"
    assert result.error.type == "ExecutorError" and result.error.stage == "fit"
    assert "stage 'fit' needs gpus=2" in result.error.message


def test_custom_resource_limits_concurrency_of_simple_and_parameterized_stages(cluster):
    # The test clusters declare trainer=1 (Ray: on its one node; Dask: on each of its 2 workers).
    limit = 1 if cluster.kind == "ray" else 2
    simple = workflow(*(stage(name, "interval", resources={"trainer": 1}) for name in "abc"))
    result = flowdapt.run_workflow(simple, {"x": 0}, executor=cluster)
    assert result.state == "finished", result.error
    assert max_overlap([result.result[name] for name in "abc"]) == limit
    mapped = workflow(stage("each", "interval", type="parameterized", options={"map_on": "x"},
                            resources={"trainer": 1}))
    result = flowdapt.run_workflow(mapped, {"x": [1, 2, 3, 4]}, executor=cluster)
    assert result.state == "finished", result.error
    assert max_overlap(result.result) == limit


def test_object_store_holds_any_picklable_object_across_stages_and_runs(cluster):
    writer = workflow(stage("put", "store_model"))
    reader = workflow(stage("get", "load_model"))
    assert flowdapt.run_workflow(writer, executor=cluster, namespace="models").state == "finished"
    result = flowdapt.run_workflow(reader, executor=cluster, namespace="models")
    assert result.result == ["Model", [1, 2, 3], ["a", "b"]]
    # The driver sees the same cluster memory, and namespaces are separate.
    assert object_store.get("model", namespace="models", executor=cluster.kind).weights == [1, 2, 3]
    assert not object_store.exists("model", namespace="other", executor=cluster.kind)


def test_object_store_missing_key_names_key_and_namespace(cluster):
    result = flowdapt.run_workflow(workflow(stage("get", "missing")), executor=cluster, namespace="empty")
    assert result.state == "failed" and result.error.type == "KeyError"
    assert "never-stored" in result.error.message and "empty" in result.error.message


def test_object_store_put_delete_from_the_driver(cluster):
    object_store.put("blob", b"x" * 1000, namespace="driver", executor=cluster.kind)
    assert object_store.exists("blob", namespace="driver", executor=cluster.kind)
    object_store.delete("blob", namespace="driver", executor=cluster.kind)
    assert not object_store.exists("blob", namespace="driver", executor=cluster.kind)


def test_a_100mb_array_reaches_two_consumers(cluster):
    definition = workflow(stage("make", "big_array"), stage("total", "array_sum", "make"),
                          stage("count", "array_len", "make"))
    result = flowdapt.run_workflow(definition, executor=cluster)
    assert result.state == "finished", result.error
    assert result.result == {"total": float(BIG), "count": BIG}


def test_map_over_an_upstream_output_that_stays_on_the_cluster(cluster):
    definition = workflow(stage("src", "tests.stages.numbers"),
                          stage("sq", "tests.stages.square", "src", type="parameterized"),
                          stage("sum", "tests.stages.total", "sq"))
    result = flowdapt.run_workflow(definition, {"n": 3000}, executor=cluster)
    assert result.result == sum(x * x for x in range(3000))
    assert result.stage("sq").items_done == 3000


def _call(name: str, target: str, root: bool, **input) -> "StageCall":
    context = RunContext(input, {}, "default", RunInfo("uid", "run", "wf"), "test", name)
    return StageCall(stage=name, target=target, context=context, root=root)


def test_a_call_queued_on_the_output_of_a_failing_call_never_runs(cluster, tmp_path):
    # The runner queues stages on their dependencies' output handles before those finish.
    marker = tmp_path / "ran"
    outcomes: dict[str, Outcome] = {}
    over = threading.Event()
    failing = cluster.submit(_call("boom", "tests.stages.fail_after", True, seconds=0.2), [], {},
                             lambda outcome: outcomes.setdefault("boom", outcome))
    assert failing.output is not None
    cluster.submit(_call("after", "tests.stages.touch", False, marker=str(marker)), [failing.output], {},
                   lambda outcome: (outcomes.setdefault("after", outcome), over.set()))
    assert over.wait(30)
    assert outcomes["boom"].error.message == "stage exploded late"
    assert outcomes["after"].error is not None and outcomes["after"].value is None
    assert not marker.exists(), "the queued call ran on the output of a failed call"


def test_describe_reports_kind_and_state(cluster):
    info = cluster.describe()
    assert info["kind"] == cluster.kind and info["running"] is True
