"""The JupyterLab extension end to end: a real ``jupyter lab`` (token, base URL ``/flowdapt-e2e/``) driven in
Debian's Chromium. Apply a workflow from the file browser, run it from the sidebar with a form value and watch
it finish without reloading, open its run view and DAG, cancel a long run, toggle a trigger, schedule a
notebook from the file browser and see its firing and output notebook, open runs by URL, the dashboards.

One Lab serves the module; each test opens its own page on a fresh workspace. Screenshots go to
``test-artifacts/``.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from tests.browser import (  # noqa: F401 - fixtures
    LabPage,
    LabProcess,
    copy_workbench,
    flowdapt_chromium,
    flowdapt_lab_module,
    flowdapt_page,
    free_port,
    jp_asyncio_loop,
    jp_server_cleanup,
)

WAIT = 30_000  # ms: Lab on a busy two-core machine


def workflow(name: str, *stages: dict) -> dict:
    return {"kind": "workflow", "metadata": {"name": name}, "spec": {"stages": list(stages)}}


HELLO = workflow("hello", {"name": "greet", "target": "flowdapt.examples.hello.greet"},
                 {"name": "sign", "target": "flowdapt.examples.hello.sign", "depends_on": ["greet"]})
SLOW = workflow("slow", {"name": "numbers", "target": "tests.stages.numbers"},
                {"name": "pause", "target": "tests.stages.pause", "type": "parameterized", "depends_on": ["numbers"]})


@pytest.fixture
def lab(flowdapt_lab_module) -> LabProcess:
    return flowdapt_lab_module


def apply(lab: LabProcess, *documents: dict) -> None:
    response = lab.api("POST", "apply", json=list(documents))
    assert response.status_code == 200, response.text


def open_lab(page: LabPage, lab: LabProcess, path: str = "lab", workspace: str | None = None) -> None:
    """Open Lab on a fresh workspace (named after the test) and wait until it has restored its layout."""
    workspace = workspace or page.name
    separator = "&" if "?" in path else "?"
    target = path.replace("lab", f"lab/workspaces/{workspace}", 1)
    page.page.goto(lab.page_url(f"{target}{separator}reset"))
    page.page.wait_for_function("window.jupyterapp !== undefined", timeout=WAIT * 2)
    page.page.evaluate("window.jupyterapp.restored.then(() => true)")


def execute(page: LabPage, command: str, args: dict | None = None) -> None:
    page.page.evaluate("([command, args]) => window.jupyterapp.commands.execute(command, args).then(() => null)",
                       [command, args or {}])


def show_sidebar(page: LabPage) -> None:
    execute(page, "flowdapt:open-sidebar")
    page.page.wait_for_selector(".jp-flowdapt-sidebar .jp-flowdapt-live-on", timeout=WAIT)


def context_menu(page: LabPage, folder: str, name: str, item: str) -> None:
    """Right-click ``name`` in the file browser (opened on ``folder``) and choose ``item``."""
    execute(page, "filebrowser:go-to-path", {"path": folder})
    page.page.click(f".jp-DirListing-item[title^='Name: {name}']", button="right", timeout=WAIT)
    page.page.click(f".lm-Menu-item:has-text('{item}')", timeout=WAIT)


def run_row(page: LabPage, workflow_name: str, state: str, timeout: float = WAIT):
    """The newest row of ``workflow_name`` in the runs list once it shows ``state``."""
    selector = f".jp-flowdapt-run[data-state='{state}']:has(.jp-flowdapt-run-workflow:text-is('{workflow_name}'))"
    page.page.wait_for_selector(selector, timeout=timeout)
    return page.page.locator(selector).first


def test_apply_a_workflow_from_the_file_browser(lab, flowdapt_page):
    page = flowdapt_page
    (lab.root_dir / "templates" / "broken.yaml").write_text(
        "kind: workflow\nmetadata: {name: broken}\nspec: {stages: [{name: a, target: flowdapt.examples.hello.greet,"
        " depends_on: [ghost]}]}\n")
    open_lab(page, lab)
    context_menu(page, "templates", "hello.yaml", "Apply to flowdapt")
    page.page.wait_for_selector(".jp-toast-message:has-text('hello.yaml: workflow hello created')", timeout=WAIT)
    context_menu(page, "templates", "broken.yaml", "Apply to flowdapt")
    error = page.page.locator(".jp-toast-message:has-text('broken.yaml:')")
    error.wait_for(timeout=WAIT)
    assert "ghost" in error.inner_text() and "\n" not in error.inner_text().strip()
    page.shot("notifications")
    show_sidebar(page)
    page.page.wait_for_selector(".jp-flowdapt-workflows [data-workflow='hello']", timeout=WAIT)
    assert page.page.locator(".jp-flowdapt-workflows [data-workflow='broken']").count() == 0
    assert lab.api("GET", "workflows/broken").status_code == 404
    assert not page.errors


def test_run_from_the_sidebar_with_a_form_value_then_run_view_and_dag(lab, flowdapt_page):
    page = flowdapt_page
    apply(lab, HELLO)
    open_lab(page, lab)
    show_sidebar(page)
    page.page.click(".jp-flowdapt-workflows [data-workflow='hello'] .jp-flowdapt-run-workflow", timeout=WAIT)
    page.page.fill(".jp-Dialog input[name='flowdapt-input-name']", "Ada")
    page.shot("form")
    page.page.click(".jp-Dialog button.jp-mod-accept")
    row = run_row(page, "hello", "finished")  # pushed by the server: the page is never reloaded
    page.page.wait_for_selector(".jp-toast-message:has-text('hello finished')", timeout=WAIT)
    row.click()
    view = page.page.locator(".jp-flowdapt-runview .jp-flowdapt-page[data-state='finished']")
    view.wait_for(timeout=WAIT)
    assert "Hello, Ada!" in view.locator(".jp-flowdapt-result").first.inner_text()
    assert view.locator(".jp-flowdapt-stage[data-state='finished']").count() == 2
    [run] = lab.api("GET", "runs", params={"workflow": "hello", "limit": 1}).json()
    assert run["input"] == {"name": "Ada"} and run["source"] == "manual"
    page.shot("run-view")
    view.locator("button:text-is('DAG')").click()
    dag = page.page.locator(f".jp-flowdapt-dag[data-run='{run['uid']}']")
    dag.wait_for(timeout=WAIT)
    page.page.wait_for_selector(".jp-flowdapt-dag-node[data-stage='sign'][data-state='finished']", timeout=WAIT)
    assert dag.locator(".jp-flowdapt-dag-edge").count() == 1
    page.shot("dag")
    assert not page.errors


def test_run_view_shows_the_error_its_traceback_and_failed_items(lab, flowdapt_page):
    page = flowdapt_page
    apply(lab, workflow("partial", {"name": "numbers", "target": "tests.stages.counted_numbers"},
                        {"name": "odd", "target": "tests.stages.fail_on_odd", "type": "parameterized",
                         "depends_on": ["numbers"]},
                        {"name": "boom", "target": "tests.stages.fail", "depends_on": ["odd"]}))
    run = lab.api("POST", "workflows/partial/run", json={"n": 6}).json()
    assert run["state"] == "failed"
    open_lab(page, lab)
    execute(page, "flowdapt:open-run", {"run": run["uid"]})
    view = page.page.locator(f".jp-flowdapt-runview .jp-flowdapt-page[data-run='{run['uid']}'][data-state='failed']")
    view.wait_for(timeout=WAIT)
    assert "ValueError in stage 'boom': stage exploded: bad value 42" in view.locator(".jp-flowdapt-error-line").first.inner_text()
    view.locator(".jp-flowdapt-error-box summary").first.click()
    assert "raise ValueError" in view.locator(".jp-flowdapt-traceback").first.inner_text()
    failures = view.locator(".jp-flowdapt-stage[data-stage='odd'] .jp-flowdapt-item-failures")
    assert "3 items failed" in failures.inner_text()
    failures.locator("summary").click()
    assert [row.inner_text().split("\t") for row in failures.locator("tbody tr").all()] == [
        ["#1", "ValueError: odd item 1"], ["#3", "ValueError: odd item 3"], ["#5", "ValueError: odd item 5"]]
    assert view.locator(".jp-flowdapt-stage[data-stage='odd'][data-state='finished']").count() == 1
    # What the stages printed and logged, with their stage and level.
    logs = view.locator(".jp-flowdapt-logs .jp-flowdapt-log-line[data-stage='numbers']")
    logs.first.wait_for(timeout=WAIT)
    assert [" ".join(line.split()[1:]) for line in logs.all_inner_texts()] == [
        "numbers stdout counting to 6", "numbers WARNING odd numbers will fail"]
    page.shot("run-view-logs")
    # Resume: a new run of what failed, which says which run it resumes (boom fails again).
    view.locator(".jp-flowdapt-resume-run").click()
    resumed = page.page.locator(".jp-flowdapt-runview .jp-flowdapt-page[data-state='failed']",
                                has=page.page.locator(f".jp-flowdapt-resumed-from:text-is('{run['uid']}')"))
    resumed.wait_for(timeout=WAIT)
    recorded = lab.api("GET", f"runs/{resumed.get_attribute('data-run')}").json()
    assert (recorded["resumed_from"], recorded["source"]) == (run["uid"], "manual")
    assert not page.errors


def test_a_long_run_shows_item_progress_live_and_is_cancelled(lab, flowdapt_page):
    page = flowdapt_page
    apply(lab, SLOW)
    open_lab(page, lab)
    show_sidebar(page)
    execute(page, "flowdapt:open-dag", {"workflow": "slow"})
    page.page.click(".jp-flowdapt-workflows [data-workflow='slow'] .jp-flowdapt-run-workflow", timeout=WAIT)
    page.page.fill(".jp-Dialog input[name='flowdapt-input-n']", "2000")  # 2000 items of 50 ms on two threads
    page.page.click(".jp-Dialog button.jp-mod-accept")
    row = run_row(page, "slow", "running")
    row.locator(".jp-flowdapt-progress").wait_for(timeout=WAIT)  # items done, pushed as they complete
    page.page.wait_for_selector(".jp-flowdapt-dag-node[data-stage='pause'][data-state='running']", timeout=WAIT)
    page.page.wait_for_selector(".jp-flowdapt-dag-node[data-stage='numbers'][data-state='finished']", timeout=WAIT)
    page.shot("running")
    assert page.page.locator(".jp-flowdapt-status-item").get_attribute("data-running") == "1"
    row.locator(".jp-flowdapt-cancel").click()
    run_row(page, "slow", "cancelled")
    [run] = lab.api("GET", "runs", params={"workflow": "slow", "limit": 1}).json()
    assert run["state"] == "cancelled"
    page.page.wait_for_selector(".jp-flowdapt-status-item[data-running='0']", timeout=WAIT)
    assert not page.errors


def test_toggle_a_trigger_and_apply_it_back_from_yaml(lab, flowdapt_page):
    page = flowdapt_page
    apply(lab, HELLO, {"kind": "trigger_rule", "metadata": {"name": "yearly"}, "spec": {
        "type": "schedule", "rule": ["0 0 1 1 *"], "action": {"target": "run_workflow",
                                                             "parameters": {"workflow": "hello"}}}})
    open_lab(page, lab)
    show_sidebar(page)
    item = page.page.locator(".jp-flowdapt-trigger[data-trigger='yearly']")
    item.wait_for(timeout=WAIT)
    assert "next" in item.inner_text() and item.get_attribute("data-enabled") == "true"
    item.locator(".jp-flowdapt-switch").click()
    page.page.wait_for_selector(".jp-flowdapt-trigger[data-trigger='yearly'][data-enabled='false']", timeout=WAIT)
    assert lab.api("GET", "triggers/yearly").json()["status"]["enabled"] is False
    item.locator(".jp-flowdapt-switch").click()
    page.page.wait_for_selector(".jp-flowdapt-trigger[data-trigger='yearly'][data-enabled='true']", timeout=WAIT)
    assert lab.api("GET", "triggers/yearly").json()["status"]["enabled"] is True
    item.locator("[title='Open as YAML']").click()  # the resource as YAML, applied back unchanged
    editor = page.page.locator(".jp-flowdapt-yaml .cm-content")
    page.page.wait_for_selector(".jp-flowdapt-yaml .cm-content:has-text('kind: trigger_rule')", timeout=WAIT)
    assert "name: yearly" in editor.inner_text() and "0 0 1 1 *" in editor.inner_text()
    page.page.locator(".jp-flowdapt-yaml .jp-Toolbar").get_by_text("Apply", exact=True).click()
    page.page.wait_for_selector(".jp-toast-message:has-text('trigger_rule yearly: unchanged')", timeout=WAIT)
    lab.api("DELETE", "triggers/yearly")


def test_run_and_schedule_a_notebook_from_the_file_browser_and_see_its_firing(lab, flowdapt_page):
    page = flowdapt_page
    open_lab(page, lab)
    context_menu(page, "notebooks/stages", "city_report.ipynb", "Run as a notebook stage…")
    page.page.fill(".jp-Dialog input[name='flowdapt-input-title']", "Now")
    page.page.click(".jp-Dialog button.jp-mod-accept")
    page.page.wait_for_selector(".jp-toast-message:has-text('notebook-city_report finished')", timeout=WAIT * 2)
    [run] = lab.api("GET", "runs", params={"workflow": "notebook-city_report", "limit": 1}).json()
    assert (run["source"], run["input"]["title"], run["result"]["title"]) == ("manual", "Now", "Now")
    context_menu(page, "notebooks/stages", "city_report.ipynb", "Schedule notebook…")
    dialog = page.page.locator(".jp-Dialog")
    dialog.locator("input[name='flowdapt-input-title']").wait_for(timeout=WAIT)
    assert dialog.locator("input[name='flowdapt-input-title']").input_value() == "Report"  # the parameters cell
    due = datetime.now(timezone.utc) + timedelta(seconds=6)
    dialog.locator("input[name='flowdapt-cron']").fill(f"{due.minute} {due.hour} * * * {due.second}")  # once
    dialog.locator("select[name='flowdapt-timezone']").select_option("UTC")
    dialog.locator("input[name='flowdapt-input-title']").fill("Scheduled report")
    page.shot("schedule-dialog")
    dialog.locator("button.jp-mod-accept").click()
    item = page.page.locator(".jp-flowdapt-trigger[data-trigger='schedule-city_report']")
    item.wait_for(timeout=WAIT)  # the dialog made the trigger and activated the sidebar
    trigger = lab.api("GET", "triggers/schedule-city_report").json()
    assert trigger["spec"]["action"] == {"target": "run_notebook", "parameters": {
        "notebook": "notebooks/stages/city_report.ipynb", "parameters": {
            "title": "Scheduled report", "temperatures": [{"city": "oslo", "values": [1.0, 2.0, 3.0]}]}}}
    assert lab.api("GET", "workflows/notebook-city_report").status_code == 200
    item.locator(".jp-flowdapt-item-main").click()  # show its firings
    firing = item.locator(".jp-flowdapt-firing[data-ok='true']")
    firing.wait_for(timeout=WAIT)  # fired by the server's schedule, pushed to the page
    firing.locator("a:text-is('run')").click()
    view = page.page.locator(".jp-flowdapt-runview .jp-flowdapt-page[data-state='finished']")
    view.wait_for(timeout=WAIT * 2)
    view.locator(".jp-flowdapt-notebook-link").click()
    notebook = page.page.locator(".jp-NotebookPanel:visible")
    # The injected parameters of that run, in Lab's notebook editor, read-only.
    notebook.locator(".jp-Cell:has-text('Scheduled report')").first.wait_for(timeout=WAIT)
    assert "read-only" in notebook.locator(".jp-NotebookPanel-toolbar").inner_text()
    page.shot("output-notebook")
    lab.api("DELETE", "triggers/schedule-city_report")
    assert not page.errors


def test_a_run_view_opens_from_its_url_and_comes_back_after_a_reload(lab, flowdapt_page):
    page = flowdapt_page
    apply(lab, HELLO)
    run = lab.api("POST", "workflows/hello/run", json={"name": "url"}).json()
    open_lab(page, lab, f"lab?flowdapt-run={run['name']}")
    view = page.page.locator(f".jp-flowdapt-runview .jp-flowdapt-page[data-run='{run['uid']}']")
    view.wait_for(timeout=WAIT)
    assert "flowdapt-run" not in page.page.url  # opened once: a reload does not reopen it
    saved_layout(lab, page.name, "flowdapt-run:")
    page.page.goto(lab.page_url(f"lab/workspaces/{page.name}"))  # the same workspace: Lab restores the view
    page.page.wait_for_function("window.jupyterapp !== undefined", timeout=WAIT * 2)
    view.wait_for(timeout=WAIT)


def saved_layout(lab: LabProcess, workspace: str, key: str, timeout: float = 20) -> dict:
    """The workspace Lab saved on the server, once it holds ``key`` (Lab saves the layout with a short delay)."""
    deadline = time.monotonic() + timeout
    while True:
        response = lab.lab_api("GET", f"workspaces/{workspace}")
        data = response.json().get("data", {}) if response.status_code == 200 else {}
        if any(name.startswith(key) for name in data) or time.monotonic() > deadline:
            return data
        time.sleep(0.2)


def test_live_state_recovers_after_the_connection_drops(lab, flowdapt_page):
    page = flowdapt_page
    apply(lab, HELLO)
    # While "offline", new sockets go nowhere; Lab's event manager keeps retrying with back-off.
    page.page.add_init_script("""
        const Native = window.WebSocket;
        window.flowdaptOffline = false;
        window.flowdaptSockets = [];
        window.WebSocket = class extends Native {
          constructor(url, protocols) {
            super(window.flowdaptOffline ? 'ws://127.0.0.1:9/' : url, protocols);
            window.flowdaptSockets.push(this);
          }
        };""")
    open_lab(page, lab)
    show_sidebar(page)
    page.page.evaluate("window.flowdaptOffline = true;"
                       "window.flowdaptSockets.filter(s => s.url.includes('/api/events/')).forEach(s => s.close())")
    page.page.wait_for_selector(".jp-flowdapt-live-off", timeout=WAIT)  # no heartbeat for a while
    run = lab.api("POST", "workflows/hello/run", json={"name": "missed"}).json()  # its events are missed
    assert page.page.locator(f".jp-flowdapt-run[data-run='{run['uid']}']").count() == 0
    page.page.evaluate("window.flowdaptOffline = false")
    page.page.wait_for_selector(".jp-flowdapt-live-on", timeout=WAIT * 2)
    page.page.wait_for_selector(f".jp-flowdapt-run[data-run='{run['uid']}'][data-state='finished']", timeout=WAIT)
    assert not page.errors


def test_dashboards_open_inside_lab_under_the_base_url(lab, flowdapt_page):
    page = flowdapt_page
    apply(lab, HELLO)
    assert lab.api("POST", "workflows/hello/run", json={"name": "dask"}, params={"executor": "dask"},
                   timeout=120).json()["state"] == "finished"
    open_lab(page, lab)
    show_sidebar(page)
    # The run-history dashboard (issue 21's Panel app, served at this URL with Jupyter's authentication).
    page.page.click(".jp-LauncherCard:has-text('flowdapt dashboard')", timeout=WAIT)
    frame = page.page.locator(".jp-flowdapt-frame iframe")
    frame.wait_for(timeout=WAIT)
    assert frame.get_attribute("src").endswith("/flowdapt-e2e/flowdapt/dashboard/")
    execute(page, "flowdapt:open-dashboard", {"run": "quick-fox-1"})
    page.page.wait_for_selector(".jp-flowdapt-frame iframe[src$='/flowdapt-e2e/flowdapt/dashboard/?run=quick-fox-1']",
                                timeout=WAIT)
    page.page.click(".jp-flowdapt-header-links a[data-dashboard='flowdapt']")  # the sidebar's link
    assert page.page.locator(".jp-flowdapt-frame").count() == 1
    dask = page.page.locator(".jp-flowdapt-header-links a[data-dashboard='dask']")
    dask.wait_for(timeout=WAIT)
    dask.click()
    # dask-labextension shows the cluster the server started, through jupyter-server-proxy under the base URL.
    [board] = [board for board in lab.api("GET", "status").json()["dashboards"] if board["kind"] == "dask"]
    port = board["target"].split(":")[-1].split("/")[0]
    panes = page.page.locator(f"iframe[src*='/flowdapt-e2e/proxy/{port}/individual-']")
    panes.first.wait_for(timeout=WAIT)
    assert panes.count() >= 3  # dask-labextension's default layout: task stream, memory, progress
    assert not any(f"127.0.0.1:{port}" in (panes.nth(i).get_attribute("src") or "") for i in range(panes.count()))
    # Bokeh's plots draw: the dashboard's websocket works through the proxy too.
    page.page.frame_locator("iframe[src*='individual-task-stream']").locator("canvas").first.wait_for(timeout=WAIT)
    page.shot("dask")
    assert not page.errors


def test_the_ray_dashboard_opens_inside_lab_under_the_base_url(tmp_path, flowdapt_page):
    """A lab whose default executor is Ray with its dashboard on: the sidebar opens Ray's own dashboard in a frame,
    through jupyter-server-proxy under the base URL, and the dashboard's API answers through the proxy too."""
    app_dir, port = tmp_path / "app", free_port()
    app_dir.mkdir()
    (app_dir / "flowdapt.yaml").write_text(yaml.safe_dump({"executor": {"name": "ray", "options": {
        "include_dashboard": True, "dashboard_port": port, "num_cpus": 2, "object_store_memory": "500MB"}}}))
    lab = LabProcess(copy_workbench(tmp_path / "workbench"), tmp_path / "home", app_dir,
                     extra_args=("--LabApp.expose_app_in_browser=True",))
    try:
        apply(lab, HELLO)
        run = lab.api("POST", "workflows/hello/run", json={"name": "ray"}, timeout=120).json()
        assert (run["state"], run["executor"]) == ("finished", "ray")
        [board] = [board for board in lab.api("GET", "status").json()["dashboards"] if board["kind"] == "ray"]
        assert (board["url"], board["proxied"]) == (f"proxy/{port}/", True)
        page = flowdapt_page
        open_lab(page, lab)
        show_sidebar(page)
        page.page.click(".jp-flowdapt-header-links a[data-dashboard='ray']", timeout=WAIT)
        page.page.locator(f".jp-flowdapt-frame iframe[src$='/flowdapt-e2e/proxy/{port}/']").wait_for(timeout=WAIT)
        # Ray's page draws in the frame and reads the cluster through the proxy: its one node is listed.
        dashboard = page.page.frame_locator(f"iframe[src$='/proxy/{port}/']")
        dashboard.locator("text=Node Status").wait_for(timeout=WAIT * 2)
        dashboard.locator("text=Active:").wait_for(timeout=WAIT)
        page.shot("ray")
        assert not page.errors
    finally:
        lab.stop()
