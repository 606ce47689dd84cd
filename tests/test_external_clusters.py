"""The conformance suite on real external clusters, started with the engines' own commands as separate
processes: ``dask scheduler`` and two ``dask worker``s, ``ray start --head`` and a second node joining it.
Their workers do not share this process's import path: the tests' stage code reaches them only through
the executor's ``upload`` (Dask's upload plugins, Ray's ``py_modules``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.browser import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _env(tmp_path: Path) -> dict[str, str]:
    """No import path to the repository: only installed packages (flowdapt) are importable on workers."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "RAY_ADDRESS")}
    return {**env, "RAY_AUTH_MODE": "disabled", "HOME": str(tmp_path)}


class Processes:
    """Processes started in sessions of their own, stopped together (with what they started)."""

    def __init__(self, tmp_path: Path, env: dict[str, str] | None = None) -> None:
        self.tmp_path, self.started, self.env = tmp_path, [], {**_env(tmp_path), **(env or {})}

    def start(self, name: str, *argv: str) -> subprocess.Popen:
        log = (self.tmp_path / f"{name}.log").open("wb")
        process = subprocess.Popen([str(BIN / argv[0]), *argv[1:]], cwd=self.tmp_path, env=self.env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-2000:]}"
                         for path in sorted(self.tmp_path.glob("*.log")))

    def stop(self) -> None:
        for process in reversed(self.started):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def _wait_for(check, what: str, processes: Processes, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} did not come up:\n{processes.logs()}"
        time.sleep(0.5)


def test_the_conformance_suite_passes_on_external_dask_and_ray_clusters(tmp_path):
    processes = Processes(tmp_path)
    dask_port, ray_port = free_port(), free_port()
    try:
        processes.start("dask-scheduler", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(dask_port),
                        "--no-dashboard")
        for number in (1, 2):  # the test options of the local clusters: 4 threads, a "trainer" each
            processes.start(f"dask-worker-{number}", "dask", "worker", f"tcp://127.0.0.1:{dask_port}",
                            "--nthreads", "4", "--memory-limit", "2GB", "--resources", "cpus=4 trainer=1",
                            "--no-dashboard", "--local-directory", str(tmp_path / f"dask-{number}"))
        common = ["--node-ip-address", "127.0.0.1", "--disable-usage-stats", "--block"]
        processes.start("ray-head", "ray", "start", "--head", "--port", str(ray_port), "--num-cpus", "4",
                        "--resources", '{"trainer": 1}', "--object-store-memory", str(10**9),
                        "--include-dashboard", "false", *common)
        ray_address = f"127.0.0.1:{ray_port}"
        _wait_for(lambda: "Ray runtime started" in (tmp_path / "ray-head.log").read_text(), "ray start --head",
                  processes)
        processes.start("ray-node", "ray", "start", "--address", ray_address, "--num-cpus", "2",
                        "--object-store-memory", str(5 * 10**8), *common)
        _wait_for(lambda: "Ray runtime started" in (tmp_path / "ray-node.log").read_text(), "the second Ray node",
                  processes)
        env = {**_env(tmp_path), "FLOWDAPT_TEST_EXECUTORS": "dask-external,ray-external",
               "FLOWDAPT_TEST_DASK_ADDRESS": f"tcp://127.0.0.1:{dask_port}", "FLOWDAPT_TEST_RAY_ADDRESS": ray_address}
        with (tmp_path / "pytest.log").open("w") as out:
            done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-o", "addopts=",
                                   "-k", "external", "tests/test_engine.py", "tests/external_cluster_cases.py"],
                                  cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, stdout=out,
                                  stderr=subprocess.STDOUT, timeout=600)
        output = (tmp_path / "pytest.log").read_text()
        assert done.returncode == 0, output[-8000:] + processes.logs()
        ran = int(output.strip().splitlines()[-1].split(" passed")[0].split()[-1])
        assert ran >= 2 * 50, output[-2000:]  # both clusters, the engine conformance and the shared cluster tests
    finally:
        processes.stop()
