"""Notebook integration: ``%flowdapt`` magics, cell stages, notebook stages, live run views.

Inside a notebook that runs as a stage: :func:`set_result`, :func:`fetch`, :func:`get_run_context`.
IPython, ipywidgets and papermill are imported only when the features that need them are used.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from flowdapt.notebook.stage_api import fetch, get_run_context, set_result

__all__ = ["set_result", "fetch", "get_run_context", "load_ipython_extension",
           "unload_ipython_extension", "run_notebook"]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext flowdapt``: register the magics and the run display."""
    from flowdapt.notebook.magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext flowdapt``: close the backend the magics opened."""
    from flowdapt.notebook.magics import unload

    unload(ipython)


def run_notebook(*args: Any, **kwargs: Any) -> Any:
    """Run one notebook as a recorded one-stage workflow; see :func:`flowdapt.notebook.actions.run_notebook`."""
    from flowdapt.notebook.actions import run_notebook as run

    return run(*args, **kwargs)


def install_in_kernel() -> None:
    """In a Jupyter kernel, show runs as live views even without ``%load_ext``; in a kernel a server
    started (``FLOWDAPT_URL``), look workflow names up on that server and record the kernel's own runs
    in its history (cheap elsewhere: nothing talks to the server before a name is looked up or a run
    is started)."""
    if "ipykernel" not in sys.modules:
        return
    from IPython import get_ipython

    shell = get_ipython()
    if getattr(shell, "kernel", None) is not None:
        from flowdapt.notebook import display

        display.install(shell)
        if os.environ.get("FLOWDAPT_URL"):
            from flowdapt.client import ServerCatalog
            from flowdapt.notebook.reporting import report_runs_to_server
            from flowdapt.resources import catalog

            server = ServerCatalog()
            catalog.set_catalog(server)
            reporter = report_runs_to_server(lambda: server.client)
            # A run a cell ran is on the server when the cell ends: the next cell (or a kernel shut down
            # right after) finds it there.
            shell.events.register("post_run_cell", lambda result: reporter.flush(5.0))
