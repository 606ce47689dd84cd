"""What one flowdapt process holds, in one documented place: :class:`ProcessState`.

A process has one configuration (``settings``), one catalog that names are looked up in
(``catalog``), one local cluster memory (the object store of runs on this machine's threads and
processes, ``local_memory``), the cluster memories that started executors registered
(``cluster_memories``), and the executors shared by runs that name an executor instead of passing
one (``executors``). The functions that read them (:func:`flowdapt.settings.get_settings`,
:func:`flowdapt.resources.catalog.get_catalog`, :mod:`flowdapt.compute.object_store`,
:func:`flowdapt.compute.executors.shared_executor`) all read :func:`current`.

:func:`use` puts another state in force for a block and restores the previous one after it. The
tests give each test a fresh one with :meth:`ProcessState.fresh` (new settings, catalog and local
memory; the session's executors and their memories are kept, as starting a cluster per test is slow).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar

if TYPE_CHECKING:
    from flowdapt.compute.executors.base import BaseExecutor
    from flowdapt.compute.object_store import ClusterMemory, LocalMemory
    from flowdapt.resources.catalog import Catalog
    from flowdapt.settings import Settings

T = TypeVar("T")


@dataclasses.dataclass
class ProcessState:
    """The process-wide state; a field left ``None`` is made by its reader on first use (settings are
    loaded from the app dir and the environment, the catalog is an in-memory one, the memory empty)."""

    settings: Settings | None = None
    catalog: Catalog | None = None
    local_memory: LocalMemory | None = None
    cluster_memories: dict[str, ClusterMemory] = dataclasses.field(default_factory=dict)
    executors: dict[tuple[str, str], BaseExecutor] = dataclasses.field(default_factory=dict)
    lock: Any = dataclasses.field(default_factory=threading.RLock, repr=False)

    def made(self, field: str, make: Callable[[], T]) -> T:
        """The value of ``field``, made by ``make()`` on first use (once, whichever threads ask)."""
        value = getattr(self, field)
        if value is None:
            with self.lock:
                value = getattr(self, field)
                if value is None:
                    value = make()
                    setattr(self, field, value)
        return value

    def fresh(self, **fields: Any) -> "ProcessState":
        """A new state with ``fields`` (default: new settings, catalog and local memory) that shares this
        one's executors and the cluster memories they registered."""
        return ProcessState(cluster_memories=self.cluster_memories, executors=self.executors, lock=self.lock,
                            **fields)


_current = ProcessState()


def current() -> ProcessState:
    """The state in force."""
    return _current


@contextlib.contextmanager
def use(state: ProcessState) -> Iterator[ProcessState]:
    """Put ``state`` in force for the block (in every thread of the process); the previous one comes back after."""
    global _current
    previous, _current = _current, state
    try:
        yield state
    finally:
        _current = previous
