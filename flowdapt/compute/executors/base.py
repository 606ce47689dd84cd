"""The executor protocol: how the runner hands stage calls to threads, processes or clusters.

An executor is given one call at a time (``submit``) or one call over many items (``map``) and
reports back through a completion callback; it never blocks the runner. Outputs it reports may be
executor-native handles (a Dask future, a Ray ObjectRef) that it accepts again as ``upstream``
arguments, so data can stay on the cluster; :meth:`BaseExecutor.resolve` turns them into values.
"""

from __future__ import annotations

import abc
import threading
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

from flowdapt.compute.invoke import StageCall, TaskError


@dataclass(slots=True)
class Outcome:
    """What an executor reports when a submitted call or map is over.

    ``value`` is the output (for a map: the successful items' outputs in input order);
    ``error`` is set when the call failed; ``item_failures`` lists (index, error) of failed items;
    ``output_notebook`` is set by notebook stages and copied to the stage record; ``logs`` holds what
    workers in other processes captured (:data:`flowdapt.compute.logs.Shipped`, one per call or chunk);
    ``items_cached`` counts the items of a map whose output came from the result cache.
    """

    value: Any = None
    error: TaskError | None = None
    item_failures: Sequence[tuple[int, TaskError]] = ()  # a tuple by default: no list built per call
    items_total: int | None = None
    item_retries: int = 0
    output_notebook: str | None = None
    logs: list[Any] | None = None
    items_cached: int = 0


OnDone = Callable[[Outcome], None]
OnProgress = Callable[[int, int, int], None]  # (items done, items failed, items total) so far
#: The next call a worker runs at once after reporting a value through ``then`` (see
#: :attr:`BaseExecutor.continues_calls`): ``(call, upstream, resources, then, on_done)``, the
#: arguments :meth:`BaseExecutor.submit` would take.
Continuation = tuple[StageCall, list[Any], dict[str, float], "Then", OnDone]
Then = Callable[[Any], "Continuation | None"]


class TaskHandle:
    """A submitted call or map; ``cancel()`` stops what has not started and flags the rest.

    ``output`` is set by executors that can queue work ahead (see :attr:`BaseExecutor.queues_ahead`):
    the native handle of the call's output, usable as another call's ``upstream`` before this one
    has finished.
    """

    __slots__ = ("_stop", "futures", "cancelled", "slots", "output")

    def __init__(self) -> None:
        self._stop: threading.Event | None = None
        self.futures: list[Any] = []
        self.cancelled = False
        self.slots: list[Any] = []  # executor-specific bookkeeping (e.g. capacity held)
        self.output: Any = None

    @property
    def stop(self) -> threading.Event:
        """Set when the work should stop (created on first use: most calls never need it)."""
        if self._stop is None:
            self._stop = threading.Event()
            if self.cancelled:
                self._stop.set()
        return self._stop


class BaseExecutor(abc.ABC):
    """Base class of executors. Subclasses implement the abstract hooks; see the module doc."""

    kind: ClassVar[str] = ""
    #: Whether :meth:`submit` accepts the ``output`` of a call that has not finished as ``upstream``
    #: (the engine then runs the dependent call once its inputs exist, and never runs it when one of
    #: them failed). The runner uses it to queue a stage on the cluster before its dependencies finish.
    queues_ahead: ClassVar[bool] = False
    #: Whether :meth:`submit` takes ``then``: the worker calls it with the call's value as soon as
    #: the call returns (in place of ``on_done``, which still gets failures), and runs the
    #: :data:`Continuation` it may return right away, on the same worker and capacity. A chain of
    #: stages thus goes on where its last stage ran, with no hop through a queue or another thread.
    #: Only executors whose workers run in the driver's process can offer it (local threads).
    continues_calls: bool = False

    def __init__(self) -> None:
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    @abc.abstractmethod
    def start(self) -> None:
        """Acquire pools or connect to the cluster. Idempotent."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release everything started by :meth:`start`. Idempotent."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """JSON-safe facts about the executor (kind, capacity, addresses)."""

    @abc.abstractmethod
    def submit(self, call: StageCall, upstream: list[Any], resources: dict[str, float], on_done: OnDone,
               then: Then | None = None) -> TaskHandle:
        """Run ``call`` once with ``upstream`` outputs; report through ``on_done`` (and ``then``, only
        given where :attr:`continues_calls` is True)."""

    @abc.abstractmethod
    def map(
        self,
        call: StageCall,
        items: Any,
        upstream_rest: list[Any],
        resources: dict[str, float],
        on_progress: OnProgress,
        on_done: OnDone,
    ) -> TaskHandle:
        """Run ``call`` once per item of ``items`` (in parallel); report progress and the outputs in order."""

    def cancel(self, handle: TaskHandle) -> None:
        """Stop a submitted call or map: queued work is dropped, running work told to stop."""
        handle.cancelled = True
        if handle._stop is not None:
            handle._stop.set()
        for future in handle.futures:
            future.cancel()

    def resolve(self, values: list[Any]) -> list[Any]:
        """Turn outputs reported by this executor into plain Python values (fetched together)."""
        return values

    def __enter__(self) -> "BaseExecutor":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
