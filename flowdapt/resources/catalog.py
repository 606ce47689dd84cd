"""Where resources applied in this process are looked up by name or uid.

The default catalog keeps them in memory; the run-history store replaces it with one backed by
SQL (:func:`set_catalog`), so the same name lookups work with and without a database.
"""

from __future__ import annotations

import threading
from typing import Iterable, Protocol, TypeVar

from flowdapt import process
from flowdapt.errors import ResourceNotFoundError
from flowdapt.resources.models import Config, Resource, TriggerRule, Workflow

R = TypeVar("R", bound=Resource)


class Catalog(Protocol):
    """What the engine needs from a resource store."""

    def get(self, kind: str, identifier: str) -> Resource:
        """The resource of ``kind`` with this name or uid; :class:`ResourceNotFoundError` otherwise."""

    def list(self, kind: str) -> list[Resource]: ...

    def apply(self, resources: Iterable[Resource]) -> list[tuple[Resource, str]]:
        """Create or update all resources at once; returns (resource, created|updated|unchanged)."""


class MemoryCatalog:
    """A catalog in this process's memory."""

    def __init__(self) -> None:
        self._items: dict[str, dict[str, Resource]] = {}
        self._lock = threading.Lock()

    def get(self, kind: str, identifier: str) -> Resource:
        items = self._items.get(kind, {})
        if identifier in items:
            return items[identifier]
        for resource in items.values():
            if resource.uid == identifier or resource.uid.replace("-", "") == identifier.replace("-", ""):
                return resource
        raise ResourceNotFoundError(kind, identifier)

    def list(self, kind: str) -> list[Resource]:
        return list(self._items.get(kind, {}).values())

    def apply(self, resources: Iterable[Resource]) -> list[tuple[Resource, str]]:
        outcome = []
        with self._lock:
            for resource in resources:
                items = self._items.setdefault(resource.kind, {})
                existing = items.get(resource.metadata.name)
                if existing is None:
                    status = "created"
                elif existing.spec == resource.spec and existing.metadata.annotations == resource.metadata.annotations:
                    status = "unchanged"
                    resource = existing
                else:
                    status = "updated"
                    resource = resource.model_copy(deep=True)
                    resource.metadata.uid = existing.metadata.uid
                    resource.metadata.created_at = existing.metadata.created_at
                items[resource.metadata.name] = resource
                outcome.append((resource, status))
        return outcome

    def delete(self, kind: str, identifier: str) -> Resource:
        resource = self.get(kind, identifier)
        with self._lock:
            del self._items[kind][resource.metadata.name]
        return resource


def get_catalog() -> Catalog:
    """The catalog in force (:func:`flowdapt.process.current`; an in-memory one until another is set)."""
    return process.current().made("catalog", MemoryCatalog)


def set_catalog(catalog: Catalog) -> None:
    """Make ``catalog`` the place names are looked up (e.g. the SQL store)."""
    process.current().catalog = catalog


def get_workflow(identifier: str) -> Workflow:
    return get_catalog().get(Workflow.KIND, identifier)  # type: ignore[return-value]


def list_configs() -> list[Config]:
    return get_catalog().list(Config.KIND)  # type: ignore[return-value]


def list_triggers() -> list[TriggerRule]:
    return get_catalog().list(TriggerRule.KIND)  # type: ignore[return-value]
