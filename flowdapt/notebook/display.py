"""How runs appear in IPython: a live :class:`~flowdapt.notebook.widget.RunView` in a kernel,
plain text elsewhere, and a view for every run a cell starts with ``flowdapt.run_workflow``.

A run is shown once per cell: the magic shows its live view and returns the run as ``_``
without showing it a second time. ipywidgets is imported only when a view is built.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from flowdapt.events import Event, RunStarted, subscribe
from flowdapt.resources.models import WorkflowRun

_shown: dict[str, int] = {}
_unsubscribe: Callable[[], None] | None = None


def _shell() -> Any:
    from IPython import get_ipython

    return get_ipython()


def in_kernel(shell: Any = None) -> bool:
    """Whether code runs in a Jupyter kernel (where widgets have a frontend)."""
    shell = shell if shell is not None else _shell()
    return shell is not None and getattr(shell, "kernel", None) is not None


def show_run(run: WorkflowRun, current: Callable[[], WorkflowRun] | None = None, view: Any = None) -> Any:
    """Display ``run`` (live until it ends, following ``current()``); returns the view, if one was shown."""
    shell = _shell()
    if not in_kernel(shell):
        from flowdapt.notebook.widget import run_summary

        print(run_summary(run))
        return None
    if _shown.get(run.uid) == shell.execution_count:
        return None
    from IPython.display import display

    from flowdapt.notebook.widget import RunView

    # A view made here for a run of this process hears its events (its log lines) until the run ends.
    listening = view is None and run.in_this_process
    view = view or RunView(run)
    view.show(run)
    if not run.done:
        view.follow(current or (lambda: run), logs=_server_logs(run),
                    on_end=subscribe(view.on_event) if listening else None)
    _shown[run.uid] = shell.execution_count
    display(view)
    return view


def _server_logs(run: WorkflowRun) -> Callable[[int], list] | None:
    """Where a view reads the log lines of a run a server runs (a run of this process sends its lines as
    events instead): ``logs(after)``, or ``None``."""
    if run.in_this_process:
        return None
    from flowdapt.client import Client, find_server

    if find_server() is None:
        return None
    client: list[Client] = []

    def logs(after: int) -> list:
        if not client:
            client.append(Client())
        return client[0].logs(run.uid, after=after)  # type: ignore[return-value]

    return logs


def _on_event(event: Event) -> None:
    # Runs started in a cell's own thread (run_workflow with wait=True) get a live view at once.
    if type(event) is RunStarted and threading.current_thread() is threading.main_thread() and in_kernel():
        show_run(event.run)


def install(shell: Any) -> None:
    """Show runs as views in ``shell`` (idempotent)."""
    global _unsubscribe
    shell.display_formatter.ipython_display_formatter.for_type(WorkflowRun, show_run)
    if _unsubscribe is None:
        _unsubscribe = subscribe(_on_event)


def uninstall(shell: Any) -> None:
    """Undo :func:`install`."""
    global _unsubscribe
    shell.display_formatter.ipython_display_formatter.type_printers.pop(WorkflowRun, None)
    if _unsubscribe is not None:
        _unsubscribe()
        _unsubscribe = None
