"""Dask executor: the shared cluster tests plus what is Dask-specific (addresses, lost clusters, config)."""

from __future__ import annotations

import time

import pytest

import flowdapt
from flowdapt.compute.executors import close_shared_executors
from flowdapt.compute.executors.dask import DaskExecutor
from flowdapt.errors import ExecutorError
from flowdapt.settings import ExecutorSettings, Settings, set_settings
from tests.cluster_cases import *  # noqa: F401,F403 - the shared tests run here on Dask
from tests.cluster_cases import stage, workflow
from tests.conftest import DASK_TEST_OPTIONS


@pytest.fixture(scope="module")
def cluster():
    executor = DaskExecutor(**DASK_TEST_OPTIONS)
    executor.start()
    yield executor
    executor.close()


def test_dashboard_link_is_exposed_for_dask_labextension(cluster):
    assert cluster.dashboard_link.startswith("http://")
    assert cluster.describe()["dashboard_link"] == cluster.dashboard_link


def test_tasks_reach_the_scheduler_without_waiting_for_the_client_batch_window(cluster):
    """Dask's client sends the scheduler at most one batch per interval (10 ms by default): the executor's
    client has none, so a run submitted right after any other message does not wait up to 10 ms."""
    assert cluster.client.scheduler_comm.interval == 0
    definition = workflow(stage("src", "tests.stages.numbers"),
                          stage("sq", "tests.stages.square", "src", type="parameterized"),
                          stage("sum", "tests.stages.total", "sq"))
    run = flowdapt.run_workflow(definition, {"n": 50}, executor=cluster)
    assert run.state == "finished" and run.result == sum(x * x for x in range(50))


def test_unknown_scheduler_address_fails_with_a_clear_error():
    executor = DaskExecutor(address="tcp://127.0.0.1:9", connect_timeout=2)
    with pytest.raises(ExecutorError, match="cannot connect to the Dask scheduler at 'tcp://127.0.0.1:9'"):
        executor.start()
    assert not executor.running


def test_connects_to_an_existing_scheduler(cluster):
    executor = DaskExecutor(address=cluster.client.scheduler.address)
    with executor:
        result = flowdapt.run_workflow(workflow(stage("n", "tests.stages.numbers")), {"n": 3}, executor=executor)
        assert result.result == [0, 1, 2]
    assert cluster.running  # closing a connected executor leaves the cluster alone


def test_lost_cluster_fails_the_run_clearly_and_the_executor_starts_again():
    executor = DaskExecutor(workers=1, threads=1)
    executor.start()
    try:
        run = flowdapt.run_workflow(workflow(stage("slow", "tests.stages.sleep_for")), {"seconds": 30},
                                    executor=executor, wait=False)
        deadline = time.monotonic() + 20
        while run.stage("slow").state != "running" and time.monotonic() < deadline:
            time.sleep(0.02)
        executor.client.shutdown()  # the scheduler and its workers go away mid-run
        assert run.wait(20)
        assert run.state == "failed"
        assert run.error.type == "ExecutorError" and "lost the Dask cluster" in run.error.message
        assert run.error.stage == "slow"
        assert not executor.running
        again = flowdapt.run_workflow(workflow(stage("n", "tests.stages.numbers")), {"n": 2}, executor=executor)
        assert again.state == "finished" and again.result == [0, 1]
    finally:
        executor.close()


def test_chosen_by_name_and_by_settings():
    set_settings(Settings(executor=ExecutorSettings(name="dask", options={"workers": 1, "threads": 2})))
    try:
        by_settings = flowdapt.run_workflow(workflow(stage("n", "tests.stages.numbers")), {"n": 2})
        by_name = flowdapt.run_workflow(workflow(stage("n", "tests.stages.numbers")), {"n": 2}, executor="dask")
        assert (by_settings.executor, by_settings.result) == ("dask", [0, 1])
        assert (by_name.executor, by_name.result) == ("dask", [0, 1])
    finally:
        close_shared_executors()
