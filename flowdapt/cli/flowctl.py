"""``flowctl``: apply, get, inspect, delete, run and cancel workflows, configs, triggers and runs.

Every command goes through a :class:`~flowdapt.cli.backend.Backend`: a running server when one is
named (``--server``, ``FLOWDAPT_URL``), else the embedded store with workflows run in this process.
"""

from __future__ import annotations

import contextlib
import sys
from datetime import datetime
from typing import Any

import click

from flowdapt.cli.backend import Backend, LocalBackend, connect
from flowdapt.cli.detach import run_detached
from flowdapt.cli.common import CliState, global_options, run_cli
from flowdapt.cli.inputs import InputError, parse_input
from flowdapt.cli.output import FORMATS, print_document, print_items, print_mapping
from flowdapt.errors import FlowdaptError
from flowdapt.history.models import RunQuery
from flowdapt.resources.loading import load

RUN_KIND = "workflow_run"
KIND_NAMES = {
    **{name: "workflow" for name in ("workflow", "workflows")},
    **{name: "config" for name in ("config", "configs")},
    **{name: "trigger_rule" for name in ("trigger", "triggers", "trigger_rule", "trigger_rules")},
    **{name: RUN_KIND for name in ("run", "runs", "workflow_run", "workflow_runs")},
}

output_option = click.option("-o", "--output", "-f", "--format", "fmt", type=click.Choice(FORMATS),
                             default="table", show_default=True, help="Output format.")


def kind_of(name: str) -> str:
    """The resource kind a CLI word names (``workflows`` → ``workflow``); the error lists the words."""
    try:
        return KIND_NAMES[name.lower()]
    except KeyError:
        raise click.BadParameter(f"unknown kind '{name}' (known: workflows, runs, triggers, configs)",
                                 param_hint="KIND") from None


class FlowctlState(CliState):
    """Adds the backend, opened on first use and closed when the command ends."""

    _backend: Backend | None = None

    def backend(self, share: str | None = None) -> Backend:
        """The backend, opened on first use; ``share`` names this command if it holds the embedded store
        for a while (it is then served to other processes, see :mod:`flowdapt.cli.sharing`)."""
        if self._backend is None:
            self._backend = connect(self.settings, self.server, share=share)
            click.get_current_context().call_on_close(self.close)
        return self._backend

    def close(self) -> None:
        """Close the backend (the local one writes out the history and stops sharing it)."""
        if self._backend is not None:
            self._backend.close()
            self._backend = None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@global_options("--set")
@click.option("-s", "--server", envvar="FLOWDAPT_URL", help="Server URL (env FLOWDAPT_URL); default: work locally.")
@click.version_option(package_name="flowdapt", message="flowctl %(version)s")
@click.pass_context
def flowctl(ctx: click.Context, app_dir: str | None, overrides: tuple[str, ...], debug: bool, server: str | None) -> None:
    """Manage flowdapt workflows, configs, triggers and runs."""
    ctx.obj = FlowctlState(app_dir, overrides, debug, server)


def _paths_resources(paths: tuple[str, ...]) -> list[Any]:
    resources: list[Any] = []
    for path in paths:
        resources.extend(load(path))
    return resources


@flowctl.command()
@click.option("-p", "--path", "paths", multiple=True, required=True, help="Resource file or folder (repeatable).")
@click.pass_obj
def apply(state: FlowctlState, paths: tuple[str, ...]) -> None:
    """Create or update the resources in files or folders (all or nothing)."""
    resources = _paths_resources(paths)  # every file is validated before anything is stored
    for resource, outcome in state.backend().apply(resources):
        click.echo(f"[{resource.kind}/{resource.name}] {outcome}")


