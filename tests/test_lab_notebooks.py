"""The quickstart notebook as a new user meets it: in a real JupyterLab (kernels started by the server,
so the magics talk to it) in a real Chromium, Run All, and the run's state and result on the page."""

from __future__ import annotations

import time

import nbformat

from tests.browser import (  # noqa: F401 - fixtures
    flowdapt_chromium,
    flowdapt_lab,
    flowdapt_page,
    jp_asyncio_loop,
    jp_server_cleanup,
)

NOTEBOOK = "notebooks/01-quickstart.ipynb"


def _strip_outputs(path) -> int:
    """Clear the committed outputs, so everything the page shows comes from this run; the code cell count."""
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    for cell in code:
        cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    return len(code)


def test_quickstart_runs_all_cells_in_lab_through_the_server(flowdapt_lab, flowdapt_page):
    cells = _strip_outputs(flowdapt_lab.root_dir / NOTEBOOK)
    page = flowdapt_page.page
    page.goto(flowdapt_lab.page_url(f"lab/tree/{NOTEBOOK}"))
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=60_000)
    # The kernel is connected (the status bar names it, idle) before Run All: earlier, Lab drops the request.
    page.wait_for_selector(".jp-StatusBar-Widget:has-text('Python 3 (ipykernel) | Idle')", timeout=60_000)
    page.click("li.lm-MenuBar-item:has-text('Run')")
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")

    prompts = page.locator(".jp-CodeCell .jp-InputPrompt")
    deadline = time.monotonic() + 120
    while True:  # every code cell ran: its prompt shows an execution count, none waits as [*]
        texts = [text.strip() for text in prompts.all_inner_texts()]
        if len(texts) == cells and all(text[1:-2].isdigit() for text in texts):
            break
        assert time.monotonic() < deadline, f"Run All did not finish: prompts {texts}"
        errors = page.locator("[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
        assert not errors, f"a cell failed: {errors}"
        time.sleep(0.5)

    assert not page.locator("[data-mime-type='application/vnd.jupyter.stderr']").count()
    outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
    assert "('finished', 285)" in outputs  # run.state, run.result of `%flowdapt run quickstart --n 10`
    assert any("('square', 'finished', 10)" in text for text in outputs)
    # The live views (ipywidgets) show the runs as finished; the magics' run is in the server's history.
    views = page.locator(".widget-vbox:has-text('quickstart')")
    assert views.count() >= 2 and "finished" in views.first.inner_text()
    flowdapt_page.shot("run-view")
    # The run of `%flowdapt run` ran on the server; the one of `flowdapt.run_workflow` in the last cell ran in
    # the kernel, which reported it: both are in the server's history, oldest last.
    deadline = time.monotonic() + 10
    while True:
        runs = flowdapt_lab.api("GET", "runs", params={"workflow": "quickstart"}).json()
        found = [(run["state"], run["source"], run["result"]) for run in runs]
        if len(found) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert found == [("finished", "manual", 5), ("finished", "notebook", 285)]
    assert not flowdapt_page.errors
