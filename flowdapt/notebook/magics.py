"""``%flowdapt`` and ``%%flowdapt stage``: flowctl's commands inside IPython.

Commands go through the same backend as ``flowctl`` (a server when ``FLOWDAPT_URL`` names one, as
in a kernel that Lab started, else the embedded store with runs in this kernel) and behave the
same on both. They return Python objects (tables of resources or runs, the run record) that render
as HTML in Jupyter. Bad arguments raise IPython's ``UsageError`` (one line); failures show one
``error:`` line, never a flowdapt traceback. A run that ``%flowdapt run`` waited for and that did
not finish fails the cell with its stage's error and traceback, so Run All stops there.
"""

from __future__ import annotations

import argparse
import atexit
import html
import os
import re
import shlex
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from flowdapt.errors import FlowdaptError
from flowdapt.history.models import RunQuery
from flowdapt.notebook import display
from flowdapt.notebook.cell_stage import StageCell, apply_stage_cell, cell_function
from flowdapt.notebook.reporting import flush_reported_runs
from flowdapt.resources.loading import load as load_resources
from flowdapt.resources.models import WorkflowRun
from flowdapt.settings import get_settings
from flowdapt.workspace import Backend, LocalBackend, connect
from flowdapt.workspace.inputs import InputError, coerce, parse_input
from flowdapt.workspace.tables import COLUMNS, KIND_NAMES, RUN_KIND

COMMANDS = ("apply", "run", "runs", "get", "status", "cancel", "stage", "dashboard", "logs", "rerun", "retry")
Column = tuple[str, Callable[[Any], str]]
_APPLIED: list[Column] = [("KIND", lambda row: row[0].kind), ("NAME", lambda row: row[0].name),
                          ("OUTCOME", lambda row: row[1])]


class MagicError(FlowdaptError):
    """A command failed; IPython shows it as one ``error:`` line."""

    def _render_traceback_(self) -> list[str]:
        return [f"error: {self}"]


class RunEndedError(MagicError):
    """A run that ``%flowdapt run`` waited for did not finish: the cell fails, so Run All stops there.

    IPython shows one line naming the run, the stage and its error, then the stage's own traceback.
    The run's record is ``run``.
    """

    def __init__(self, run: WorkflowRun) -> None:
        if run.error is not None:
            message = f"run '{run.name}' of workflow '{run.workflow}' {run.state}: {run.error}"
        else:
            message = f"run '{run.name}' of workflow '{run.workflow}' was {run.state}"
        super().__init__(message)
        self.run = run

    def _render_traceback_(self) -> list[str]:
        lines = [f"error: {self}"]
        if self.run.error is not None and self.run.error.traceback:
            lines += ["", *self.run.error.traceback.rstrip().splitlines()]
        return lines


class Table(list):
    """Rows (resources, runs, …) that print as a table and render as HTML; still a list."""

    def __init__(self, items: Sequence[Any], columns: list[Column]) -> None:
        super().__init__(items)
        self.columns = columns

    def _cells(self) -> list[list[str]]:
        return [[getter(item) for _, getter in self.columns] for item in self]

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(name)}</th>" for name, _ in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
                       for row in self._cells())
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        rows = [[name for name, _ in self.columns], *self._cells()]
        widths = [max(len(row[i]) for row in rows) for i in range(len(self.columns))]
        return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


class Mapping(dict):
    """``key: value`` pairs (``status``) that render as a two-column table."""

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(str(key))}</th>"
                       f"<td style='text-align:left'>{html.escape(str(value))}</td></tr>" for key, value in self.items())
        return f"<table>{rows}</table>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        width = max((len(str(key)) for key in self), default=0)
        printer.text("\n".join(f"{str(key).ljust(width)}  {value}" for key, value in self.items()))


class _Done(Exception):
    """``--help`` was printed."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one-line ``UsageError`` and never exits the kernel."""

    def error(self, message: str) -> None:  # type: ignore[override]
        usage = " ".join(self.format_usage().split()[1:])
        raise UsageError(f"{message} (usage: {usage})")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        raise _Done()


def _parser(command: str, description: str) -> _Parser:
    return _Parser(prog=f"%flowdapt {command}", description=description, allow_abbrev=False)


def _key_values(pairs: list[str] | None, option: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} takes KEY=VALUE pairs, got '{pair}'")
        out[key] = coerce(value)
    return out


def default_workflow() -> str:
    """The workflow name for stage cells without ``--workflow``: the notebook's name, else ``notebook``."""
    session = os.environ.get("JPY_SESSION_NAME", "")
    stem = re.sub(r"[^A-Za-z0-9_-]", "-", Path(session).stem).strip("-") if session else ""
    return stem or "notebook"


