"""Triggers with real time: schedules fire on time and never twice, conditions chain workflows."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from flowdapt.events.bus import MemoryEventBus
from flowdapt.history.store import HistoryStore
from flowdapt.history.triggers import Outcome, ScheduleClaim, TriggerLedger
from flowdapt.resources.loading import parse_resource
from flowdapt.triggers.service import FineSwitching, TriggerService
from tests.flowdapt_server import (  # noqa: F401 - fixtures
    error_of,
    eventually,
    jp_flowdapt,
    jp_flowdapt_api,
    jp_server_config,
    trigger_doc,
    workflow_doc,
)

pytest_plugins = ("pytest_jupyter.jupyter_server",)
FINISHED = "com.event.workflow.workflow_finished"


async def test_every_second_schedule_fires_on_time_and_runs_the_workflow(jp_flowdapt_api):
    api = jp_flowdapt_api
    await api("POST", "workflows", body=workflow_doc("hello"))
    await api("POST", "triggers", body=trigger_doc("tick", ["* * * * * *"], "hello", kind="schedule",
                                                   input={"name": "clock"}))

    async def two_firings():
        firings = (await api("GET", "triggers", "tick", "firings"))[1]
        return firings if len(firings) >= 2 and all(f["run_uid"] for f in firings) else None

    firings = await eventually(two_firings, timeout=10)
    for firing in firings:
        fired = datetime.fromisoformat(firing["fired_at"])
        assert firing["ok"] and timedelta(0) <= fired - fired.replace(microsecond=0) < timedelta(seconds=0.5)
    runs = (await api("GET", "runs", params={"source": "trigger", "workflow": "hello"}))[1]
    assert {run["uid"] for run in runs} >= {firing["run_uid"] for firing in firings}
    await eventually(lambda: _finished_run(api, firings[0]["run_uid"]))
    assert (await api("GET", "runs", firings[0]["run_uid"]))[1]["result"] == "hello clock"


async def _finished_run(api, uid):
    return (await api("GET", "runs", uid))[1]["state"] == "finished"


async def test_condition_trigger_chains_train_then_predict(jp_flowdapt_api):
    api = jp_flowdapt_api
    await api("POST", "workflows", body=workflow_doc("train", {"name": "fit", "target": "tests.stages.numbers"}))
    await api("POST", "workflows", body=workflow_doc("predict", {"name": "score", "target": "tests.stages.greet"}))
    rule = {"and": [{"eq": [{"var": "type"}, FINISHED]}, {"eq": [{"var": "data.workflow"}, "train"]},
                    {"eq": [{"var": "data.state"}, "finished"]}, {"eq": [{"var": "data.result"}, [0, 1, 2]]}]}
    await api("POST", "triggers", body=trigger_doc("after-train", rule, "predict", input={"name": "model"}))
    _, trained = await api("POST", "workflows", "train", "run", body={"n": 3})
    assert trained["state"] == "finished"

    async def predicted():
        runs = (await api("GET", "runs", params={"workflow": "predict", "state": "finished"}))[1]
        return runs[0] if runs else None

    run = await eventually(predicted)
    assert run["source"] == "trigger" and run["result"] == "hello model"
    firings = (await api("GET", "triggers", "after-train", "firings"))[1]
    assert [(f["ok"], f["run_uid"]) for f in firings] == [(True, run["uid"])]
    await api("POST", "workflows", "predict", "run", body={"name": "x"})  # predict finishing fires nothing
    await asyncio.sleep(0.3)
    assert len((await api("GET", "triggers", "after-train", "firings"))[1]) == 1


async def test_user_event_fires_a_condition_trigger(jp_flowdapt_api):
    api = jp_flowdapt_api
    await api("POST", "workflows", body=workflow_doc("hello"))
    rule = {"and": [{"eq": [{"var": "type"}, "com.example.data_ready"]}, {"gt": [{"var": "data.rows"}, 100]}]}
    await api("POST", "triggers", body=trigger_doc("on-data", rule, "hello", input={"name": "data"}))
    await api("POST", "events", body={"type": "com.example.data_ready", "data": {"rows": 5}})
    await api("POST", "events", body={"type": "com.example.data_ready", "data": {"rows": 500}})
    firings = await eventually(lambda: _firings(api, "on-data"))
    await asyncio.sleep(0.2)
    assert len((await api("GET", "triggers", "on-data", "firings"))[1]) == len(firings) == 1


async def _firings(api, name):
    return [f for f in (await api("GET", "triggers", name, "firings"))[1] if f["run_uid"] or not f["ok"]]


async def test_a_failing_action_is_recorded_as_the_firing_outcome(jp_flowdapt_api):
    api = jp_flowdapt_api
    doc = trigger_doc("nb", {"eq": [{"var": "type"}, "com.example.go"]}, "unused")
    doc["spec"]["action"] = {"target": "run_notebook", "parameters": {"notebook": "report.ipynb"}}
    await api("POST", "triggers", body=doc)
    await api("POST", "events", body={"type": "com.example.go"})
    firing, = await eventually(lambda: _firings(api, "nb"))
    assert firing["ok"] is False and "report.ipynb" in firing["error"] and firing["run_uid"] is None


# -- the service alone, on SQLite databases shared like two servers would -----------------------------------

def _store(tmp_path, listen: bool = False) -> HistoryStore:
    return HistoryStore(f"sqlite:///{tmp_path / 'history.db'}", listen=listen).open()


def _apply_schedule(store: HistoryStore, rule: list[str], *, catchup: bool = False, age: timedelta = timedelta(0),
                    name: str = "sched"):
    when = (datetime.now(timezone.utc) - age).isoformat()
    doc = {"kind": "trigger_rule", "metadata": {"name": name, "created_at": when, "updated_at": when},
           "spec": {"type": "schedule", "rule": rule, "catchup": catchup,
                    "action": {"target": "tests.stages.noop"}}}
    (trigger, _), = store.apply([parse_resource(doc)])
    return trigger


async def _no_submit(*args, **kwargs):
    raise AssertionError("import-path actions do not start runs")


async def _run_services(stores: list[HistoryStore], seconds: float, owners: list[str]) -> None:
    bus = MemoryEventBus()
    await bus.start()
    services = [TriggerService(store, bus, _no_submit, owner=owner) for store, owner in zip(stores, owners)]
    for service in services:
        await service.start()
    await asyncio.sleep(seconds)
    for service in services:
        await service.stop()
    await bus.close()


def _fired_seconds(store: HistoryStore) -> Counter:
    return Counter(f.fired_at.replace(microsecond=0) for f in store.trigger_firings(limit=10_000))


def test_two_servers_on_one_database_fire_each_time_once(tmp_path):
    first, second = _store(tmp_path), _store(tmp_path)
    _apply_schedule(first, ["* * * * * *"])
    interval = sys.getswitchinterval()
    asyncio.run(_run_services([first, second], 3.2, ["host:1", "host:2"]))
    assert sys.getswitchinterval() == interval  # lowered around due times only
    fired = _fired_seconds(first)
    assert 2 <= sum(fired.values()) <= 4 and max(fired.values()) == 1
    assert all(f.ok for f in first.trigger_firings())
    first.close(), second.close()


def test_schedule_resumes_after_a_restart_without_firing_twice(tmp_path):
    store = _store(tmp_path)
    _apply_schedule(store, ["* * * * * *"])
    asyncio.run(_run_services([store], 1.6, ["host:1"]))
    store.close()
    store = _store(tmp_path)  # a new server process on the same database
    asyncio.run(_run_services([store], 1.6, ["host:2"]))
    fired = _fired_seconds(store)
    assert sum(fired.values()) >= 3 and max(fired.values()) == 1
    store.close()


@pytest.mark.parametrize("catchup, expected", [(False, 1), (True, 5)])
def test_missed_fires_while_down_fire_once_unless_catchup(tmp_path, catchup, expected):
    store = _store(tmp_path)
    trigger = _apply_schedule(store, ["0 * * * *"], catchup=catchup, age=timedelta(days=1))
    last = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    # The server that fired then is gone, and so is its lease.
    TriggerLedger(store, "old-server").claim(trigger.uid, trigger.name, "tests.stages.noop", last, fired_at=last)
    asyncio.run(_run_services([store], 0.5, ["host:1"]))
    assert len(store.trigger_firings()) == 1 + expected  # the old server's firing, then the catch-up
    store.close()


def test_fine_switching_lowers_the_switch_interval_while_held():
    interval = sys.getswitchinterval()
    switching = FineSwitching(0.001)
    switching.hold()
    switching.hold()
    switching.release()
    assert sys.getswitchinterval() == pytest.approx(0.001)
    switching.release()
    assert sys.getswitchinterval() == interval


async def test_a_cron_that_never_fires_is_refused_when_applied(jp_flowdapt_api):
    doc = trigger_doc("never", ["0 0 30 2 *"], "hello", kind="schedule")
    code, error = await error_of(jp_flowdapt_api("POST", "triggers", body=doc))
    assert code == 422 and error["detail"] == "trigger_rule/never: spec.rule: cron '0 0 30 2 *' never fires: " \
                                              "no date matches it"


def test_a_schedule_that_fails_stops_alone_and_is_recorded_against_its_trigger(tmp_path):
    store = _store(tmp_path)
    broken = _apply_schedule(store, ["0 0 1 1 *"], name="broken")
    broken.spec.rule = ["0 0 30 2 *"]  # stored by an older version, before apply refused it
    store.apply([broken])
    _apply_schedule(store, ["* * * * * *"], name="every-second")
    statuses: dict = {}

    async def run() -> None:
        bus = MemoryEventBus()
        await bus.start()
        service = TriggerService(store, bus, _no_submit, owner="host:1")
        await service.start()
        await asyncio.sleep(2.2)
        statuses.update({trigger.name: service.status(trigger) for trigger in store.list("trigger_rule")})
        await service.stop()
        await bus.close()

    asyncio.run(run())
    firings = store.trigger_firings(limit=100)
    assert sum(1 for f in firings if f.trigger == "every-second" and f.ok) >= 2  # the others go on
    failed, = [f for f in firings if f.trigger == "broken"]
    assert not failed.ok and failed.error.startswith("schedule stopped: CroniterBadDateError")
    assert statuses["broken"]["next_fire_time"] is None and "CroniterBadDateError" in statuses["broken"]["error"]
    assert statuses["every-second"]["next_fire_time"] is not None
    store.close()


def test_two_hundred_schedules_due_in_the_same_second_fire_each_time_exactly_once(tmp_path):
    first, second = _store(tmp_path), _store(tmp_path)
    for index in range(200):
        _apply_schedule(first, ["* * * * * *"], name=f"every-{index}")
    asyncio.run(_run_services([first, second], 2.6, ["host:1", "host:2"]))
    firings = first.trigger_firings(limit=10_000)
    times = Counter((firing.trigger, firing.scheduled_at) for firing in firings)
    assert max(times.values()) == 1  # no time fired twice, by either server
    assert {firing.trigger for firing in firings} == {f"every-{index}" for index in range(200)}
    assert all(firing.ok for firing in firings)
    # Every second both servers ran through fired all 200 triggers (the claims of a second commit together).
    per_second = Counter(firing.scheduled_at for firing in firings)
    assert sorted(per_second.values())[1:-1] == [200] * (len(per_second) - 2)
    first.close(), second.close()


def test_claiming_times_together_leaves_out_a_time_a_backfill_fired_and_claims_the_others(tmp_path):
    store = _store(tmp_path)
    triggers = [_apply_schedule(store, ["0 * * * *"], name=f"hourly-{index}") for index in range(3)]
    ledger = TriggerLedger(store, "host:1")
    due = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    assert ledger.claim_backfill(triggers[1].uid, triggers[1].name, "tests.stages.noop", due) is not None
    claims = [ScheduleClaim(trigger.uid, trigger.name, "tests.stages.noop", due) for trigger in triggers]
    won = ledger.claim_schedules(claims)
    assert [firing is not None for firing in won] == [True, False, True]
    assert ledger.claim_schedules(claims) == [None, None, None]  # each time fires once
    ledger.record_outcomes([Outcome(won[0], "run-1", None), Outcome(won[2], None, "RuntimeError: no")])
    outcomes = {f.trigger: (f.run_uid, f.ok, f.error) for f in store.trigger_firings() if not f.backfill}
    assert outcomes == {"hourly-0": ("run-1", True, None), "hourly-2": (None, False, "RuntimeError: no")}
    store.close()
