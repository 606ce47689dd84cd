"""``flowctl``: apply, get, inspect, delete, run and cancel workflows, configs, triggers and runs.

Every command goes through a :class:`~flowdapt.workspace.Backend`: a running server when one is
named (``--server``, ``FLOWDAPT_URL``), else the embedded store with workflows run in this process.
"""

from __future__ import annotations

import contextlib
import sys
import time
from datetime import datetime
from typing import Any

import click

from flowdapt.cli.common import CliState, global_options, run_cli
from flowdapt.cli.detach import run_detached
from flowdapt.cli.output import dumps, output_option, print_document, print_items, print_mapping, stdout_kept_for_the_document
from flowdapt.errors import FlowdaptError
from flowdapt.history.models import RunQuery
from flowdapt.resources.loading import load
from flowdapt.workspace import Backend, LocalBackend, connect
from flowdapt.workspace.inputs import InputError, parse_input
from flowdapt.workspace.tables import KIND_NAMES, RUN_KIND

FOLLOW_SECONDS = 0.5  # how often `logs --follow` asks for new lines
DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S%z"]


def kind_of(name: str) -> str:
    """The resource kind a CLI word names (``workflows`` → ``workflow``); the error lists the words."""
    try:
        return KIND_NAMES[name.lower()]
    except KeyError:
        raise click.BadParameter(f"unknown kind '{name}' (known: workflows, runs, triggers, configs, plugins)",
                                 param_hint="KIND") from None


class FlowctlState(CliState):
    """Adds the backend, opened on first use and closed when the command ends."""

    _backend: Backend | None = None

    def backend(self, share: str | None = None) -> Backend:
        """The backend, opened on first use; ``share`` names this command if it holds the embedded store
        for a while (it is then served to other processes, see :mod:`flowdapt.workspace.sharing`)."""
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
@click.option("-p", "--path", "paths", multiple=True, help="Resource file or folder (repeatable).")
@click.option("--plugin", "plugins", multiple=True, metavar="NAME",
              help="The resource files an installed plugin ships (repeatable; see `flowdapt plugins list`).")
@click.pass_obj
def apply(state: FlowctlState, paths: tuple[str, ...], plugins: tuple[str, ...]) -> None:
    """Create or update the resources in files or folders, or a plugin's (all or nothing)."""
    if not paths and not plugins:
        raise click.UsageError("give -p PATH or --plugin NAME")
    if plugins:
        from flowdapt.plugins import plugin_resources_path

        paths = (*paths, *(str(plugin_resources_path(name)) for name in plugins))
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
    if resolved == "plugin":
        print_items(_plugins(backend, name), "plugin", fmt)
        return
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
    if resolved == "plugin":
        item = _plugins(backend, name)[0]
    else:
        item = backend.get_run(name) if resolved == RUN_KIND else backend.get(resolved, name)
    print_document(item, fmt)


def _plugins(backend: Backend, name: str | None) -> list[Any]:
    """The plugins installed where the workflows run (a server's, or this environment's), or the one named."""
    plugins = [plugin for plugin in backend.plugins() if name in (None, plugin.name)]
    if name and not plugins:
        raise FlowdaptError(f"plugin '{name}' is not installed")
    return plugins


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
        if resolved == "plugin":
            raise click.UsageError("plugins are packages: uninstall them with pip")
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
    with bar or contextlib.nullcontext(), stdout_kept_for_the_document(fmt != "table"):
        record = backend.run(definition.name, data, wait=False, executor=executor, namespace=namespace,
                             on_event=bar, uid=run_uid)
        if wait:
            record = _follow(backend, record)
    _end_run(ctx, record, wait, fmt, result_only)


def _end_run(ctx: click.Context, record: Any, wait: bool, fmt: str, result_only: bool) -> None:
    """Print the run; a run waited for that did not finish says why on stderr and exits 1."""
    _print_run(record, fmt, result_only)
    if wait and record.state != "finished":
        reason = record.error if record.error is not None else f"run '{record.name}' was {record.state}"
        click.echo(f"error: {reason}", err=True)
        ctx.exit(1)


def _run_again(ctx: click.Context, operation: str, identifier: str, wait: bool, executor: str | None,
               result_only: bool, run_uid: str | None, fmt: str) -> None:
    """``rerun`` and ``retry``: start the run (in the background without a server and ``--no-wait``), then as ``run``."""
    state: FlowctlState = ctx.obj
    backend = state.backend(share=f"flowctl {operation}")
    if not wait and isinstance(backend, LocalBackend):
        original = backend.get_run(identifier)  # an unknown run is an error here, not in the background
        record, child, log = run_detached(state, backend, original.uid, [], executor, None, command=operation)
        _print_run(record, fmt, result_only)
        click.echo(f"flowctl: the run goes on in process {child} (output: {log})", err=True)
        return
    start = backend.rerun if operation == "rerun" else backend.resume
    with stdout_kept_for_the_document(fmt != "table"):
        record = start(identifier, wait=False, executor=executor, uid=run_uid)
        if wait:
            record = _follow(backend, record)
    _end_run(ctx, record, wait, fmt, result_only)


