"""Service levels of schedules (late and missed times as events) and the backfill's concurrency limit."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from flowdapt.workspace import LocalBackend
from flowdapt.events.bus import MemoryEventBus
from flowdapt.history.models import RunQuery
from flowdapt.history.triggers import TriggerLedger
from flowdapt.resources.loading import loads
from flowdapt.settings import get_settings
from flowdapt.triggers.service import SCHEDULE_LATE, SCHEDULE_MISSED, TriggerService
from tests.test_triggers_service import _apply_schedule, _no_submit, _store


def _events_while_serving(store, seconds: float) -> list:
    seen: list = []

    async def serve() -> None:
        bus = MemoryEventBus()
        await bus.start()
        bus.subscribe(seen.append, types=[SCHEDULE_LATE, SCHEDULE_MISSED])
        service = TriggerService(store, bus, _no_submit, owner="host:1")
        await service.start()
        await asyncio.sleep(seconds)
        await service.stop()
        await bus.close()

    asyncio.run(serve())
    return seen


def test_times_a_schedule_skipped_and_firings_later_than_its_sla_are_published(tmp_path):
    store = _store(tmp_path)
    hourly = _apply_schedule(store, ["0 * * * *"], age=timedelta(days=1), name="hourly")
    last = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    TriggerLedger(store, "old-server").claim(hourly.uid, hourly.name, "tests.stages.noop", last, fired_at=last)
    missed = _events_while_serving(store, 0.5)
    assert [event.data["scheduled_for"] for event in missed] == [
        (last + timedelta(hours=hours)).isoformat() for hours in range(1, 5)]  # the fifth hour fired, late
    assert {event.type for event in missed} == {SCHEDULE_MISSED}
    store.delete("trigger_rule", "hourly")
    strict = _apply_schedule(store, ["* * * * * *"], name="strict")
    strict.spec.sla = 0.000001
    store.apply([strict])
    late = _events_while_serving(store, 1.5)
    assert late and all(event.type == SCHEDULE_LATE and event.data["trigger"] == "strict" for event in late)
    assert late[0].data["late_by"] > 0 and late[0].data["sla"] == 0.000001
    store.close()


def test_a_backfill_keeps_to_its_concurrency_without_a_server(tmp_path):
    backend = LocalBackend(get_settings())
    try:
        backend.apply(loads("""
kind: workflow
metadata: {name: nap}
spec: {stages: [{name: nap, target: tests.stages.sleep_for}]}
---
kind: trigger_rule
metadata: {name: every-minute}
spec:
  type: schedule
  rule: ["* * * * *"]
  action: {target: run_workflow, parameters: {workflow: nap, input: {seconds: 0.3}}}
"""))
        done = backend.backfill("every-minute", datetime(2024, 1, 1), datetime(2024, 1, 1, 0, 5), concurrency=2,
                                wait=True)
        assert len(done["fired"]) == 6 and done["done"]
        backend.store.flush()
        runs = backend.list_runs(RunQuery(workflow="nap"))
        spans = [(run.started_at, run.finished_at) for run in runs]
        overlaps = max(sum(start <= moment < end for start, end in spans) for moment, _ in spans)
        assert overlaps == 2 and all(run.state == "finished" for run in runs)
        assert sorted(run.logical_time.minute for run in runs) == list(range(6))
    finally:
        backend.close()
