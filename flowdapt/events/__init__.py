"""Events and their in-process listeners.

``subscribe(callback)`` registers a listener for every event the engine emits in this process
(the run history and UIs listen this way); it returns a function that unsubscribes. Listeners are
called synchronously in the emitting thread and must be quick; an exception in a listener is
logged and never reaches the run.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from flowdapt.events.models import (
    Event,
    ItemsProgress,
    RunEvent,
    RunFailed,
    RunFinished,
    RunStarted,
    StageEvent,
    StageFailed,
    StageFinished,
    StageLogs,
    StageRetried,
    StageStarted,
)

__all__ = ["Event", "RunEvent", "RunStarted", "RunFinished", "RunFailed", "StageEvent", "StageStarted",
           "StageFinished", "StageFailed", "StageRetried", "StageLogs", "ItemsProgress", "Listener", "subscribe",
           "listeners", "dispatch", "BaseEventBus", "MemoryEventBus", "create_event_bus", "register_event_bus"]
_BUS_NAMES = ("BaseEventBus", "MemoryEventBus", "create_event_bus", "register_event_bus")

Listener = Callable[[Event], None]
_log = logging.getLogger("flowdapt.events")
_listeners: tuple[Listener, ...] = ()
_lock = threading.Lock()


def subscribe(listener: Listener) -> Callable[[], None]:
    """Call ``listener(event)`` for every event emitted in this process; returns the unsubscribe function."""
    global _listeners
    with _lock:
        _listeners = (*_listeners, listener)

    def unsubscribe() -> None:
        global _listeners
        with _lock:
            _listeners = tuple(item for item in _listeners if item is not listener)

    return unsubscribe


def listeners() -> tuple[Listener, ...]:
    """The process-wide listeners now subscribed."""
    return _listeners


def dispatch(event: Event, targets: tuple[Listener, ...]) -> None:
    """Deliver ``event`` to ``targets``; a failing listener is logged and skipped."""
    for listener in targets:
        try:
            listener(event)
        except Exception:  # noqa: BLE001 - a listener must never break a run
            _log.exception("event listener %r failed on %s", listener, event.type)


def __getattr__(name: str):
    # The bus lives in its own module (it imports this one); its names are exported lazily.
    if name in _BUS_NAMES:
        from flowdapt.events import bus

        return getattr(bus, name)
    raise AttributeError(f"module 'flowdapt.events' has no attribute '{name}'")
