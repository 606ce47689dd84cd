"""``flowctl run --no-wait`` without a server: the run goes on in a background process of its own.

The command starts ``flowctl run --wait`` detached (a new session, its output in
``<app dir>/logs/<run uid>.log``), waits until that process has started the run, prints it and
returns. The background process holds the embedded store until the run ends and serves it to other
flowctl commands meanwhile (:mod:`flowdapt.workspace.sharing`), so they can list, inspect and cancel it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from flowdapt.errors import FlowdaptError, ResourceNotFoundError
from flowdapt.resources.models import WorkflowRun

if TYPE_CHECKING:
    from flowdapt.workspace import LocalBackend

START_TIMEOUT = 120.0  # seconds for the background process to start the run (imports, a cluster start)


def run_detached(state: Any, backend: "LocalBackend", workflow: str, input_args: list[str], executor: str | None,
                 namespace: str | None, command: str = "run") -> tuple[WorkflowRun, int, Path]:
    """Start ``workflow`` in a background ``flowctl run`` (or ``command``: ``rerun`` and ``retry`` name a run
    instead); (the run as it started, its pid, its log file)."""
    from flowdapt.workspace import connect
    from flowdapt.workspace.sharing import shared_store

    settings = state.settings
    state.close()  # the background process opens the store
    uid = uuid4().hex
    logs = Path(settings.app_dir).expanduser() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{uid}.log"
    argv = [sys.executable, "-m", "flowdapt.cli.flowctl", "--app-dir", str(settings.app_dir),
            *(f"--set={override}" for override in state.overrides), *(["--debug"] if state.debug else []),
            command, workflow, "--wait", "--no-progress", f"--run-uid={uid}",
            *([f"--executor={executor}"] if executor else []), *([f"--namespace={namespace}"] if namespace else []),
            *input_args]
    with log.open("wb") as out:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        ended = child.poll() is not None
        holder = shared_store(settings.app_dir, settings.database_url())
        if ended or (holder is not None and holder["pid"] == child.pid):
            found = _started_run(connect(settings), uid)
            if found is not None:
                return found, child.pid, log
        if ended:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise FlowdaptError(f"the background run did not start: {tail[0]} (output: {log})")
        if time.monotonic() > deadline:
            raise FlowdaptError(f"the background run did not start within {START_TIMEOUT:.0f}s (output: {log})")
        time.sleep(0.05)


def _started_run(backend: Any, uid: str) -> WorkflowRun | None:
    """The run, once the background process has recorded it (``None`` before, or while it lets go of
    the store as the run ends)."""
    from flowdapt.client import ServerError

    try:
        return backend.get_run(uid)
    except (ResourceNotFoundError, ServerError):
        return None
    finally:
        backend.close()
