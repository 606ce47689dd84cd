"""Plugins reach the workers of remote clusters: a Dask scheduler and worker started as processes of
their own whose interpreters do not see the example plugin (``tests/plugins/hidden/sitecustomize.py``)
run the plugin's workflows once the executor ships the plugin's package (``upload_plugins``)."""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path

from flowdapt import run_workflow
from flowdapt.plugins import plugin_resources_path
from flowdapt.resources.loading import load
from tests.browser import free_port
from tests.test_external_clusters import Processes, _wait_for
from tests.test_plugins import FORECAST, PLUGIN_SOURCE

HIDDEN = Path(__file__).parent / "plugins" / "hidden"


def _workflows() -> dict:
    return {resource.name: resource for resource in load(plugin_resources_path("example"))
            if resource.kind == "workflow"}


def _sees_plugin(executor) -> list[bool]:
    """Whether each worker can import the plugin (``find_spec`` runs there: this module is not importable)."""
    return [spec is not None for spec in executor.client.run(find_spec, "flowdapt_example_plugin").values()]


def test_a_remote_dask_cluster_gets_the_plugin_code_shipped(tmp_path, flowdapt_app_dir):
    from flowdapt.compute.executors.dask import DaskExecutor

    processes, port = Processes(tmp_path, env={"PYTHONPATH": str(HIDDEN)}), free_port()
    workflows = _workflows()
    try:
        processes.start("dask-scheduler", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                        "--no-dashboard")
        processes.start("dask-worker", "dask", "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "2",
                        "--memory-limit", "1GB", "--no-dashboard", "--local-directory", str(tmp_path / "worker"))
        address = f"tcp://127.0.0.1:{port}"
        bare = DaskExecutor(address=address, upload_plugins=False)
        _wait_for(lambda: _started(bare), "the dask worker", processes)
        try:
            assert _sees_plugin(bare) == [False]
            failed = run_workflow(workflows["example-where"], executor=bare)
            assert failed.state == "failed" and "flowdapt_example_plugin" in str(failed.error), failed.error
        finally:
            bare.close()

        shipping = DaskExecutor(address=address)
        shipping.start()
        try:
            assert _sees_plugin(shipping) == [True]
            run = run_workflow(workflows["example-forecast"], executor=shipping)
            assert run.state == "finished" and run.result == FORECAST, run.error
            where = run_workflow(workflows["example-where"], executor=shipping).result
            assert where["pid"] != os.getpid() and Path(where["file"]).is_relative_to(tmp_path / "worker")
            assert not Path(where["file"]).is_relative_to(PLUGIN_SOURCE)
        finally:
            shipping.close()
    finally:
        processes.stop()


def _started(executor) -> bool:
    try:
        executor.start()
    except Exception:  # noqa: BLE001 - the scheduler is not listening yet
        return False
    return bool(executor.client.scheduler_info(n_workers=-1)["workers"])


RAY_DRIVER = """
import json, sys
from flowdapt import run_workflow
from flowdapt.compute.executors.ray import RayExecutor
from flowdapt.plugins import plugin_resources_path
from flowdapt.resources.loading import load

workflows = {r.name: r for r in load(plugin_resources_path("example")) if r.kind == "workflow"}
executor = RayExecutor(address=sys.argv[1], upload_plugins=sys.argv[2] == "ship")
executor.start()
try:
    runs = [run_workflow(workflows[name], executor=executor) for name in ("example-forecast", "example-where")]
    print(json.dumps([{"state": run.state, "result": run.result, "error": str(run.error)} for run in runs]))
finally:
    executor.close()
"""


def test_a_remote_ray_cluster_gets_the_plugin_code_shipped(tmp_path):
    import json
    import subprocess
    import sys

    from tests.test_external_clusters import _env

    processes, port = Processes(tmp_path, env={"PYTHONPATH": str(HIDDEN)}), free_port()
    try:
        processes.start("ray-head", "ray", "start", "--head", "--port", str(port), "--num-cpus", "2",
                        "--object-store-memory", str(5 * 10**8), "--include-dashboard", "false",
                        "--node-ip-address", "127.0.0.1", "--disable-usage-stats", "--block")
        _wait_for(lambda: "Ray runtime started" in (tmp_path / "ray-head.log").read_text(), "ray start --head",
                  processes)

        def drive(mode: str) -> list[dict]:  # one driver per process: Ray fixes a job's runtime_env at connect
            done = subprocess.run([sys.executable, "-c", RAY_DRIVER, f"127.0.0.1:{port}", mode], cwd=tmp_path,
                                  env=_env(tmp_path), capture_output=True, text=True, timeout=240)
            assert done.returncode == 0, done.stderr[-4000:] + processes.logs()
            return json.loads(done.stdout.strip().splitlines()[-1])

        bare = drive("bare")
        assert [run["state"] for run in bare] == ["failed", "failed"]
        assert "flowdapt_example_plugin" in bare[0]["error"], bare
        forecast, where = drive("ship")
        assert forecast["state"] == "finished" and forecast["result"] == FORECAST, forecast
        assert not Path(where["result"]["file"]).is_relative_to(PLUGIN_SOURCE)
        assert "runtime_resources" in where["result"]["file"], where  # unpacked from the job's py_modules
    finally:
        processes.stop()
