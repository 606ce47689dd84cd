"""Where notebook work lives: the workbench root, cell-stage modules and output notebooks.

The *workbench root* is the Jupyter server's root dir (the server calls :func:`set_workbench_root`
and exports ``FLOWDAPT_WORKBENCH_ROOT`` to its kernels), else the current directory. Notebook
targets are relative to it and may never leave it; generated files live under the app dir.
"""

from __future__ import annotations

import os
from pathlib import Path

from flowdapt.errors import FlowdaptError
from flowdapt.settings import get_settings

ROOT_ENV = "FLOWDAPT_WORKBENCH_ROOT"
_root: Path | None = None


class NotebookPathError(FlowdaptError):
    """A notebook path is not a notebook inside the workbench root."""


def set_workbench_root(path: str | Path | None) -> None:
    """Fix the workbench root for this process (``None``: back to the environment / cwd)."""
    global _root
    _root = None if path is None else Path(path).expanduser().resolve()


def workbench_root() -> Path:
    """The workbench root: set explicitly, else ``FLOWDAPT_WORKBENCH_ROOT``, else the cwd."""
    if _root is not None:
        return _root
    return Path(os.environ.get(ROOT_ENV) or os.getcwd()).expanduser().resolve()


def resolve_notebook(target: str, root: Path | None = None, *, must_exist: bool = True) -> Path:
    """The absolute path of notebook ``target`` (relative to ``root``), refusing paths outside it."""
    base = root or workbench_root()
    if not target.endswith(".ipynb"):
        raise NotebookPathError(f"'{target}' is not a notebook (expected a path ending in .ipynb)")
    path = (base / target).resolve()
    if not path.is_relative_to(base):
        raise NotebookPathError(f"'{target}' is outside the workbench root {base}")
    if must_exist and not path.is_file():
        raise NotebookPathError(f"notebook '{target}' not found under the workbench root {base}")
    return path


def stage_modules_dir() -> Path:
    """Folder of the modules written by ``%%flowdapt stage`` (package ``flowdapt.notebook.cells``)."""
    return Path(get_settings().app_dir).expanduser() / "stages"


def run_output_dir(run_uid: str) -> Path:
    """Folder holding the output notebooks of one run."""
    if not run_uid.isalnum():
        raise NotebookPathError(f"invalid run uid '{run_uid}'")
    return Path(get_settings().app_dir).expanduser() / "outputs" / run_uid
