"""What both command lines share: global options, settings, and errors as one line on stderr."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any, Callable

import click

from flowdapt.errors import FlowdaptError
from flowdapt.settings import Settings, load_settings, set_settings


class CliState:
    """Per-invocation state: the options given and the settings they lead to."""

    def __init__(self, app_dir: str | None, overrides: tuple[str, ...], debug: bool, server: str | None = None):
        self.app_dir = app_dir
        self.overrides = overrides
        self.debug = debug
        self.server = server
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        """The settings in force for this command (also installed for the engine)."""
        if self._settings is None:
            self._settings = load_settings(self.app_dir, self.overrides)
            set_settings(self._settings)
        return self._settings


def global_options(*override_flags: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--app-dir``, a repeatable ``KEY=VALUE`` override option (``override_flags``) and ``--debug``."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        command = click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")(command)
        command = click.option(*override_flags, "overrides", multiple=True, metavar="KEY=VALUE",
                               help="Override a setting, e.g. database.url=sqlite:///h.db (repeatable).")(command)
        return click.option("--app-dir", envvar="FLOWDAPT_APP_DIR", type=click.Path(file_okay=False),
                            help="App dir (default ~/.flowdapt; env FLOWDAPT_APP_DIR).")(command)

    return decorate


def _debug_wanted(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("FLOWDAPT__LOGGING__SHOW_TRACEBACKS", "").lower() == "true"


def run_cli(group: click.Group, prog: str, argv: list[str] | None = None) -> None:
    """Run a click group; known errors end as ``error: <message>`` on stderr with exit code 1.

    No traceback reaches the user unless ``--debug`` (or ``logging.show_tracebacks``) asks for it.
    """
    argv = sys.argv[1:] if argv is None else argv
    # Stage targets in the current directory import (as with `python -m`), after installed packages: a
    # file there named like one of them (json.py, yaml.py) must not replace it in flowctl itself.
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        code = group.main(args=argv, prog_name=prog, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        code = 130
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except (FlowdaptError, OSError) as exc:
        if _debug_wanted(argv):
            traceback.print_exc()
        click.echo(f"error: {exc}", err=True)
        code = 1
    except Exception as exc:  # noqa: BLE001 - an unexpected bug still gets one line unless --debug
        if _debug_wanted(argv):
            traceback.print_exc()
        click.echo(f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", err=True)
        code = 1
    _exit(code if isinstance(code, int) else 0)


def _exit(code: int) -> None:
    """Close the executors and leave, without waiting for abandoned stage threads.

    A cancelled or timed-out stage may still be running in a thread that cannot be stopped; its run
    has ended and been recorded (the backend closed when the command did), so the command returns
    now instead of when the thread does.
    """
    from flowdapt.compute.executors import close_shared_executors

    close_shared_executors()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
