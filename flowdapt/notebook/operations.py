"""``%flowdapt logs``, ``%flowdapt rerun`` and ``%flowdapt retry``: operating runs from a notebook.

They go through the magics' backend, like the other commands (a server under Lab, else the embedded
store with runs in the kernel): ``logs`` returns the lines (a list that prints as text and renders as
HTML), ``rerun`` and ``retry`` show the new run's live view and fail the cell unless it finishes,
as ``%flowdapt run`` does.
"""

from __future__ import annotations

import html
import time
from typing import Any

from flowdapt.resources.models import WorkflowRun


class LogLines(list):
    """Captured lines of a run: a list of :class:`~flowdapt.history.models.LogLine` shown as text."""

    def __repr__(self) -> str:
        return "\n".join(line.render() for line in self) or "(no lines)"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(repr(self))}</pre>"


def logs_command(magics: Any, argv: list[str]) -> LogLines:
    """``%flowdapt logs RUN [--stage S] [--attempt N]``."""
    from flowdapt.notebook.magics import _parser

    parser = _parser("logs", "What a run's stages printed and logged.")
    parser.add_argument("run", metavar="RUN")
    parser.add_argument("--stage")
    parser.add_argument("--attempt", type=int)
    args = parser.parse_args(argv)
    return LogLines(magics._flushed().logs(args.run, stage=args.stage, attempt=args.attempt))


def run_again_command(magics: Any, operation: str, argv: list[str]) -> WorkflowRun:
    """``%flowdapt rerun RUN`` (same input, same workflow version) and ``%flowdapt retry RUN`` (resume a
    failed or cancelled run), with ``--executor`` and ``--no-wait``."""
    from flowdapt.workspace import LocalBackend
    from flowdapt.notebook import display
    from flowdapt.notebook.magics import MagicError, RunEndedError, _new_view, _parser

    what = "Run a run again: its input and workflow version." if operation == "rerun" else \
        "Resume a failed or cancelled run: finished stages reused where their outputs were kept."
    parser = _parser(operation, what)
    parser.add_argument("run", metavar="RUN")
    parser.add_argument("--executor", help="local, dask or ray (default: the one the run ran on)")
    parser.add_argument("--no-wait", dest="wait", action="store_false", help="return at once")
    args = parser.parse_args(argv)
    backend = magics._flushed()
    view = _new_view()
    start = backend.rerun if operation == "rerun" else backend.resume
    run = start(args.run, wait=False, executor=args.executor, on_event=view.on_event if view else None)
    local = isinstance(backend, LocalBackend)
    uid = run.uid
    current = (lambda: run) if local else (lambda: backend.get_run(uid))
    if view is not None:
        display.show_run(run, current, view)
    if not args.wait:
        return run
    try:
        while not run.done:
            time.sleep(0.05)
            run = current()
    except KeyboardInterrupt:
        backend.cancel(run.uid)
        raise MagicError(f"interrupted: cancel requested for run '{run.name}'") from None
    if run.state != "finished":
        raise RunEndedError(run)
    return run
