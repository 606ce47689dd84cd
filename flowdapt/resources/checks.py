"""Checks of whole resources that need knowledge owned by the layers above, registered by them.

The models check each document's shape. Whether a workflow's stages make a graph the engine can run,
whether its stage types exist and which of them read a file, whether a schedule ever fires: that is
known by :mod:`flowdapt.compute` and :mod:`flowdapt.triggers`, which depend on this package, not the
other way round. They register their rules here when imported (``flowdapt.compute.validation``,
``flowdapt.triggers.validation``); ``flowdapt/__init__.py`` imports both, and Python runs it before
any ``flowdapt.*`` module, so resources are never loaded without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol

from flowdapt.resources.models import Resource


class Check(Protocol):
    def __call__(self, resource: Any, *, file: str | None, check_targets: bool) -> None:
        """Raise :class:`~flowdapt.errors.ResourceError` (naming file, resource, stage, field) at the first problem."""


RebasePaths = Callable[[Any, Callable[[str], str]], None]
"""``rebase(resource, rebased)``: replace each file path the resource names by ``rebased(path)``."""

_checks: dict[str, list[Check]] = {}
_rebasers: dict[str, list[RebasePaths]] = {}


def register_rules(kind: str, *, check: Check | None = None, rebase_paths: RebasePaths | None = None) -> None:
    """Run ``check`` on every resource of ``kind`` that is loaded or applied, and ``rebase_paths`` on those
    read from a file (relative paths are then read against the file's folder)."""
    if check is not None:
        _checks.setdefault(kind, []).append(check)
    if rebase_paths is not None:
        _rebasers.setdefault(kind, []).append(rebase_paths)


def check_resource(resource: Resource, *, file: str | None = None, check_targets: bool = True) -> None:
    """Run the registered checks of ``resource``'s kind (``check_targets=False`` skips importing stage targets)."""
    for check in _checks.get(resource.kind, ()):
        check(resource, file=file, check_targets=check_targets)


def rebase_paths(resource: Resource, base: Path) -> None:
    """Make the relative file paths ``resource`` names absolute against the folder ``base``."""

    def rebased(path: str) -> str:
        if not isinstance(path, str) or Path(path).expanduser().is_absolute():
            return path
        return str((base / path).resolve())

    for rebase in _rebasers.get(resource.kind, ()):
        rebase(resource, rebased)