@flowctl.command()
@click.argument("kind")
@click.argument("name", required=False)
@click.option("--state", "run_state", help="Runs only: filter by state.")
@click.option("--source", help="Runs only: filter by source (manual, api, trigger, notebook).")
@click.option("--since", type=click.DateTime(), help="Runs only: started at or after (UTC).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True, help="Runs only: how many.")
@click.option("--offset", type=click.IntRange(0), default=0, help="Runs only: skip this many.")
@output_option
@click.pass_obj
def get(state: FlowctlState, kind: str, name: str | None, run_state: str | None, source: str | None,
        since: datetime | None, limit: int, offset: int, fmt: str) -> None:
    """List resources of KIND, or show one by NAME. `get runs [WORKFLOW]` lists runs."""
    resolved = kind_of(kind)
    backend = state.backend()
    if resolved == RUN_KIND:
        plural = kind.lower().endswith("s")
        if name and not plural:
            print_items([backend.get_run(name)], RUN_KIND, fmt)
            return
        if name:
            backend.get("workflow", name)  # an unknown workflow is an error, not an empty list
        query = RunQuery(workflow=name, state=run_state, source=source, since=since, limit=limit, offset=offset,
                         stages=fmt != "table")  # documents list each run's stages, as `inspect run` shows them
        print_items(backend.list_runs(query), RUN_KIND, fmt)
    elif name:
        print_items([backend.get(resolved, name)], resolved, fmt)
    else:
        print_items(backend.list(resolved), resolved, fmt)


@flowctl.command()
@click.argument("kind")
@click.argument("name")
@output_option
@click.pass_obj
def inspect(state: FlowctlState, kind: str, name: str, fmt: str) -> None:
    """Show one resource or run in full (YAML unless -o json)."""
    resolved = kind_of(kind)
    backend = state.backend()
    item = backend.get_run(name) if resolved == RUN_KIND else backend.get(resolved, name)
    print_document(item, fmt)


@flowctl.command()
@click.argument("kind", required=False)
@click.argument("name", required=False)
@click.option("-p", "--path", "paths", multiple=True, help="Delete the resources defined in these files.")
@click.pass_obj
def delete(state: FlowctlState, kind: str | None, name: str | None, paths: tuple[str, ...]) -> None:
    """Delete KIND NAME, or every resource in -p PATH (exactly one form)."""
    if bool(paths) == bool(kind and name):
        raise click.UsageError("give either KIND NAME or -p PATH")
    backend = state.backend()
    if paths:
        by_kind: dict[str, list[str]] = {}
        for resource in _paths_resources(paths):
            by_kind.setdefault(resource.kind, []).append(resource.name)
        for resolved in by_kind:
            for identifier in by_kind[resolved]:
                backend.get(resolved, identifier)  # all must exist before any is deleted
        deleted = [item for resolved, names in by_kind.items() for item in backend.delete(resolved, names)]
    else:
        resolved = kind_of(kind or "")
        if resolved == RUN_KIND:
            raise click.UsageError("runs are deleted through the server's API or by retention")
        deleted = backend.delete(resolved, [name or ""])
    for resource in deleted:
        click.echo(f"[{resource.kind}/{resource.name}] deleted")


@flowctl.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("workflow")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the run to end.")
@click.option("--executor", help="Executor name (local, dask, ray); default from the config.")
@click.option("-n", "--namespace", help="Object-store namespace.")
@click.option("--result-only", is_flag=True, help="Print only the result.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@click.option("--run-uid", hidden=True, help="The run's uid (given to a detached run by `--no-wait`).")
@output_option
@click.pass_context
def run(ctx: click.Context, workflow: str, wait: bool, executor: str | None, namespace: str | None,
        result_only: bool, progress: bool | None, run_uid: str | None, fmt: str) -> None:
    """Run WORKFLOW with input from --key value pairs (nested --a.b 1; lists --a[] x).

    Exits 1 unless the run finishes (2 for bad arguments); Ctrl-C cancels the run. --no-wait prints
    the run and returns at once while it goes on: on the server, or without one in a background
    process of its own (its output goes to the app dir's logs/ folder), which serves the embedded
    store to other flowctl commands (get runs, cancel) until the run ends.
    """
    state: FlowctlState = ctx.obj
    try:
        data = parse_input(ctx.args)
    except InputError as exc:
        raise click.UsageError(str(exc)) from None
    backend = state.backend(share="flowctl run")
    definition = backend.get("workflow", workflow)
    if not wait and isinstance(backend, LocalBackend):
        record, child, log = run_detached(state, backend, definition.name, ctx.args, executor, namespace)
        _print_run(record, fmt, result_only)
        click.echo(f"flowctl: the run goes on in process {child} (output: {log})", err=True)
        return
    show_bar = wait and (sys.stderr.isatty() if progress is None else progress) and fmt == "table"
    bar: Any = None
    if show_bar:
        from flowdapt.cli.progress import RunProgress

        bar = RunProgress(definition.name, len(definition.spec.stages))
    with bar or contextlib.nullcontext():
        record = backend.run(definition.name, data, wait=False, executor=executor, namespace=namespace,
                             on_event=bar, uid=run_uid)
        if wait:
            record = _follow(backend, record)
    _print_run(record, fmt, result_only)
    if wait and record.state != "finished":
        reason = record.error if record.error is not None else f"run '{record.name}' was {record.state}"
        click.echo(f"error: {reason}", err=True)
        ctx.exit(1)


def _follow(backend: Backend, record: Any) -> Any:
    """The run once it has ended; Ctrl-C cancels it (exit code 130)."""
    try:
        while not record.done:
            record = backend.follow(record, 0.25)
    except KeyboardInterrupt:
        click.echo(f"\nflowctl: interrupted: cancelling run '{record.name}'", err=True)
        try:
            backend.cancel(record.uid)
            for _ in range(40):  # the run records its end within a few seconds
                record = backend.follow(record, 0.25)
                if record.done:
                    break
        except FlowdaptError:
            pass
        click.echo(f"error: run '{record.name}' was {record.state}", err=True)
        raise click.exceptions.Exit(130) from None
    return record


def _print_run(record: Any, fmt: str, result_only: bool) -> None:
    if fmt != "table":
        data = record.result if result_only else record.to_document()
        print_document(data if isinstance(data, dict) else {"result": data}, fmt)
    elif result_only:
        click.echo(_render(record.result))
    else:
        click.echo(f"[workflow_run/{record.name}] [{record.state.upper()}]: {_render(record.result)}")


def _render(value: Any) -> str:
    import json

    return json.dumps(value, default=repr) if not isinstance(value, str) else value


@flowctl.command()
@click.argument("run_name", metavar="RUN")
@click.pass_obj
def cancel(state: FlowctlState, run_name: str) -> None:
    """Ask a running run (by name or uid) to stop."""
    record = state.backend().cancel(run_name)
    click.echo(f"[workflow_run/{record.name}] cancel requested")


@flowctl.group()
def trigger() -> None:
    """Enable or disable a trigger, show when it fires, list its firings.

    Without a server nothing fires: the times shown are when a server (`flowdapt serve`, Lab) fires it.
    """


@trigger.command("enable")
@click.argument("name")
@click.pass_obj
def trigger_enable(state: FlowctlState, name: str) -> None:
    """Enable trigger NAME."""
    changed = state.backend().set_trigger_enabled(name, True)
    click.echo(f"[trigger_rule/{changed.name}] enabled")


@trigger.command("disable")
@click.argument("name")
@click.pass_obj
def trigger_disable(state: FlowctlState, name: str) -> None:
    """Disable trigger NAME."""
    changed = state.backend().set_trigger_enabled(name, False)
    click.echo(f"[trigger_rule/{changed.name}] disabled")


@trigger.command("status")
@click.argument("name")
@output_option
@click.pass_obj
def trigger_status(state: FlowctlState, name: str, fmt: str) -> None:
    """Whether trigger NAME is enabled, when it last fired and when it fires next."""
    print_mapping(state.backend().trigger_status(name), fmt)


@trigger.command("firings")
@click.argument("name")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True, help="How many.")
@output_option
@click.pass_obj
def trigger_firings(state: FlowctlState, name: str, limit: int, fmt: str) -> None:
    """The latest firings of trigger NAME, newest first, with their outcome and run."""
    print_items(state.backend().trigger_firings(name, limit), "trigger_firing", fmt)


@flowctl.command()
@output_option
@click.pass_obj
def status(state: FlowctlState, fmt: str) -> None:
    """Where flowctl works and what is stored there."""
    print_mapping(state.backend().status(), fmt)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``flowctl``."""
    run_cli(flowctl, "flowctl", argv)


if __name__ == "__main__":
    main()
