"""Shared fixtures. Fixture names are prefixed ``flowdapt_`` except the conformance ``executor``."""

from __future__ import annotations

import os
from typing import Callable

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from flowdapt import process  # noqa: E402
from flowdapt.compute.executors import BaseExecutor, close_shared_executors  # noqa: E402
from flowdapt.compute.executors.local import LocalExecutor  # noqa: E402
from flowdapt.settings import Settings  # noqa: E402

# Options of the test clusters: small, no dashboard, one custom resource to place stages on.
DASK_TEST_OPTIONS = {"workers": 2, "threads": 4, "memory": "2GB", "resources": {"trainer": 1}}
# Ray's cpus are scheduling slots: 4 on this 2-core box leaves room for the replacement worker
# Ray starts after a forced cancel, so a cancelled sleeper never delays the next test's stages.
RAY_TEST_OPTIONS = {"num_cpus": 4, "object_store_memory": "1GB", "resources": {"trainer": 1}}


def _dask_executor() -> BaseExecutor:
    from flowdapt.compute.executors.dask import DaskExecutor

    return DaskExecutor(**DASK_TEST_OPTIONS)


def _ray_executor() -> BaseExecutor:
    from flowdapt.compute.executors.ray import RayExecutor

    return RayExecutor(**RAY_TEST_OPTIONS)


def _external_executor(kind: str) -> BaseExecutor:
    """An executor on a cluster started elsewhere (``tests/test_external_clusters.py``): its address comes
    from ``FLOWDAPT_TEST_<KIND>_ADDRESS``, and the test code reaches its workers by upload only."""
    from pathlib import Path

    address, tests = os.environ[f"FLOWDAPT_TEST_{kind.upper()}_ADDRESS"], str(Path(__file__).parent)
    if kind == "dask":
        from flowdapt.compute.executors.dask import DaskExecutor

        return DaskExecutor(address=address, upload=[tests], upload_plugins=False)
    from flowdapt.compute.executors.ray import RayExecutor

    # The plugins are installed on these workers; shipping them is tested in tests/test_plugins_clusters.py.
    return RayExecutor(address=address, upload=[tests], upload_plugins=False)


# The conformance suite: every test taking the ``executor`` fixture runs once per entry.
# Cluster executors add their entries here (one cluster per test session). The external ones run
# only when FLOWDAPT_TEST_EXECUTORS names them (a session of their own: one Ray cluster per process).
EXECUTORS: dict[str, Callable[[], BaseExecutor]] = {
    "local-threads": lambda: LocalExecutor(mode="threads", cpus=2),
    "local-processes": lambda: LocalExecutor(mode="processes", cpus=2),
    "dask": _dask_executor,
    "ray": _ray_executor,
    "dask-external": lambda: _external_executor("dask"),
    "ray-external": lambda: _external_executor("ray"),
}
SELECTED = os.environ.get("FLOWDAPT_TEST_EXECUTORS", "local-threads,local-processes,dask,ray").split(",")


@pytest.fixture(scope="session")
def flowdapt_ray() -> BaseExecutor:
    """A started Ray executor for Ray-specific tests (shares the process's Ray with the conformance one)."""
    instance = _ray_executor()
    instance.start()
    yield instance
    instance.close()


@pytest.fixture(scope="session", params=SELECTED)
def executor(request) -> BaseExecutor:
    """A started executor of each conformance kind, shared by the session."""
    instance = EXECUTORS[request.param]()
    instance.start()
    if request.param.endswith("-external"):
        _warm_up(instance)
    yield instance
    instance.close()


def _warm_up(instance: BaseExecutor) -> None:
    """Have an external cluster start this job's workers (a fresh cluster starts them on first use, which
    tests that time stages would mistake for stages not running in parallel)."""
    import flowdapt

    definition = {"metadata": {"name": "warm-up"}, "spec": {"stages": [
        {"name": "items", "target": "tests.stages.interval", "type": "parameterized", "options": {"map_on": "x"}}]}}
    run = flowdapt.run_workflow(definition, {"x": list(range(8)), "seconds": 0.5}, executor=instance)
    assert run.state == "finished", run.error


@pytest.fixture(autouse=True)
def flowdapt_app_dir(tmp_path, monkeypatch):
    """Every test gets its own app dir, and a fresh process state: its settings, an empty catalog and an
    empty local cluster memory (the session's executors are kept)."""
    app_dir = tmp_path / "app"
    monkeypatch.setenv("FLOWDAPT_APP_DIR", str(app_dir))
    with process.use(process.current().fresh(settings=Settings(app_dir=app_dir))):
        yield app_dir


def pytest_sessionfinish(session, exitstatus):
    close_shared_executors()
