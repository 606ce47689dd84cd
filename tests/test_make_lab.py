"""``make lab``, the README's first command, as a user runs it (root in CI): Lab and the REST API answer."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import httpx

from tests.browser import ROOT, free_port, isolated_env



def test_make_lab_starts_lab_with_flowdapt_on_the_quickstart_notebook(tmp_path):
    port = free_port()
    env = isolated_env(tmp_path / "home", tmp_path / "app")  # no token given: Jupyter makes one and prints it
    log = tmp_path / "make-lab.log"
    with log.open("wb") as out:
        make = subprocess.Popen(["make", "-C", str(ROOT), "lab", f"LAB_ARGS=--no-browser --ip=127.0.0.1 --port={port}"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    origin = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # make may reinstall first when pyproject.toml changed
        printed = rf"{origin}/lab/tree/notebooks/01-quickstart\.ipynb\?token=(\w+)"  # the URL to open, with its token
        while not (found := re.search(printed, log.read_text())):
            assert make.poll() is None, f"make lab exited with {make.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"make lab printed no URL:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        token = found.group(1)
        status = _eventually_ok(f"{origin}/flowdapt/api/v1/status", token)
        assert status.json()["mode"] == "server"
        opened = httpx.get(f"{origin}/", params={"token": token})
        assert opened.status_code == 302 and opened.headers["location"].startswith("/lab/tree/notebooks/01-quickstart.ipynb")
        lab = httpx.get(f"{origin}/lab/tree/notebooks/01-quickstart.ipynb", params={"token": token})
        assert lab.status_code == 200 and "JupyterLab" in lab.text
        assert httpx.get(f"{origin}/flowdapt/api/v1/status").status_code == 403  # nothing without the token
        output = log.read_text()
        if os.geteuid() == 0:
            assert "flowdapt: running as root, so Jupyter starts with --allow-root" in output
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        make.wait(timeout=60)


def _eventually_ok(url: str, token: str, timeout: float = 60) -> httpx.Response:
    """The first 200 answer of ``url`` (the services start just after the server)."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(url, headers={"Authorization": f"token {token}"})
        if response.status_code == 200 or time.monotonic() > deadline:
            assert response.status_code == 200, response.text
            return response
        time.sleep(0.2)
