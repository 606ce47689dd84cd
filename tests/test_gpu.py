"""Stages that ask for GPUs, run on a machine that has one: Ray, Dask and the local executor.

Skipped where PyTorch or a CUDA GPU is absent (CI machines have none); run them on a GPU machine
with ``pytest tests/test_gpu.py``. Each check holds the GPU for a while in two independent stages
of one run and asserts they took turns where only one of them fits on the GPUs at a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import flowdapt

torch = pytest.importorskip("torch", reason="needs PyTorch and a CUDA GPU")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

HOLD = 1.0  # seconds each probe keeps the GPU


def _gpu_count() -> int:
    return torch.cuda.device_count()


def _two_probes(resources: dict) -> dict:
    return {"metadata": {"name": "gpu"}, "spec": {"stages": [
        {"name": name, "target": "tests.stages.gpu_probe", "resources": resources} for name in ("a", "b")]}}


def _took_turns(first: dict, second: dict) -> bool:
    (start_a, end_a), (start_b, end_b) = first["held"], second["held"]
    return start_b >= end_a - 0.01 or start_a >= end_b - 0.01


def _assert_saw_the_gpu(probe: dict) -> None:
    assert probe["value"] == 2048.0
    assert probe["device"] == torch.cuda.get_device_name(0)


def test_ray_gives_a_stage_the_gpu_it_asks_for_and_fails_a_request_no_node_meets():
    """Ray detects the GPUs, sets CUDA_VISIBLE_DEVICES for the stage holding one, runs two
    one-GPU stages in turn, and fails a stage asking for more GPUs than any node has at once."""
    script = textwrap.dedent(f"""
        import json, time, flowdapt
        from flowdapt.compute.executors.ray import RayExecutor
        executor = RayExecutor(num_cpus=4, object_store_memory="2GB")
        executor.start()
        out = {{"gpus": executor.describe()["resources"].get("GPU")}}
        run = flowdapt.run_workflow({_two_probes({"gpus": 1})!r}, {{"hold": {HOLD}}}, executor=executor)
        out["run"] = [run.state, run.result, run.error and run.error.message]
        started = time.monotonic()
        big = flowdapt.run_workflow({{"metadata": {{"name": "big"}}, "spec": {{"stages": [
            {{"name": "fit", "target": "tests.stages.gpu_probe", "resources": {{"gpus": {_gpu_count() + 1}}}}}]}}}},
            executor=executor)
        out["big"] = [big.state, big.error.message, time.monotonic() - started]
        mapped = flowdapt.run_workflow({{"metadata": {{"name": "mapped"}}, "spec": {{"stages": [
            {{"name": "each", "target": "tests.stages.gpu_probe", "type": "parameterized", "resources": {{"gpus": 1}},
              "options": {{"map_on": "items"}}}}]}}}}, {{"items": [0, 1, 2, 3]}}, executor=executor)
        out["mapped"] = [mapped.state, mapped.result]
        executor.close()
        print("RESULT " + json.dumps(out))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert out["gpus"] == _gpu_count()
    state, result, error = out["run"]
    assert state == "finished", error
    for probe in result.values():
        _assert_saw_the_gpu(probe)
        assert probe["visible"] is not None and len(probe["visible"].split(",")) == 1
    if _gpu_count() == 1:
        assert _took_turns(result["a"], result["b"])
    state, message, seconds = out["big"]
    assert state == "failed"
    assert message == (f"stage 'fit' needs gpus={_gpu_count() + 1} but no Ray worker has that much "
                       f"(largest: {_gpu_count()})")
    assert seconds < 10
    state, probes = out["mapped"]
    assert state == "finished" and len(probes) == 4
    for probe in probes:
        _assert_saw_the_gpu(probe)


def test_dask_runs_one_gpu_stage_at_a_time_on_a_worker_declaring_one_gpu():
    from flowdapt.compute.executors.dask import DaskExecutor

    with DaskExecutor(workers=1, threads=2, gpus=1) as executor:
        run = flowdapt.run_workflow(_two_probes({"gpus": 1}), {"hold": HOLD}, executor=executor)
        assert run.state == "finished", run.error
        for probe in run.result.values():
            _assert_saw_the_gpu(probe)
        assert _took_turns(run.result["a"], run.result["b"])
        big = flowdapt.run_workflow({"metadata": {"name": "big"}, "spec": {"stages": [
            {"name": "fit", "target": "tests.stages.gpu_probe", "resources": {"gpus": 2}}]}}, executor=executor)
    assert big.state == "failed"
    assert big.error.message == "stage 'fit' needs gpus=2 but no Dask worker has that much (largest: 1)"


@pytest.mark.parametrize("mode", ["threads", "processes"])
def test_local_executor_finds_the_gpus_and_shares_them_one_stage_each(mode):
    """The executor declares the machine's GPUs by itself; process workers start from the
    forkserver, so they get CUDA even after this process used it."""
    from flowdapt.compute.executors.local import LocalExecutor

    torch.ones(1, device="cuda")  # this process holds a CUDA context, as a notebook kernel would
    with LocalExecutor(mode=mode, cpus=2) as executor:
        assert executor.describe()["resources"]["gpus"] == _gpu_count()
        run = flowdapt.run_workflow(_two_probes({"gpus": _gpu_count()}), {"hold": HOLD}, executor=executor)
    assert run.state == "finished", run.error
    for probe in run.result.values():
        _assert_saw_the_gpu(probe)
        assert (probe["pid"] == os.getpid()) is (mode == "threads")
    assert _took_turns(run.result["a"], run.result["b"])
