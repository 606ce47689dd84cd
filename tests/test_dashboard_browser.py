"""The dashboard in a real Chromium: inside a real JupyterLab (token, base URL ``/flowdapt-e2e/``) and
standalone (``flowdapt dashboard`` reading that server), against a history this test wrote.

Lab's flowdapt keeps its history in SQLite here, so the test can write the history next to the
running server; everything the pages show comes from the server's REST API.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Error as PlaywrightError

from flowdapt.history import HistoryStore
from tests.browser import (  # noqa: F401 - fixtures
    BIN,
    TOKEN,
    LabProcess,
    flowdapt_chromium,
    flowdapt_page,
    free_port,
    jp_asyncio_loop,
    jp_server_cleanup,
)
from tests.dashboard_history import make_history

READ_SOURCE = """name => {
    const model = window.Bokeh.documents[0].get_model_by_name(name);
    const data = model.data instanceof Map ? Object.fromEntries(model.data) : model.data;
    return Object.fromEntries(Object.entries(data).map(([key, values]) => [key, Array.from(values)]));
}"""


@pytest.fixture(scope="module")
def flowdapt_dash_lab(tmp_path_factory):
    """One JupyterLab for the module whose flowdapt history (SQLite) holds :func:`make_history`'s rows:
    (lab, history)."""
    folder = tmp_path_factory.mktemp("dashboard-lab")
    url = f"sqlite:///{folder / 'history.db'}"
    app_dir = folder / "app"
    app_dir.mkdir()
    (app_dir / "flowdapt.yaml").write_text(f"database:\n  url: {url}\n")
    (folder / "workbench").mkdir()
    lab = LabProcess(folder / "workbench", folder / "home", app_dir)
    try:
        history = make_history()
        with HistoryStore(url, listen=False) as store:  # after Lab opened it: its running run stays running
            history.load(store)
        yield lab, history
    finally:
        lab.stop()


def _kpi(page, key: str, timeout: float = 30) -> str:
    """A KPI's value once it shows one (the KPI strip is rendered again when its value changes)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            text = (page.locator(f"[data-kpi={key}]").text_content(timeout=5_000) or "").strip()
        except PlaywrightError:  # replaced while read
            text = ""
        if text or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def _cells(page, table: str, field: str) -> list[str]:
    return page.locator(f".fd-{table} .tabulator-row .tabulator-cell[tabulator-field={field}]").all_inner_texts()


def _watch_requests(page) -> list[str]:
    outside: list[str] = []
    page.on("request", lambda request: request.url.startswith(("http://127.0.0.1", "blob:", "data:"))
            or outside.append(request.url))
    return outside


