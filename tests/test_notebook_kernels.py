"""Warm kernels for notebook stages: started ahead, fresh per run by default, reused when asked."""

from __future__ import annotations

import json
import threading
import time

import pytest

import flowdapt
from flowdapt.notebook import warm_kernels
from flowdapt.settings import Settings, get_settings, set_settings

from tests.test_notebook_stage import flowdapt_workbench, stage_workflow, write_notebook  # noqa: F401 - a fixture

# The notebook reports its kernel's pid, its working directory, whether a variable of an earlier
# run survived, and whether a module attribute set by an earlier run survived.
PROBE = (
    "import os, sys, flowdapt.notebook as fn\n"
    "survived = 'left_behind' in globals()\n"
    "left_behind = n\n"
    "module_state = getattr(sys, '_flowdapt_test_marker', None)\n"
    "sys._flowdapt_test_marker = n\n"
    "if fail:\n    raise RuntimeError('asked to fail')\n"
    "fn.set_result({'pid': os.getpid(), 'cwd': os.getcwd(), 'survived': survived, 'module_state': module_state})"
)


@pytest.fixture
def probe(flowdapt_workbench):
    """``sub/probe.ipynb`` in the workbench; the pool starts and ends empty."""
    write_notebook(flowdapt_workbench / "sub" / "probe.ipynb", PROBE, parameters="n = 0\nfail = False")
    warm_kernels.close_kernel_pool()
    yield flowdapt_workbench
    warm_kernels.close_kernel_pool()


def use_kernels(warm: int, runs: int) -> None:
    set_settings(Settings(app_dir=get_settings().app_dir, notebook={"warm_kernels": warm, "kernel_runs": runs}))


def run_probe(n: int, fail: bool = False, **options):
    run = flowdapt.run_workflow(stage_workflow("sub/probe.ipynb", options=options), {"n": n, "fail": fail})
    assert fail or "kernel_name" in options or run.state == "finished", run.error.traceback
    return run


def test_each_run_gets_a_fresh_kernel_started_ahead_in_the_notebook_folder(probe):
    use_kernels(warm=1, runs=1)
    results = [run_probe(n).result for n in range(3)]
    assert len({result["pid"] for result in results}) == 3  # a kernel no notebook ran in, every time
    assert all(result["cwd"] == str(probe / "sub") for result in results)
    assert not any(result["survived"] or result["module_state"] is not None for result in results)
    ready = warm_kernels.kernel_pool()._ready["python3"]
    pending = warm_kernels.kernel_pool()._unclaimed["python3"]
    assert len(ready) + pending == 1  # the next run's kernel is ready or starting


def test_a_reused_kernel_forgets_variables_but_keeps_modules_and_is_replaced_after_kernel_runs(probe):
    use_kernels(warm=1, runs=3)
    first, second, third, fourth = (run_probe(n) for n in range(1, 5))
    assert first.result["pid"] == second.result["pid"] == third.result["pid"] != fourth.result["pid"]
    assert not second.result["survived"] and not third.result["survived"]  # variables cleared between runs
    assert second.result["module_state"] == 1 and third.result["module_state"] == 2  # imported state stays
    output = json.loads(open(third.stage("double").output_notebook).read())
    counts = [cell["execution_count"] for cell in output["cells"] if cell["cell_type"] == "code"]
    assert counts[0] == 1  # a new session: numbered from 1 again


def test_a_kernel_whose_run_failed_is_not_reused(probe):
    use_kernels(warm=1, runs=5)
    first = run_probe(1)
    failed = run_probe(2, fail=True)
    after = run_probe(3)
    assert failed.state == "failed" and "asked to fail" in failed.error.message
    assert after.state == "finished" and after.result["pid"] != first.result["pid"]
    assert not after.result["survived"] and after.result["module_state"] is None


def test_a_timed_out_cell_does_not_leave_a_busy_kernel_in_the_pool(probe):
    use_kernels(warm=1, runs=5)
    write_notebook(probe / "sub" / "slow.ipynb", "import time\ntime.sleep(30)")
    slow = flowdapt.run_workflow(stage_workflow("sub/slow.ipynb", options={"cell_timeout": 1}))
    assert slow.state == "failed" and "ran longer than 1s" in slow.error.message
    after = run_probe(1)
    assert after.result["cwd"] == str(probe / "sub")


def test_without_warm_kernels_each_run_starts_its_own_as_papermill_does(probe):
    use_kernels(warm=0, runs=1)
    results = [run_probe(n).result for n in range(2)]
    assert results[0]["pid"] != results[1]["pid"] and results[0]["cwd"] == str(probe / "sub")
    assert warm_kernels._pool is None  # no pool was made


def test_an_unknown_kernel_fails_the_stage_with_its_name(probe):
    use_kernels(warm=1, runs=1)
    run = run_probe(1, kernel_name="no-such-kernel")
    assert run.state == "failed" and "no-such-kernel" in run.error.message
    assert run_probe(2).state == "finished"


def test_concurrent_runs_share_the_pool_without_waiting_on_each_other(probe):
    use_kernels(warm=1, runs=1)
    run_probe(0)  # one kernel ready or starting now
    results: list = []
    threads = [threading.Thread(target=lambda n=n: results.append(run_probe(n))) for n in range(1, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(results) == 3 and all(run.state == "finished" for run in results)
    assert len({run.result["pid"] for run in results}) == 3


def test_bad_kernel_settings_are_rejected(flowdapt_app_dir):
    from flowdapt.settings import ConfigError, load_settings

    with pytest.raises(ConfigError, match="notebook.warm_kernels"):
        load_settings(flowdapt_app_dir, overrides=["notebook.warm_kernels=-1"])


def test_a_kernel_that_died_while_waiting_in_the_pool_is_replaced(probe):
    use_kernels(warm=1, runs=1)
    first = run_probe(1)
    pool = warm_kernels.kernel_pool()
    deadline = time.monotonic() + 60
    while not pool._ready["python3"] and time.monotonic() < deadline:
        time.sleep(0.05)
    process = pool._ready["python3"][0].manager.provisioner.process
    process.kill()
    process.wait(10)
    after = run_probe(2)
    assert after.result["pid"] not in (first.result["pid"], process.pid)