_again_options = [
    click.argument("identifier", metavar="RUN"),
    click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the new run to end."),
    click.option("--executor", help="Executor name (default: the one the run ran on)."),
    click.option("--result-only", is_flag=True, help="Print only the result."),
    click.option("--run-uid", hidden=True, help="The new run's uid (given to a detached run by `--no-wait`)."),
    output_option,
]


def _with(options: list[Any]) -> Any:
    def decorate(command: Any) -> Any:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


@flowctl.command()
@_with(_again_options)
@click.option("--progress/--no-progress", default=None, hidden=True)
@click.pass_context
def rerun(ctx: click.Context, identifier: str, wait: bool, executor: str | None, result_only: bool,
          run_uid: str | None, fmt: str, progress: bool | None) -> None:
    """Run RUN again: its input, the workflow version it ran. The new run records which run it repeats."""
    _run_again(ctx, "rerun", identifier, wait, executor, result_only, run_uid, fmt)


@flowctl.command()
@_with(_again_options)
@click.option("--progress/--no-progress", default=None, hidden=True)
@click.pass_context
def retry(ctx: click.Context, identifier: str, wait: bool, executor: str | None, result_only: bool,
          run_uid: str | None, fmt: str, progress: bool | None) -> None:
    """Resume a failed or cancelled RUN: stages it finished are reused where they kept their output
    (options.keep_output), failed stages and failed items run again. The new run records resumed_from."""
    _run_again(ctx, "retry", identifier, wait, executor, result_only, run_uid, fmt)


@flowctl.command()
@click.argument("identifier", metavar="RUN")
@click.option("--stage", help="Only this stage's lines.")
@click.option("--attempt", type=click.IntRange(1), help="Only this attempt's lines (with --stage).")
@click.option("--follow", is_flag=True, help="Keep printing new lines until the run has ended (-f is --format).")
@output_option
@click.pass_obj
def logs(state: FlowctlState, identifier: str, stage: str | None, attempt: int | None, follow: bool,
         fmt: str) -> None:
    """Print what RUN's stages printed and logged (time UTC, stage, stream or level, message).

    -o json prints a JSON list (with --follow, one JSON object per line as lines come).
    """
    backend = state.backend()
    run = backend.get_run(identifier)
    after, everything = -1, []
    while True:
        ended = run.done  # read before the lines: once it has ended, the lines read next are all of them
        lines = backend.logs(run.uid, stage=stage, attempt=attempt, after=after)
        if lines:
            after = lines[-1].seq
            if fmt == "table":
                click.echo("\n".join(line.render() for line in lines))
            elif follow and fmt == "json":
                click.echo("\n".join(line.model_dump_json() for line in lines))
            else:
                everything.extend(line.model_dump(mode="json") for line in lines)
        if not follow or (ended and not lines):
            break
        if not lines:
            time.sleep(FOLLOW_SECONDS)
            run = backend.get_run(run.uid)
    if fmt != "table" and not (follow and fmt == "json"):
        click.echo(dumps(everything, fmt))


@flowctl.command()
@click.argument("trigger_name", metavar="TRIGGER")
@click.option("--from", "start", required=True, type=click.DateTime(DATE_FORMATS),
              help="First schedule time to fire (UTC unless it has an offset).")
@click.option("--to", "end", required=True, type=click.DateTime(DATE_FORMATS),
              help="Last schedule time to fire, inclusive (times after now are left out).")
@click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Runs of the backfill going on at once.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait for every run (without a server the runs go on in this process: it always waits).")
@output_option
@click.pass_obj
def backfill(state: FlowctlState, trigger_name: str, start: datetime, end: datetime, concurrency: int,
             wait: bool, fmt: str) -> None:
    """Run schedule TRIGGER's action once for each of its due times from --from to --to that has not
    fired yet (started again, it skips what ran). Each run carries its time as its logical time."""
    done = state.backend(share="flowctl backfill").backfill(trigger_name, start, end, concurrency=concurrency,
                                                           wait=wait)
    if fmt != "table":
        print_mapping(done, fmt)
    else:
        click.echo(f"[trigger_rule/{done['trigger']}] {len(done['times'])} due time(s) from {done['start']} to "
                   f"{done['end']}; {len(done['already_fired'])} had fired already")
        for firing in sorted(done["fired"], key=lambda item: item["scheduled_for"]):
            outcome = f"error: {firing['error']}" if firing["error"] else f"run {firing['run_uid'] or '-'}"
            click.echo(f"  {firing['scheduled_for']}  {outcome}")
    if any(firing["error"] for firing in done["fired"]):
        raise click.exceptions.Exit(1)


@flowctl.group()
def cache() -> None:
    """The result cache of stages with options.cache."""


@cache.command("clear")
@click.option("--workflow", help="Only this workflow's entries.")
@click.option("--stage", help="Only this stage's entries (with --workflow).")
@click.pass_obj
def cache_clear(state: FlowctlState, workflow: str | None, stage: str | None) -> None:
    """Delete cached stage outputs (all, or a workflow's, or one stage's)."""
    if stage and not workflow:
        raise click.UsageError("--stage needs --workflow")
    deleted = state.backend().clear_cache(workflow, stage)
    click.echo(f"cleared {deleted} cache entr{'y' if deleted == 1 else 'ies'}")


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
