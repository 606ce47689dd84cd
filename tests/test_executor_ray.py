"""Ray executor: the shared cluster tests plus what is Ray-specific (addresses, lost clusters, caching)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

import flowdapt
from flowdapt.compute.executors import ray as ray_executor
from tests.cluster_cases import *  # noqa: F401,F403 - the shared tests run here on Ray
from tests.cluster_cases import stage, workflow


@pytest.fixture
def cluster(flowdapt_ray):
    return flowdapt_ray


def _run_script(code: str, timeout: float = 240) -> str:
    """Run ``code`` in a fresh interpreter (Ray allows one cluster per process)."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env={**__import__("os").environ, "RAY_AUTH_MODE": "disabled"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_remote_functions_are_registered_once(cluster):
    first = ray_executor._remotes()
    flowdapt.run_workflow(workflow(stage("n", "tests.stages.numbers")), {"n": 2}, executor=cluster)
    assert ray_executor._remotes() is first
    options = {"num_cpus": 1.0}
    assert first.with_options(first.invoke, options) is first.with_options(first.invoke, dict(options))


def test_failing_stage_keeps_its_exception_type_and_message(cluster):
    result = flowdapt.run_workflow(workflow(stage("boom", "tests.stages.fail")), executor=cluster)
    assert (result.error.type, result.error.message, result.error.stage) == (
        "ValueError", "stage exploded: bad value 42", "boom")
    assert "tests/stages.py" in result.error.traceback


def _cancel_once_running(definition: dict, input: dict, ready: "os.PathLike", cluster) -> None:
    """Start a run, cancel it once its stage shows it runs (``ready`` exists), and wait for its end."""
    run = flowdapt.run_workflow(definition, input, executor=cluster, wait=False)
    deadline = time.monotonic() + 60  # a Ray worker may have to start first
    while not os.path.exists(ready) and time.monotonic() < deadline:
        time.sleep(0.05)
    run.cancel()
    run.wait(30)
    assert run.state == "cancelled"


def test_a_cancelled_stage_that_ignores_interrupts_has_its_worker_killed(cluster, tmp_path):
    marker = tmp_path / "pid"
    _cancel_once_running(workflow(stage("stubborn", "tests.stages.ignore_interrupts")), {"marker": str(marker)},
                         marker, cluster)
    worker = int(marker.read_text())
    deadline = time.monotonic() + ray_executor._FORCE_CANCEL_AFTER + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker), "the worker of a stage that ignored its interrupt still runs"
    again = flowdapt.run_workflow(workflow(stage("n", "tests.stages.numbers")), {"n": 2}, executor=cluster)
    assert again.result == [0, 1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_unknown_address_fails_fast_with_a_clear_error():
    out = _run_script("""
        from flowdapt.compute.executors.ray import RayExecutor
        from flowdapt.errors import ExecutorError
        try:
            RayExecutor(address="127.0.0.1:9", connect_timeout=2).start()
        except ExecutorError as exc:
            print(exc)
    """, timeout=60)
    assert "cannot reach the Ray cluster at '127.0.0.1:9'" in out


def test_lost_cluster_fails_the_run_clearly_and_the_executor_starts_again():
    out = _run_script("""
        import time, flowdapt, ray
        from flowdapt.compute.executors.ray import RayExecutor
        wf = lambda *s: {"metadata": {"name": "wf"}, "spec": {"stages": list(s)}}
        executor = RayExecutor(num_cpus=1, object_store_memory="100MB")
        executor.start()
        run = flowdapt.run_workflow(wf({"name": "slow", "target": "tests.stages.sleep_for"}), {"seconds": 60},
                                    executor=executor, wait=False)
        while run.stage("slow").state != "running":
            time.sleep(0.05)
        time.sleep(0.5)
        ray.shutdown()  # the connection to the cluster goes away mid-run
        run.wait(60)
        print(run.state, run.error.type, run.error.stage, executor.running)
        print(run.error.message)
        again = flowdapt.run_workflow(wf({"name": "n", "target": "tests.stages.numbers"}), {"n": 2}, executor=executor)
        print(again.state, again.result)
        executor.close()
    """)
    first, message, last = out.strip().splitlines()[-3:]
    assert first == "failed ExecutorError slow False"
    assert "lost the Ray cluster while stage 'slow' ran" in message
    assert last == "finished [0, 1]"