@magics_class
class FlowdaptMagics(Magics):
    """The ``%flowdapt`` line magic and the ``%%flowdapt stage`` cell magic."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._backend: Backend | None = None
        self._workflow: str | None = None
        self._live: dict[str, WorkflowRun] = {}  # runs this kernel started (local backend), by name and uid

    def backend(self) -> Backend:
        """The backend, opened on first use and kept while the extension is loaded."""
        if self._backend is None:
            self._backend = connect(get_settings(), share="an IPython session (%flowdapt magics)")
        return self._backend

    def _flushed(self) -> Backend:
        """The backend, with the runs of this kernel written out (the local store writes in batches; a
        server gets the records of the kernel's own runs from a reporter)."""
        backend = self.backend()
        if isinstance(backend, LocalBackend):
            backend.store.flush()
        else:
            flush_reported_runs()
        return backend

    def close(self) -> None:
        """Close the backend (the local one writes out the history)."""
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    @line_cell_magic
    def flowdapt(self, line: str, cell: str | None = None) -> Any:
        """``%flowdapt apply|run|runs|get|status|cancel ...``; ``%%flowdapt stage NAME ...`` on a cell."""
        try:
            argv = shlex.split(line, comments=True)  # `%flowdapt run w  # a comment` as in a shell
        except ValueError as exc:
            raise UsageError(f"%flowdapt: {exc}") from None
        command = argv[0] if argv else ""
        if command not in COMMANDS:
            known = ", ".join(COMMANDS)
            raise UsageError(f"%flowdapt: unknown command '{command}' (known: {known})" if command
                             else f"%flowdapt: a command is needed ({known})")
        if (command == "stage") != (cell is not None):
            raise UsageError("stage is the cell magic %%flowdapt stage NAME; other commands are line magics")
        try:
            if cell is not None:
                return self._stage(argv[1:], cell)
            return getattr(self, f"_{command}")(argv[1:])
        except _Done:
            return None
        except (UsageError, MagicError):
            raise
        except InputError as exc:
            raise UsageError(str(exc)) from None
        except FlowdaptError as exc:
            raise MagicError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - one line, as flowctl prints it
            raise MagicError(f"{type(exc).__name__}: {exc}") from None

    # -- commands ---------------------------------------------------------------------------------
    def _apply(self, argv: list[str]) -> Table:
        parser = _parser("apply", "Create or update the resources in files or folders (all or nothing).")
        parser.add_argument("paths", nargs="*", metavar="PATH")
        parser.add_argument("-p", "--path", dest="more", action="append", default=[], metavar="PATH")
        args = parser.parse_args(argv)
        paths = args.paths + args.more
        if not paths:
            parser.error("give at least one PATH")
        resources = [resource for path in paths for resource in load_resources(path)]
        return Table(self.backend().apply(resources), _APPLIED)

    def _run(self, argv: list[str]) -> WorkflowRun:
        parser = _parser("run", "Run a workflow with input from --key value pairs.")
        parser.add_argument("workflow", metavar="NAME")
        parser.add_argument("--executor", help="local, dask or ray (default: configured)")
        parser.add_argument("-n", "--namespace")
        parser.add_argument("--no-wait", dest="wait", action="store_false", help="return at once")
        args, extra = parser.parse_known_args(argv)
        data = parse_input(extra)
        backend = self.backend()
        definition = backend.get("workflow", args.workflow)
        view = _new_view()
        current: Callable[[], WorkflowRun]
        if isinstance(backend, LocalBackend):
            from flowdapt.compute.api import run_workflow

            run = run_workflow(definition.name, data, executor=args.executor, namespace=args.namespace,
                               source="notebook", wait=False, on_event=view.on_event if view else None)
            current = lambda: run  # noqa: E731 - the live record
            self._live = {key: live for key, live in self._live.items() if not live.done}
            self._live[run.name] = self._live[run.uid] = run
        else:
            run = backend.run(definition.name, data, wait=False, executor=args.executor, namespace=args.namespace,
                              source="notebook")
            uid = run.uid
            current = lambda: backend.get_run(uid)  # noqa: E731
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

    def _runs(self, argv: list[str]) -> Table:
        parser = _parser("runs", "List runs, newest first.")
        parser.add_argument("workflow", nargs="?", metavar="WORKFLOW")
        parser.add_argument("--state")
        parser.add_argument("--source")
        parser.add_argument("--limit", type=int, default=50)
        args = parser.parse_args(argv)
        backend = self._flushed()
        if args.workflow:
            backend.get("workflow", args.workflow)  # an unknown workflow is an error, not an empty list
        query = RunQuery(workflow=args.workflow, state=args.state, source=args.source, limit=args.limit)
        return Table(backend.list_runs(query), COLUMNS[RUN_KIND])

    def _get(self, argv: list[str]) -> Table:
        parser = _parser("get", "List resources of KIND (workflows, runs, triggers, configs), or one by NAME.")
        parser.add_argument("kind", metavar="KIND")
        parser.add_argument("name", nargs="?", metavar="NAME")
        args = parser.parse_args(argv)
        kind = KIND_NAMES.get(args.kind.lower())
        if kind is None:
            parser.error(f"unknown kind '{args.kind}' (known: workflows, runs, triggers, configs)")
        if kind == RUN_KIND:
            if args.name and not args.kind.lower().endswith("s"):
                live = self._live.get(args.name)
                return Table([live or self._flushed().get_run(args.name)], COLUMNS[RUN_KIND])
            return self._runs([args.name] if args.name else [])
        backend = self.backend()
        items = [backend.get(kind, args.name)] if args.name else backend.list(kind)
        return Table(items, COLUMNS[kind])

    def _status(self, argv: list[str]) -> Mapping:
        _parser("status", "Where the magics work and what is stored there.").parse_args(argv)
        return Mapping(self._flushed().status())

    def _cancel(self, argv: list[str]) -> WorkflowRun:
        parser = _parser("cancel", "Ask a running run (by name or uid) to stop.")
        parser.add_argument("run", metavar="RUN")
        args = parser.parse_args(argv)
        live = self._live.get(args.run)
        if live is not None and not live.done:
            live.cancel()
            run = live
        else:
            run = self._flushed().cancel(args.run)
        print(f"[workflow_run/{run.name}] cancel requested")
        return run

    def _dashboard(self, argv: list[str]) -> Any:
        parser = _parser("dashboard", "Show the run-history dashboard in the notebook.")
        parser.add_argument("--workflow", "-w", default="")
        parser.add_argument("--range", default="7d", help="1h 24h 7d 30d 90d 365d all")
        args = parser.parse_args(argv)
        from flowdapt.dashboard import show

        backend = self._flushed()
        return show(backend.store if isinstance(backend, LocalBackend) else backend.client,
                    workflow=args.workflow, range=args.range)

    def _logs(self, argv: list[str]) -> Any:
        from flowdapt.notebook.operations import logs_command

        return logs_command(self, argv)

    def _rerun(self, argv: list[str]) -> WorkflowRun:
        from flowdapt.notebook.operations import run_again_command

        return run_again_command(self, "rerun", argv)

    def _retry(self, argv: list[str]) -> WorkflowRun:
        from flowdapt.notebook.operations import run_again_command

        return run_again_command(self, "retry", argv)

    def _stage(self, argv: list[str], cell: str) -> None:
        parser = _parser("stage", "Make the function this cell defines a stage of a workflow.")
        parser.add_argument("name", metavar="NAME")
        parser.add_argument("--workflow", "-w")
        parser.add_argument("--depends-on", nargs="+", default=[], metavar="STAGE")
        parser.add_argument("--type", default="simple", choices=["simple", "parameterized"])
        parser.add_argument("--map-on", help="parameterized root stages: the input key to map over")
        parser.add_argument("--resources", nargs="+", metavar="KEY=VALUE", help="e.g. cpus=2 memory=1GB")
        parser.add_argument("--options", nargs="+", metavar="KEY=VALUE", help="e.g. retries=2 timeout=60")
        args = parser.parse_args(argv)
        cell_function(cell)  # a cell with no function or several is refused before it runs
        options = _key_values(args.options, "--options")
        if args.map_on:
            options["map_on"] = args.map_on
        outcome = self.shell.run_cell(cell, store_history=False)
        if not outcome.success:
            raise MagicError(f"the cell raised, so stage '{args.name}' was not saved")
        workflow = args.workflow or self._workflow or default_workflow()
        self._workflow = workflow
        spec = StageCell(name=args.name, workflow=workflow, depends_on=args.depends_on, type=args.type,
                         resources=_key_values(args.resources, "--resources"), options=options)
        resource, result = apply_stage_cell(self.backend(), spec, cell)
        target = next(stage.target for stage in resource.spec.stages if stage.name == args.name)
        print(f"[workflow/{resource.name}] stage '{args.name}' {result} ({target})")


def _new_view() -> Any:
    if not display.in_kernel():
        return None
    from flowdapt.notebook.widget import RunView

    return RunView()


_loaded: dict[int, FlowdaptMagics] = {}


def load(shell: Any) -> None:
    """Register the magics and the run display on ``shell``."""
    if id(shell) in _loaded:
        return
    magics = _loaded[id(shell)] = FlowdaptMagics(shell)
    shell.register_magics(magics)
    atexit.register(magics.close)
    display.install(shell)


def unload(shell: Any) -> None:
    """Close the backend and stop showing runs as views."""
    magics = _loaded.pop(id(shell), None)
    if magics is not None:
        magics.close()
        atexit.unregister(magics.close)
        shell.magics_manager.magics["line"].pop("flowdapt", None)
        shell.magics_manager.magics["cell"].pop("flowdapt", None)
    display.uninstall(shell)
