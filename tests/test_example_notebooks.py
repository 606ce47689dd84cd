"""The example notebooks as users run them: their committed outputs are what nbval compares, they run in
kernels under a live ``flowdapt serve`` (as Lab starts kernels) as well as headless (``notebooks/``
in ``make test``), and a broken stage makes their test fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import nbformat
import pytest

from tests.test_serve import ROOT, TOKEN, Server, flowdapt_env  # noqa: F401 - fixture

NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
CHECK = "# NBVAL_CHECK_OUTPUT"


def nbval(paths: list[Path], env: dict[str, str], cwd: Path, log: Path) -> tuple[int, str]:
    """``pytest --nbval-lax`` on notebooks, as ``make test`` runs them: (exit code, output).

    The output goes to a file: processes the notebooks start (Ray's) may outlive pytest with its stdout.
    """
    with log.open("w") as out:
        code = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--nbval-lax",
                               "--nbval-current-env", "-o", "addopts=", *map(str, paths)],
                              cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=600).returncode
    return code, log.read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_checked_cells_have_committed_outputs_to_compare(path):
    nb = nbformat.read(path, as_version=4)
    checked = [cell for cell in nb.cells if cell.cell_type == "code" and cell.source.startswith(CHECK)]
    assert checked, f"{path.name} checks no output"
    for cell in checked:
        assert cell.outputs, f"{path.name}: a checked cell has no committed output (run `make notebooks`):\n{cell.source}"
    errors = [cell.source for cell in nb.cells if any(out.output_type == "error" for out in cell.get("outputs", []))]
    assert not errors, f"{path.name} was committed with errors in: {errors}"


def test_example_notebooks_run_in_kernels_under_a_server(tmp_path, flowdapt_env):
    server = Server(flowdapt_env, tmp_path / "serve.log")
    try:
        env = {**flowdapt_env, "FLOWDAPT_NOTEBOOKS_SERVER_URL": server.url, "FLOWDAPT_NOTEBOOKS_SERVER_TOKEN": TOKEN,
               "FLOWDAPT_NOTEBOOKS_SERVER_APP_DIR": flowdapt_env["FLOWDAPT_APP_DIR"]}
        code, output = nbval(NOTEBOOKS, env, ROOT, tmp_path / "nbval.log")
        assert code == 0, output[-6000:]
        runs = httpx.get(f"{server.url}flowdapt/api/v1/runs", params={"limit": 10_000},
                         headers={"Authorization": f"token {TOKEN}"}).json()
        ran = {(run["workflow"], run["source"], run["executor"], run["state"]) for run in runs}
        # The magics' runs went to the server, which ran them and keeps them...
        for workflow in ("quickstart", "train", "predict"):
            assert (workflow, "notebook", "local", "finished") in ran, ran
        # ...and the runs the kernels ran themselves (flowdapt.run_workflow in a cell) are in its history too.
        assert ("quickstart", "manual", "local", "finished") in ran, ran
        assert ("city-report", "manual", "local", "finished") in ran, ran
        assert ("notebook-city_report", "notebook", "local", "finished") in ran, ran
        assert {("spread", "manual", kind, "finished") for kind in ("dask", "ray")} <= ran, ran
    finally:
        server.stop(15)


@pytest.mark.parametrize("stage, broken, expected", [
    ("square", "def square(x):\n    return x * x + 1", "('finished', 295)"),  # a wrong result: outputs differ
    ("square", "def square(x):\n    raise ValueError(f'cannot square {x}')", "ValueError: cannot square"),
])
def test_a_broken_stage_fails_the_notebook_test(tmp_path, flowdapt_env, stage, broken, expected):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    shutil.copy(ROOT / "notebooks" / "conftest.py", folder)
    nb = nbformat.read(ROOT / "notebooks" / "01-quickstart.ipynb", as_version=4)
    cell = next(cell for cell in nb.cells if cell.source.startswith(f"%%flowdapt stage {stage} "))
    cell.source = cell.source.splitlines()[0] + "\n" + broken
    nbformat.write(nb, folder / "01-quickstart.ipynb")
    code, output = nbval([folder / "01-quickstart.ipynb"], flowdapt_env, folder, tmp_path / "nbval.log")
    assert code != 0, output[-3000:]
    assert expected in output, output[-6000:]
