"""Where notebook work lives: notebook targets, cell-stage modules and output notebooks.

A relative notebook target is read against the folder of whatever named it: a resource file's
folder when the file is loaded (:func:`flowdapt.resources.loading.load` makes it absolute), the
*workbench root* otherwise. The workbench root is the Jupyter server's root dir inside a server
(which calls :func:`set_workbench_root`), else the current directory (a notebook's kernel runs in
the notebook's folder). Only a server confines targets to its root, since they arrive in requests;
a process working for its own user reads any notebook the user can. Generated files live under the
app dir.
"""

from __future__ import annotations

import os
from pathlib import Path

from flowdapt.errors import FlowdaptError
from flowdapt.settings import get_settings

_root: Path | None = None


class NotebookPathError(FlowdaptError):
    """A notebook path is not a notebook, or not one the server may run."""


def set_workbench_root(path: str | Path | None) -> None:
    """Fix the workbench root of this process and confine notebook targets to it (a server does);
    ``None`` goes back to the current directory, unconfined."""
    global _root
    _root = None if path is None else Path(path).expanduser().resolve()


def workbench_root() -> Path:
    """The server's root dir in a server, else the current directory."""
    return _root if _root is not None else Path(os.getcwd()).resolve()


def resolve_notebook(target: str, *, must_exist: bool = True) -> Path:
    """The absolute path of notebook ``target`` (a relative one is read against the workbench root);
    in a server, a path outside its root is refused."""
    if not target.endswith(".ipynb"):
        raise NotebookPathError(f"'{target}' is not a notebook (expected a path ending in .ipynb)")
    base = workbench_root()
    path = (base / Path(target).expanduser()).resolve()
    if _root is not None and not path.is_relative_to(_root):
        raise NotebookPathError(f"notebook '{target}' is outside the server's workbench root {_root} "
                                "(its root dir: start Jupyter with --ServerApp.root_dir=FOLDER above it)")
    if must_exist and not path.is_file():
        raise NotebookPathError(f"notebook '{target}' not found ({path})")
    return path


def stage_modules_dir() -> Path:
    """Folder of the modules written by ``%%flowdapt stage`` (package ``flowdapt.notebook.cells``)."""
    return Path(get_settings().app_dir).expanduser() / "stages"


def run_output_dir(run_uid: str) -> Path:
    """Folder holding the output notebooks of one run."""
    if not run_uid.isalnum():
        raise NotebookPathError(f"invalid run uid '{run_uid}'")
    return Path(get_settings().app_dir).expanduser() / "outputs" / run_uid
