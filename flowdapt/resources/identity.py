"""A small bounded cache keyed by an object's identity, for things derived from a definition that
is run again and again (its parsed form, its validated graph)."""

from __future__ import annotations

import threading
from typing import Any, Generic, TypeVar

V = TypeVar("V")


class ByIdentity(Generic[V]):
    """Values remembered for objects, by ``id(object)``; the latest ``kept`` are held.

    Each entry keeps its object alive, so no other object can take its id while the entry is held.
    Whether a remembered value still fits the object (it may have been edited) is the caller's check.
    """

    def __init__(self, kept: int) -> None:
        self._kept = kept
        self._entries: dict[int, tuple[Any, V]] = {}
        self._lock = threading.Lock()

    def get(self, obj: Any) -> V | None:
        """The value remembered for ``obj``, or None."""
        entry = self._entries.get(id(obj))
        return entry[1] if entry is not None and entry[0] is obj else None

    def put(self, obj: Any, value: V) -> None:
        """Remember ``value`` for ``obj``, letting go of the oldest entry when full."""
        with self._lock:
            if len(self._entries) >= self._kept:
                self._entries.pop(next(iter(self._entries)))
            self._entries[id(obj)] = (obj, value)
