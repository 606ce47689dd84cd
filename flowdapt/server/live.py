"""Live updates for the browser: the bus's events re-emitted on jupyter_server's event bus.

JupyterLab already streams jupyter_server events to the page (``serviceManager.events``, the WebSocket
``{base_url}api/events/subscribe``, authenticated, and authorized as the ``events`` resource), so the
sidebar needs no socket of its own. Every event emitted here has the schema :data:`SCHEMA_ID` and a
``kind``: ``run`` (started, finished), ``stage`` (started, finished, failed, retried), ``progress``
(items of a parameterized stage, at most every :data:`PROGRESS_INTERVAL` seconds per stage),
``trigger`` (a firing with its outcome), ``resource`` (workflows, configs or triggers changed) and
``heartbeat``.

Recovery: ``seq`` numbers the events of one server start (``boot``) without gaps, and a heartbeat
every ``heartbeat_seconds`` repeats the last ``seq``. Lab reconnects a dropped socket on its own but
says nothing; a page that sees a gap, a new ``boot`` or no heartbeat for a while reloads its state
from the REST API. Results are never sent (they may be large or not JSON): the run view fetches them.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from flowdapt.events.bus import BaseEventBus
from flowdapt.events.models import Event, ItemsProgress, RunFinished, RunStarted
from flowdapt.history.recorder import TRIGGER_FIRED

SCHEMA_ID = "https://flowdapt.org/events/workbench"
SCHEMA_PATH = Path(__file__).with_name("live-event.schema.json")
PROGRESS_INTERVAL = 0.1  # seconds between two progress events of one stage
_STAGE_TYPES = {"com.event.workflow.stage_started", "com.event.workflow.stage_finished",
                "com.event.workflow.stage_failed", "com.event.workflow.stage_retried"}
_RUN_KEYS = ("uid", "name", "workflow", "state", "source", "executor", "namespace")


def live_payload(event: Event) -> dict[str, Any] | None:
    """What the page gets for a bus event (without ``seq``/``boot``), or None for events it ignores."""
    data = event.data if isinstance(event.data, dict) else {}
    if event.type in (RunStarted.TYPE, RunFinished.TYPE):
        run = {key: data.get(key) for key in _RUN_KEYS}
        if event.type == RunFinished.TYPE:
            run.update(error=data.get("error"), duration=data.get("duration"))
        return {"kind": "run", "run": run}
    if event.type in _STAGE_TYPES or event.type == ItemsProgress.TYPE:
        return {"kind": "progress" if event.type == ItemsProgress.TYPE else "stage",
                "run": {key: data.get(key) for key in _RUN_KEYS}, "stage": data.get("stage") or {}}
    if event.type == TRIGGER_FIRED:
        return {"kind": "trigger", "firing": data}
    return None


class LiveUpdates:
    """Forwards the bus's run, stage and trigger events, and resource changes, to jupyter_server's event logger.

    Parameters
    ----------
    event_logger : the Jupyter server's ``jupyter_events.EventLogger`` (its schema registered already)
    bus : the flowdapt event bus
    heartbeat_seconds : how often a heartbeat repeats the last ``seq``
    """

    def __init__(self, event_logger: Any, bus: BaseEventBus, heartbeat_seconds: float = 10.0) -> None:
        self.event_logger = event_logger
        self.bus = bus
        self.heartbeat_seconds = heartbeat_seconds
        self.boot = uuid.uuid4().hex
        self.seq = 0
        self._counter = itertools.count(1)
        self._unsubscribe: Callable[[], None] | None = None
        self._heartbeat: asyncio.Task | None = None

    @staticmethod
    def register_schema(event_logger: Any) -> None:
        """Register :data:`SCHEMA_ID` (before any page subscribes: Lab's socket listens to the schemas known then)."""
        if SCHEMA_ID not in event_logger.schemas.schema_ids:
            event_logger.register_event_schema(SCHEMA_PATH)

    def start(self) -> None:
        """Forward events from now on and start the heartbeat (on the server's loop)."""
        self._unsubscribe = self.bus.subscribe(self._forward)
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat(), name="flowdapt-live-heartbeat")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
            self._heartbeat = None

    def emit(self, payload: dict[str, Any], at: float) -> None:
        """Emit one event with the next ``seq``; ``at`` is when it happened (seconds since the epoch)."""
        self.seq = next(self._counter)
        self.event_logger.emit(schema_id=SCHEMA_ID, data={**payload, "seq": self.seq, "boot": self.boot, "time": at})

    def resource_changed(self, kind: str) -> None:
        """Tell the pages that resources of ``kind`` were created, changed or deleted."""
        self.emit({"kind": "resource", "resource": {"kind": kind}}, time.time())

    def _forward(self, event: Event) -> None:
        payload = live_payload(event)
        if payload is not None:
            self.emit(payload, event.time)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            # The heartbeat takes no seq of its own: it tells which seq the page should have seen last.
            self.event_logger.emit(schema_id=SCHEMA_ID, data={"kind": "heartbeat", "seq": self.seq,
                                                              "boot": self.boot, "time": time.time()})
