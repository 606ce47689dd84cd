"""``flowdapt``: configuration (``config show|get|set``), the history database (``db upgrade|current``)
and the installed plugins (``plugins list``).

``serve`` runs the services headless, ``lab`` starts JupyterLab with them loaded.
"""

from __future__ import annotations

import os

import click

from flowdapt.cli.common import CliState, global_options, run_cli
from flowdapt.cli.output import dumps, output_option, print_items
from flowdapt.history import migrations, orm
from flowdapt.history.store import make_engine, safe_url
from flowdapt.settings import lookup, write_setting


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@global_options("-o", "--override")
@click.version_option(package_name="flowdapt", message="flowdapt %(version)s")
@click.pass_context
def flowdapt(ctx: click.Context, app_dir: str | None, overrides: tuple[str, ...], debug: bool) -> None:
    """The flowdapt workbench: configuration and run-history database."""
    ctx.obj = CliState(app_dir, overrides, debug)


@flowdapt.group()
def config() -> None:
    """Show and change flowdapt.yaml."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of YAML.")
@click.pass_obj
def config_show(state: CliState, as_json: bool) -> None:
    """The effective configuration (file, environment and overrides merged)."""
    click.echo(dumps(state.settings.model_dump(mode="json"), "json" if as_json else "yaml"))


@config.command("get")
@click.argument("key")
@click.pass_obj
def config_get(state: CliState, key: str) -> None:
    """The effective value of a dotted KEY (e.g. database.url)."""
    value = lookup(state.settings, key)
    click.echo(dumps(value, "yaml") if isinstance(value, (dict, list)) else ("null" if value is None else value))


@config.command("set")
@click.argument("key")
@click.argument("value")
@click.pass_obj
def config_set(state: CliState, key: str, value: str) -> None:
    """Set KEY to VALUE (read as YAML) in the app dir's flowdapt.yaml; checked before writing."""
    settings = write_setting(state.settings.app_dir, key, value)
    click.echo(f"{key} = {lookup(settings, key)!r} ({settings.config_file()})")


@flowdapt.group()
def db() -> None:
    """The run-history database schema."""


def _engine(state: CliState):
    return make_engine(state.settings.database_url())


@db.command("current")
@click.pass_obj
def db_current(state: CliState) -> None:
    """The schema version of the history database."""
    engine = _engine(state)
    try:
        with engine.connect() as conn:
            version = migrations.current_version(conn)
    finally:
        engine.dispose()
    url = safe_url(state.settings.database_url())
    if version is None:
        click.echo(f"{url}: no schema yet (head is {orm.SCHEMA_VERSION})")
    elif version == orm.SCHEMA_VERSION:
        click.echo(f"{url}: version {version} (head)")
    else:
        click.echo(f"{url}: version {version} (head is {orm.SCHEMA_VERSION}: run `flowdapt db upgrade`)")


@db.command("upgrade")
@click.pass_obj
def db_upgrade(state: CliState) -> None:
    """Bring the history database schema to the newest version (creating it if needed)."""
    engine = _engine(state)
    try:
        with engine.begin() as conn:
            found, head = migrations.upgrade(conn)
    finally:
        engine.dispose()
    if found == head:
        click.echo(f"already at version {head}")
    else:
        click.echo(f"upgraded from {'an empty database' if found is None else f'version {found}'} to version {head}")


@flowdapt.group()
def plugins() -> None:
    """The plugin packages installed next to flowdapt."""


@plugins.command("list")
@output_option
def plugins_list(fmt: str) -> None:
    """Installed plugins and what each ships: stage functions, resource files, extensions."""
    from flowdapt.plugins import installed_plugins

    print_items(installed_plugins(), "plugin", fmt)


_PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


def jupyter_argv(args: list[str]) -> list[str]:
    """Jupyter's command line for ``serve`` and ``lab``: as root, ``--allow-root`` is added (with a line
    saying so), since Jupyter refuses to start as root without it and containers often run as root."""
    if os.geteuid() != 0 or any(arg.split("=")[0] in ("--allow-root", "--ServerApp.allow_root") for arg in args):
        return args
    click.echo("flowdapt: running as root, so Jupyter starts with --allow-root", err=True)
    return ["--allow-root", *args]


@flowdapt.command(context_settings=_PASS_THROUGH)
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Run the flowdapt services and REST API headless (a Jupyter server without JupyterLab).

    Jupyter server options pass through: --port, --ip, --no-browser, --ServerApp.base_url=...;
    the token comes from JUPYTER_TOKEN or --IdentityProvider.token=... (--help-all lists them).
    As root, --allow-root is added.
    """
    from flowdapt.server.app import HeadlessFlowdaptApp

    _ = ctx.obj.settings  # install the settings of --app-dir / -o for the services
    HeadlessFlowdaptApp.launch_instance(argv=jupyter_argv(list(ctx.args)))


@flowdapt.command(context_settings=_PASS_THROUGH)
@click.pass_context
def lab(ctx: click.Context) -> None:
    """Start JupyterLab with the flowdapt server extension loaded (JupyterLab options pass through).

    A notebook path opens that notebook; as root, --allow-root is added.
    """
    from jupyterlab.labapp import LabApp

    _ = ctx.obj.settings
    LabApp.launch_instance(argv=jupyter_argv(list(ctx.args)))  # the extension is enabled by jupyter_server_config.d


@flowdapt.command()
@click.option("--port", type=int, default=5006, show_default=True, help="Port to serve on (0: any free one).")
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--server", metavar="URL", help="The flowdapt server to read (default: FLOWDAPT_URL or the running one; "
                                              "none: the local history).")
@click.option("--refresh", type=float, default=5.0, show_default=True, help="Seconds between looks for new runs (0: never).")
@click.option("--open", "open_browser", is_flag=True, help="Open it in the browser.")
@click.option("--unix-socket", hidden=True, help="Serve on this unix socket (behind Jupyter's proxy).")
@click.option("--prefix", default="", hidden=True, help="URL path the dashboard is served under.")
@click.option("--links-root", hidden=True, help="URL path of the Jupyter server, for links into Lab.")
@click.pass_obj
def dashboard(state: CliState, port: int, address: str, server: str | None, refresh: float, open_browser: bool,
              unix_socket: str | None, prefix: str, links_root: str | None) -> None:
    """Serve the run-history dashboard (Panel), standalone.

    It reads a running flowdapt server's history through its REST API, or the local history store
    when no server runs. Inside JupyterLab it is at {base_url}flowdapt/dashboard/.
    """
    from flowdapt.dashboard import _require_panel, links_for

    _require_panel()
    from flowdapt.dashboard.parts import Links
    from flowdapt.dashboard.serve import serve
    from flowdapt.dashboard.source import connect_source

    source = connect_source(state.settings, server)
    links = Links(links_root) if links_root is not None else links_for(source, relative=False)
    try:
        serve(source, links, port=port, address=address, unix_socket=unix_socket, prefix=prefix,
              refresh_seconds=refresh, show=open_browser,
              on_ready=lambda url: click.echo(f"flowdapt dashboard at {url} (history: {source.description})"))
    except KeyboardInterrupt:
        pass
    finally:
        source.close()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``flowdapt``."""
    run_cli(flowdapt, "flowdapt", argv)


if __name__ == "__main__":
    main()
