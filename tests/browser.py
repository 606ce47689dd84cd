"""A real JupyterLab in a subprocess and a real Chromium driven by Playwright, for browser tests.

Test modules import the fixtures they use (``from tests.browser import flowdapt_lab, flowdapt_page``).
Chromium is Debian's (``/usr/bin/chromium``, or ``FLOWDAPT_CHROMIUM``); Playwright never downloads a
browser. Without Chromium the browser tests are skipped with that reason, unless
``FLOWDAPT_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes its absence a failure. Screenshots go to
``test-artifacts/`` (or ``FLOWDAPT_TEST_ARTIFACTS``): one per test at its end, plus the ones a test
takes with :meth:`LabPage.shot`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TOKEN = "browser-test-token"
BASE_URL = "/flowdapt-e2e/"  # a non-root base URL catches links that forget it
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def artifacts_dir() -> Path:
    """Where screenshots are kept."""
    folder = Path(os.environ.get("FLOWDAPT_TEST_ARTIFACTS") or ROOT / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium_path() -> str:
    """Debian's Chromium; skips the test (fails under ``FLOWDAPT_REQUIRE_BROWSER=1``) when it is absent."""
    path = os.environ.get("FLOWDAPT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        message = f"no Chromium at {path}: apt-get install chromium (or set FLOWDAPT_CHROMIUM)"
        if os.environ.get("FLOWDAPT_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def isolated_env(home: Path, app_dir: Path, **extra: str) -> dict[str, str]:
    """This process's environment without flowdapt/Jupyter settings, with its own home and app dir."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("FLOWDAPT_", "JUPYTER"))}
    env.update(HOME=str(home), FLOWDAPT_APP_DIR=str(app_dir), JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), RAY_AUTH_MODE="disabled", PYTHONPATH=str(ROOT), **extra)
    return env


class LabProcess:
    """``jupyter lab`` with a token and a non-root base URL, serving ``root_dir``."""

    def __init__(self, root_dir: Path, home: Path, app_dir: Path, *, command: str = "lab",
                 extra_args: tuple[str, ...] = ()) -> None:
        self.root_dir = root_dir
        self.app_dir = app_dir
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.origin}{BASE_URL}"
        self.log_path = home / f"{command}.log"
        home.mkdir(parents=True, exist_ok=True)
        settings = home / "lab-settings"
        self.env = isolated_env(home, app_dir, JUPYTERLAB_SETTINGS_DIR=str(settings))
        # No "get notified about Jupyter news?" toast over the page: it hides what the tests look at.
        notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        notification.parent.mkdir(parents=True, exist_ok=True)
        notification.write_text('{"fetchNews": "false", "checkForUpdates": false}')
        argv = [str(BIN / "jupyter"), command, "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
                f"--ServerApp.base_url={BASE_URL}", f"--IdentityProvider.token={TOKEN}",
                f"--ServerApp.root_dir={root_dir}", "--allow-root", *extra_args]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(argv, cwd=root_dir, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.api("GET", "status").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"jupyter lab did not come up:\n{self.log()[-4000:]}")
            time.sleep(0.25)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request to the flowdapt REST API, with the token."""
        return httpx.request(method, f"{self.url}flowdapt/api/v1/{path}", timeout=kwargs.pop("timeout", 30),
                             headers={"Authorization": f"token {TOKEN}"}, **kwargs)

    def lab_api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request to JupyterLab's own REST API (``lab/api/``: workspaces, settings), with the token."""
        return httpx.request(method, f"{self.url}lab/api/{path}", timeout=kwargs.pop("timeout", 30),
                             headers={"Authorization": f"token {TOKEN}"}, **kwargs)

    def page_url(self, path: str = "lab") -> str:
        """A Lab URL under the base URL, logged in by the token."""
        separator = "&" if "?" in path else "?"
        return f"{self.url}{path}{separator}token={TOKEN}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class LabPage:
    """A Playwright page with the errors it raised and a screenshot helper."""

    def __init__(self, page: Any, name: str) -> None:
        self.page = page
        self.name = name
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def shot(self, label: str = "") -> Path:
        path = artifacts_dir() / f"{self.name}{'-' + label if label else ''}.png"
        self.page.screenshot(path=str(path), full_page=False)
        return path


@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> Iterator[Any]:
    """pytest-jupyter's autouse loop fixture, replaced in the modules that import this one: Playwright's sync
    API marks its own loop as running between calls, and pytest-jupyter's fixture would take that loop as
    the current one and close it after the test. Browser tests need no loop of their own."""
    import asyncio

    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> Iterator[None]:
    """pytest-jupyter's autouse cleanup of its in-process server, replaced likewise: browser tests start
    none, and it would run its cleanup on a loop while Playwright's is marked running."""
    yield


@pytest.fixture(scope="module")
def flowdapt_chromium() -> Iterator[Any]:
    """A headless Debian Chromium under Playwright, shared by a test module."""
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def flowdapt_page(flowdapt_chromium, request) -> Iterator[LabPage]:
    """A fresh browser page (1400×900); its last screen is saved as ``<test name>.png``."""
    context = flowdapt_chromium.new_context(viewport={"width": 1400, "height": 900})
    page = LabPage(context.new_page(), request.node.name.replace("/", "_"))
    yield page
    try:
        page.shot()
    finally:
        context.close()


def copy_workbench(root: Path) -> Path:
    """A workbench root holding a copy of the repository's ``notebooks/`` and ``templates/``."""
    shutil.copytree(ROOT / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copytree(ROOT / "templates", root / "templates")
    return root


@pytest.fixture
def flowdapt_lab(tmp_path, flowdapt_app_dir) -> Iterator[LabProcess]:
    """JupyterLab serving a copy of the repository's ``notebooks/`` and ``templates/``."""
    lab = LabProcess(copy_workbench(tmp_path / "workbench"), tmp_path / "home", flowdapt_app_dir)
    yield lab
    lab.stop()


@pytest.fixture(scope="module")
def flowdapt_lab_module(tmp_path_factory) -> Iterator[LabProcess]:
    """One JupyterLab for a whole test module (as :func:`flowdapt_lab`), exposing ``window.jupyterapp`` and
    sending live-update heartbeats every second."""
    base = tmp_path_factory.mktemp("lab")
    lab = LabProcess(copy_workbench(base / "workbench"), base / "home", base / "app",
                     extra_args=("--LabApp.expose_app_in_browser=True", "--FlowdaptApp.live_heartbeat_seconds=1"))
    yield lab
    lab.stop()
