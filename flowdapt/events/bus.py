"""The event bus: asynchronous publish/subscribe of events inside a server.

:class:`BaseEventBus` is the small interface a broker implements (``start``, ``close``,
``publish``, ``subscribe``); :class:`MemoryEventBus` delivers on the server's asyncio loop.
Brokers are chosen by URL scheme (``memory://``) through :func:`create_event_bus`, and an external
one (e.g. AMQP) is added with :func:`register_event_bus`.

The engine emits its events synchronously in runner threads; :func:`bridge_engine_events` copies
each one (the run record it refers to keeps changing) and publishes the copy on the bus.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import threading
from abc import ABC, abstractmethod
from typing import Awaitable, Callable, Iterable

from flowdapt import events
from flowdapt.errors import UnknownNameError
from flowdapt.events.models import Event, ItemsProgress, RunFinished

_log = logging.getLogger("flowdapt.events")
Callback = Callable[[Event], "None | Awaitable[None]"]
RESULT_LIMIT_BYTES = 64 * 1024


class BaseEventBus(ABC):
    """Publish events to every matching subscriber; callbacks run on the bus's asyncio loop."""

    @abstractmethod
    async def start(self) -> None:
        """Connect (to the broker) and start delivering; called on the server's loop."""

    @abstractmethod
    async def close(self) -> None:
        """Deliver what is queued, wait for running callbacks, disconnect."""

    @abstractmethod
    def publish(self, event: Event) -> None:
        """Send ``event`` to the subscribers; safe to call from any thread, never blocks."""

    @abstractmethod
    def subscribe(self, callback: Callback, types: Iterable[str] | None = None) -> Callable[[], None]:
        """Call ``callback(event)`` (sync or async) for events of ``types`` (all if None); returns unsubscribe."""


class MemoryEventBus(BaseEventBus):
    """In-process bus: events are delivered in publish order on the loop that started it.

    Synchronous callbacks run inline on the loop and must be quick; coroutine callbacks run as tasks.
    An exception in a callback is logged and never reaches the publisher.
    """

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._subscribers: tuple[tuple[Callback, frozenset[str] | None], ...] = ()
        self._tasks: set[asyncio.Task] = set()
        self.published = 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()

    async def close(self) -> None:
        await asyncio.sleep(0)  # let callbacks scheduled by call_soon run
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._loop = None

    def publish(self, event: Event) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        self.published += 1
        if threading.get_ident() == self._thread:
            loop.call_soon(self._deliver, event)
        else:
            loop.call_soon_threadsafe(self._deliver, event)

    def subscribe(self, callback: Callback, types: Iterable[str] | None = None) -> Callable[[], None]:
        entry = (callback, None if types is None else frozenset(types))
        self._subscribers = (*self._subscribers, entry)

        def unsubscribe() -> None:
            self._subscribers = tuple(item for item in self._subscribers if item is not entry)

        return unsubscribe

    def _deliver(self, event: Event) -> None:
        for callback, types in self._subscribers:
            if types is not None and event.type not in types:
                continue
            try:
                outcome = callback(event)
            except Exception:  # noqa: BLE001 - one subscriber must not break the others
                _log.exception("event callback %r failed on %s", callback, event.type)
                continue
            if inspect.isawaitable(outcome):
                task = asyncio.ensure_future(outcome)
                self._tasks.add(task)
                task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("event callback failed", exc_info=task.exception())


_BUSES: dict[str, type[BaseEventBus]] = {"memory": MemoryEventBus}


def register_event_bus(scheme: str, bus: type[BaseEventBus]) -> None:
    """Make ``create_event_bus("<scheme>://...")`` build ``bus(url)``."""
    _BUSES[scheme] = bus


def create_event_bus(url: str = "memory://") -> BaseEventBus:
    """The bus for a broker URL (``memory://`` is in-process)."""
    scheme = url.partition("://")[0]
    if scheme not in _BUSES:
        raise UnknownNameError("event bus scheme", scheme, list(_BUSES))
    return _BUSES[scheme](url)  # type: ignore[call-arg]


def snapshot(event: Event, result_limit: int = RESULT_LIMIT_BYTES) -> Event:
    """A plain copy of an engine event, as it is now; a finished run's result is dropped when large."""
    data = event.payload()
    if isinstance(event, RunFinished) and data.get("result") is not None:
        try:
            size = len(json.dumps(data["result"], default=repr))
        except (TypeError, ValueError, RecursionError):
            size = result_limit + 1
        if size > result_limit:
            data["result"] = None
            data["result_truncated"] = True
    return Event(type=event.type, source=event.source, channel=event.channel, data=data, id=event.id, time=event.time)


def bridge_engine_events(bus: BaseEventBus, *, progress: bool = False,
                         progress_interval: float | None = None) -> Callable[[], None]:
    """Publish a copy of every engine event of this process on ``bus``; returns the function that stops it.

    Per-item progress events are left out (a large fan-out emits thousands) unless ``progress`` (all of
    them) or ``progress_interval`` (at most one per stage every that many seconds, and the last one).
    """
    last_sent: dict[tuple[str, str], float] = {}

    def throttled(event: ItemsProgress) -> bool:
        stage = event.stage
        key = (event.run.uid, stage.name)
        if stage.items_total is not None and stage.items_done + stage.items_failed >= stage.items_total:
            last_sent.pop(key, None)  # the last one always goes, and the stage is forgotten
            return False
        if event.time - last_sent.get(key, 0.0) < progress_interval:  # type: ignore[operator]
            return True
        if len(last_sent) > 10_000:  # stages cancelled before their last item are never popped
            last_sent.clear()
        last_sent[key] = event.time
        return False

    def forward(event: Event) -> None:
        if type(event) is ItemsProgress and not progress:
            if progress_interval is None or throttled(event):
                return
        bus.publish(snapshot(event))

    return events.subscribe(forward)