def test_the_dashboard_inside_lab_shows_the_history_and_follows_new_runs(flowdapt_dash_lab, flowdapt_page):
    lab, history = flowdapt_dash_lab
    page = flowdapt_page.page
    outside = _watch_requests(page)
    expected = history.summary(since=history.now - timedelta(days=7))  # the default range

    refused = httpx.get(f"{lab.url}flowdapt/dashboard/", follow_redirects=False)
    assert refused.status_code in (302, 403) and "run history" not in refused.text  # Jupyter's auth first
    page.goto(lab.page_url("flowdapt/dashboard/"), timeout=90_000)  # the first open starts the dashboard
    assert _kpi(page, "runs") == f"{expected['runs']:,}"
    assert _kpi(page, "success") == f"{expected['success_rate']:.1%}"
    timeline = page.evaluate(READ_SOURCE, "timeline")
    stacked: Counter = Counter()
    for state, runs in zip(timeline["state"], timeline["runs"]):
        stacked[state] += runs
    assert stacked == expected["states"]
    errors = history.errors(since=history.now - timedelta(days=7))
    assert _cells(page, "errors", "type") == [kind for kind, _, _, _ in errors]
    assert _cells(page, "errors", "runs") == [str(runs) for _, _, runs, _ in errors]
    lab_links = page.locator(".fd-errors .tabulator-cell[tabulator-field=lab] a").evaluate_all(
        "links => links.map(link => link.getAttribute('href'))")
    assert lab_links[0] == f"/flowdapt-e2e/lab?flowdapt-run={errors[0][3]}"
    flowdapt_page.shot("overview")

    # A run made now shows up by itself.
    lab.api("POST", "workflows", json={"kind": "workflow", "metadata": {"name": "hello"},
                                        "spec": {"stages": [{"name": "hi", "target": "tests.stages.greet"}]}})
    assert lab.api("POST", "workflows/hello/run", json={"name": "dashboard"}).json()["state"] == "finished"
    deadline = time.monotonic() + 30
    # The figures of one refresh reach the page one after another: wait for the last one looked at.
    while _kpi(page, "runs") != f"{expected['runs'] + 1:,}" or \
            "hello" not in page.evaluate(READ_SOURCE, "durations-p50")["workflow"]:
        assert time.monotonic() < deadline, f"the dashboard did not refresh: {_kpi(page, 'runs')}"
        time.sleep(0.5)

    # ?run=<uid> opens the run: every attempt on the Gantt, links to its notebook and to Lab.
    retried = next(row["run_uid"] for row in history.stages if row["attempt"] == 2)
    page.goto(lab.page_url(f"flowdapt/dashboard/?run={retried}"))
    page.locator("[data-run-state]").wait_for(timeout=30_000)
    gantt = page.evaluate(READ_SOURCE, "gantt")
    assert sorted(zip(gantt["stage"], gantt["attempt"])) == sorted(
        (row["stage"], row["attempt"]) for row in history.stages if row["run_uid"] == retried)
    assert page.locator("a[data-link=lab]").get_attribute("href") == f"/flowdapt-e2e/lab?flowdapt-run={retried}"
    notebook = page.locator(".fd-run-stages .tabulator-cell[tabulator-field=notebook] a").first.get_attribute("href")
    assert notebook == f"/flowdapt-e2e/flowdapt/api/v1/runs/{retried}/stages/load/notebook"
    assert f"run={retried}" in page.url  # the view is in the URL, to share
    flowdapt_page.shot("run")

    page.goto(lab.page_url("flowdapt/dashboard/?tab=triggers"))
    page.locator(".fd-trigger-firings .tabulator-row").first.wait_for(timeout=30_000)
    assert _cells(page, "trigger-firings", "outcome").count("missed") == 2
    assert outside == [], f"requests left 127.0.0.1: {outside}"
    assert flowdapt_page.errors == []


def test_the_standalone_dashboard_reads_the_server_and_downloads_the_runs(flowdapt_dash_lab, flowdapt_page, tmp_path):
    lab, history = flowdapt_dash_lab
    port = free_port()
    env = {**lab.env, "FLOWDAPT_URL": lab.url, "FLOWDAPT_TOKEN": TOKEN}
    log = (tmp_path / "dashboard.log").open("wb")
    process = subprocess.Popen([str(BIN / "flowdapt"), "dashboard", "--port", str(port)], env=env, stdout=log,
                               stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_for(url, process, tmp_path / "dashboard.log")
        page = flowdapt_page.page
        outside = _watch_requests(page)
        week = history.summary(since=history.now - timedelta(days=7), workflow="etl")
        page.goto(f"{url}?workflow=etl&tab=runs")
        page.locator(".fd-runs .tabulator-row").first.wait_for(timeout=30_000)
        matching = history.matching(workflow="etl", since=history.now - timedelta(days=7))
        assert page.get_by_text(f"{len(matching):,} runs", exact=True).count() == 1
        with page.expect_download() as download:
            page.get_by_role("button", name="Download CSV").click()
        lines = Path(download.value.path()).read_text().splitlines()
        assert lines[0].startswith("name,workflow,state,source,started_at")
        assert sorted(line.rsplit(",", 1)[1] for line in lines[1:]) == sorted(run["uid"] for run in matching)
        page.locator(".bk-tab", has_text="Overview").click()
        assert _kpi(page, "runs") == f"{week['runs']:,}"
        assert "workflow=etl" in page.url and "tab=runs" not in page.url
        errors = page.locator(".fd-errors .tabulator-cell[tabulator-field=lab] a").evaluate_all(
            "links => links.map(link => link.getAttribute('href'))")
        assert errors and all(href.startswith(f"{lab.url}lab?flowdapt-run=") for href in errors)
        flowdapt_page.shot("standalone")
        assert outside == [] and flowdapt_page.errors == []
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"flowdapt dashboard did not come up:\n{log.read_text()[-3000:]}")
        time.sleep(0.25)
