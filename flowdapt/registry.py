"""One registry pattern for every extension point (papermill's engines are the model).

A :class:`Registry` maps names to extensions of one kind: built-ins are registered where they are
defined (by object, or by ``"module:attribute"`` path so a heavy library is imported only when its
extension is used), third-party ones come from an entry-point group, discovered on the first lookup
and loaded when first asked for. The registries:

- executors (``flowdapt.executors``): :class:`~flowdapt.compute.executors.BaseExecutor` classes;
- stage types (``flowdapt.stage_types``): :class:`~flowdapt.compute.stages.StageType` instances;
- trigger actions (``flowdapt.trigger_actions``): ``async def action(context, parameters)``;
- history backends (``flowdapt.history_backends``): :class:`~flowdapt.history.backends.HistoryBackend`;
- plugin packages (``flowdapt.plugins``): :class:`~flowdapt.plugins.Plugin` descriptions.

A broken entry point (its package fails to import) is a one-line warning (logger ``flowdapt.plugins``)
naming the package, and the name is then unknown; everything else keeps working.
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Callable, Generic, Iterator, TypeVar

from flowdapt.errors import FlowdaptError, UnknownNameError

T = TypeVar("T")
_log = logging.getLogger("flowdapt.plugins")


class ExtensionLoadError(FlowdaptError):
    """A registered extension could not be imported."""

    def __init__(self, what: str, name: str, reason: str) -> None:
        super().__init__(what, name, reason)
        self.what = what
        self.name = name
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.what} '{self.name}' cannot be loaded: {self.reason}"


def entry_point_package(entry: EntryPoint) -> str:
    """The distribution that declares ``entry`` (its module when the distribution is unknown)."""
    dist = getattr(entry, "dist", None)
    return dist.name if dist is not None else entry.value.partition(":")[0]


def load_path(path: str) -> object:
    """The object a ``"module:attribute"`` (or ``"module"``) path names."""
    module, _, attribute = path.partition(":")
    target: object = importlib.import_module(module)
    for part in filter(None, attribute.split(".")):
        target = getattr(target, part)
    return target


@dataclass(frozen=True)
class _Unloaded:
    """An extension known by where it is (a built-in's path or an entry point), not imported yet."""

    path: str
    entry: EntryPoint | None = None


class Registry(Generic[T]):
    """Names to extensions of one kind (``what``), with third-party ones from entry-point ``group``.

    ``adapt(loaded, entry_point)`` turns what was loaded into the registered value (e.g. a class into an
    instance); ``entry_point`` is ``None`` for a built-in registered by path.
    Lookups after the first are a dict read: the entry points are listed once and each loaded once.
    """

    def __init__(self, what: str, group: str | None = None,
                 adapt: Callable[[object, EntryPoint | None], T] | None = None) -> None:
        self.what = what
        self.group = group
        self._adapt = adapt
        self._items: dict[str, T | _Unloaded] = {}
        self._discovered = group is None
        self._lock = threading.RLock()

    def register(self, name: str, extension: T | str) -> None:
        """Register ``extension`` (or its ``"module:attribute"`` path, imported on first use) as ``name``."""
        with self._lock:
            self._items[name] = _Unloaded(extension) if isinstance(extension, str) else extension

    def unregister(self, name: str) -> None:
        """Forget ``name`` (no error when it is not registered)."""
        with self._lock:
            self._items.pop(name, None)

    def names(self) -> list[str]:
        """Every registered name, entry points included (none of them is imported to list them)."""
        self._discover()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> T:
        """The extension registered as ``name``; an unknown name's error lists the known ones."""
        item = self._items.get(name)
        if item is None or isinstance(item, _Unloaded):
            return self._resolve(name)
        return item

    def find(self, name: str) -> T | None:
        """The extension registered as ``name``, or ``None`` when there is none."""
        return self.get(name) if name in self else None

    def _resolve(self, name: str) -> T:
        self._discover()
        with self._lock:
            if name not in self._items:
                raise UnknownNameError(self.what, name, list(self._items))
            item = self._items[name]
            if not isinstance(item, _Unloaded):
                return item
            if item.entry is not None:
                try:
                    value = self._adapted(item.entry.load(), item.entry)
                except Exception as exc:  # noqa: BLE001 - any failure of third-party code: warn, forget the name
                    del self._items[name]
                    _log.warning("flowdapt: %s '%s' from package '%s' cannot be loaded: %s: %s", self.what, name,
                                 entry_point_package(item.entry), type(exc).__name__, exc)
                    raise UnknownNameError(self.what, name, list(self._items)) from None
            else:
                try:
                    value = self._adapted(load_path(item.path), None)
                except ImportError as exc:
                    raise ExtensionLoadError(self.what, name, str(exc)) from exc
            self._items[name] = value
            return value

    def _adapted(self, loaded: object, entry: EntryPoint | None) -> T:
        return self._adapt(loaded, entry) if self._adapt is not None else loaded  # type: ignore[return-value]

    def _discover(self) -> None:
        if self._discovered:
            return
        with self._lock:
            if self._discovered:
                return
            self._discovered = True
            for entry in entry_points(group=self.group):
                self._items.setdefault(entry.name, _Unloaded(entry.value, entry))  # built-ins keep their names


def instance_of_class(loaded: object, entry: EntryPoint | None = None) -> object:
    """``adapt`` for registries of instances whose entry points may name the class."""
    return loaded() if isinstance(loaded, type) else loaded
