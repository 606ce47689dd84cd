"""The catalog in memory: resource reads on the server's event loop without a database call.

:class:`CatalogCache` keeps every resource of a kind (workflows, configs, trigger rules) as last
listed from the history store. Writes made through this server invalidate their kind at once (the
next read re-lists it), so the server reads its own writes. Resources changed by another process
sharing the database are seen within ``ttl`` seconds: a read of a kind listed longer ago re-lists
it in a worker thread; a lookup by name or uid that misses the cache asks the database.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from flowdapt.history.store import HistoryStore
from flowdapt.resources.models import Resource


@dataclass
class _Entry:
    """The resources of one kind as listed at ``loaded_at`` (monotonic seconds)."""

    items: list[Resource]
    loaded_at: float
    by_key: dict[str, Resource] = field(init=False)
    documents: dict[str, dict[str, Any]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.by_key = {key: item for item in self.items for key in (item.name, item.uid)}


class CatalogCache:
    """Resources by kind, read from ``store`` at most once per ``ttl`` seconds unless invalidated."""

    def __init__(self, store: HistoryStore, ttl: float = 2.0) -> None:
        self.store = store
        self.ttl = ttl
        self._entries: dict[str, _Entry] = {}
        self._loading: dict[str, asyncio.Future[_Entry]] = {}

    async def list(self, kind: str) -> list[Resource]:
        """Every resource of ``kind``, by name."""
        return (await self._entry(kind)).items

    async def get(self, kind: str, identifier: str) -> Resource:
        """The resource of ``kind`` with this name or uid; raises ``ResourceNotFoundError``."""
        found = (await self._entry(kind)).by_key.get(identifier)
        if found is not None:
            return found
        resource = await asyncio.to_thread(self.store.get, kind, identifier)
        self.invalidate(kind)  # created by another process since the kind was listed
        return resource

    def document(self, resource: Resource) -> dict[str, Any]:
        """``resource.to_document()``, built once per cached resource (callers must not change it)."""
        entry = self._entries.get(resource.kind)
        if entry is None or entry.by_key.get(resource.uid) is not resource:
            return resource.to_document()
        document = entry.documents.get(resource.uid)
        if document is None:
            document = entry.documents[resource.uid] = resource.to_document()
        return document

    def invalidate(self, kind: str) -> None:
        """Forget ``kind`` (after a write): the next read lists it again, ignoring a listing under way."""
        self._entries.pop(kind, None)
        self._loading.pop(kind, None)

    async def _entry(self, kind: str) -> _Entry:
        entry = self._entries.get(kind)
        if entry is not None and time.monotonic() - entry.loaded_at < self.ttl:
            return entry
        loading = self._loading.get(kind)
        if loading is None:  # one listing per kind at a time, shared by concurrent readers
            loading = self._loading[kind] = asyncio.ensure_future(self._load(kind))
        return await asyncio.shield(loading)

    async def _load(self, kind: str) -> _Entry:
        loaded_at = time.monotonic()
        try:
            entry = _Entry(await asyncio.to_thread(self.store.list, kind), loaded_at)
        finally:
            current = self._loading.get(kind) is asyncio.current_task()
            if current:
                del self._loading[kind]
        if current:  # not invalidated while listing: the listing may have missed that write
            self._entries[kind] = entry
        return entry
