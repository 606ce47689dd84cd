"""Plugin packages: installed distributions that declare an entry point in the ``flowdapt.plugins`` group.

A plugin ships any of

- **stage functions**: its package (or the modules its :class:`PluginSpec` names), used as ``target``
  import paths in workflows;
- **resource files**: a folder of workflows, configs and triggers (``resources/`` in the package by
  default), applied with ``flowctl apply --plugin NAME``;
- **extensions**: executors, stage types, trigger actions and history backends, declared through their
  own entry-point groups (see :mod:`flowdapt.registry`) by the same distribution.

The entry point names the package (``my_plugin = "my_plugin"``, as Flowdapt's plugins did) or a
:class:`PluginSpec` in it (``my_plugin = "my_plugin.plugin:spec"``) when the defaults do not fit.
Executors ship the plugins' package folders to the workers of remote clusters (``upload_plugins``).
"""

from __future__ import annotations

import importlib
import inspect
import os
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Sequence

from pydantic import BaseModel

from flowdapt.errors import FlowdaptError, UnknownNameError
from flowdapt.registry import Registry, entry_point_package

GROUP = "flowdapt.plugins"
# The extension groups a plugin's distribution may declare, by the name listings give them.
EXTENSION_GROUPS = {"executors": "flowdapt.executors", "stage_types": "flowdapt.stage_types",
                    "trigger_actions": "flowdapt.trigger_actions", "history_backends": "flowdapt.history_backends"}
DEFAULT_RESOURCES = "resources"


@dataclass(frozen=True)
class PluginSpec:
    """What a plugin ships, when its package's defaults do not fit.

    ``stages``: modules holding its stage functions (default: the module the entry point names);
    ``resources``: the folder of its resource files, relative to its top-level package's folder
    (default ``resources``, if it exists).
    """

    stages: Sequence[str] = ()
    resources: str | None = DEFAULT_RESOURCES


class PluginResource(BaseModel):
    """One resource a plugin ships."""

    kind: str
    name: str
    file: str


class Plugin(BaseModel):
    """An installed plugin package, as ``flowdapt plugins list`` and ``GET plugins`` describe it."""

    name: str
    package: str
    version: str
    summary: str
    module: str
    path: str
    stages: list[str]
    resources: list[PluginResource]
    resources_path: str | None
    extensions: dict[str, list[str]]


class PluginError(FlowdaptError):
    """A plugin cannot be used as asked (e.g. it ships no resource files)."""


def _describe(loaded: object, entry: EntryPoint | None) -> Plugin:
    if entry is None:
        raise PluginError("plugins come from entry points")
    spec = loaded if isinstance(loaded, PluginSpec) else getattr(loaded, "flowdapt_plugin", None) or PluginSpec()
    module = loaded if isinstance(loaded, ModuleType) else importlib.import_module(entry.module)
    top = importlib.import_module(module.__name__.partition(".")[0])
    folder = Path(next(iter(top.__path__))) if hasattr(top, "__path__") else None  # None: a single module
    resources_path = _resources_path(folder, spec) if folder is not None else None
    dist = entry.dist
    return Plugin(
        name=entry.name,
        package=dist.name if dist is not None else top.__name__,
        version=dist.version if dist is not None else "",
        summary=(dist.metadata.get("Summary") or "") if dist is not None else "",
        module=top.__name__,
        path=str(folder) if folder is not None else str(top.__file__),
        stages=[target for name in (spec.stages or [module.__name__]) for target in _stage_functions(name)],
        resources=_resources(resources_path) if resources_path else [],
        resources_path=str(resources_path) if resources_path else None,
        extensions=_extensions(dist.name) if dist is not None else {},
    )


def _resources_path(folder: Path, spec: PluginSpec) -> Path | None:
    if spec.resources is None:
        return None
    path = folder / spec.resources
    return path if path.is_dir() else None


def _stage_functions(module_name: str) -> list[str]:
    """The public functions defined in a stage module, as ``target`` paths."""
    module = importlib.import_module(module_name)
    return [f"{module_name}.{name}" for name, value in vars(module).items()
            if inspect.isfunction(value) and value.__module__ == module_name and not name.startswith("_")]


def _resources(path: Path) -> list[PluginResource]:
    from flowdapt.resources.loading import load

    return [PluginResource(kind=resource.kind, name=resource.name, file=str(Path(file).relative_to(path)))
            for file in _resource_files(path) for resource in load(file, check_targets=False)]


def _resource_files(path: Path) -> list[Path]:
    from flowdapt.resources.loading import RESOURCE_SUFFIXES

    return sorted(p for p in path.rglob("*") if p.suffix in RESOURCE_SUFFIXES and p.is_file())


def _extensions(package: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for label, group in EXTENSION_GROUPS.items():
        names = sorted(entry.name for entry in entry_points(group=group) if entry_point_package(entry) == package)
        if names:
            found[label] = names
    return found


PLUGINS: Registry[Plugin] = Registry("plugin", GROUP, adapt=_describe)


def installed_plugins() -> list[Plugin]:
    """Every plugin that loads, by name; one that does not is a one-line warning and is left out."""
    plugins = []
    for name in PLUGINS.names():
        try:
            plugins.append(PLUGINS.get(name))
        except UnknownNameError:
            continue
    return plugins


def get_plugin(name: str) -> Plugin:
    """The plugin installed as ``name``; the error lists the installed ones."""
    return PLUGINS.get(name)


def plugin_resources_path(name: str) -> Path:
    """The folder of ``name``'s resource files, for ``flowctl apply --plugin``."""
    plugin = get_plugin(name)
    if plugin.resources_path is None:
        raise PluginError(f"plugin '{name}' ships no resource files")
    return Path(plugin.resources_path)


def plugin_code_paths() -> list[str]:
    """The package folders (or single modules) of every installed plugin: what remote workers need to
    import their stage functions."""
    return sorted({plugin.path for plugin in installed_plugins() if os.path.exists(plugin.path)})
