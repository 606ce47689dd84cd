"""Condition triggers cannot feed on themselves: a trigger never fires on what its own firing caused,
chains of triggers are cut, and a trigger matching too often is rate limited (recorded as suppressed)."""

from __future__ import annotations

import asyncio

import pytest

from tests.flowdapt_server import eventually, jp_flowdapt, jp_flowdapt_api, trigger_doc, workflow_doc  # noqa: F401

pytest_plugins = ("pytest_jupyter.jupyter_server",)
FINISHED = "com.event.workflow.workflow_finished"


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"flowdapt": True}}, "FlowdaptApp": {"trigger_rate_limit": 3}}


async def _firings(api, name):
    return (await api("GET", "triggers", name, "firings", params={"limit": 1000}))[1]


async def test_an_always_true_condition_fires_once_per_event_not_on_its_own_consequences(jp_flowdapt_api):
    api = jp_flowdapt_api
    await api("POST", "workflows", body=workflow_doc("hello"))
    await api("POST", "triggers", body=trigger_doc("always", {"eq": [1, 1]}, "hello", input={"name": "x"}))
    await api("POST", "events", body={"type": "com.example.once"})
    firing, = await eventually(lambda: _firings(api, "always"))

    async def finished():
        return (await api("GET", "runs", firing["run_uid"]))[1]["state"] == "finished"

    await eventually(finished)
    await asyncio.sleep(1)  # the run's events and the firing's own event came and went
    assert len(await _firings(api, "always")) == 1
    assert len((await api("GET", "runs", params={"workflow": "hello"}))[1]) == 1


async def test_a_cycle_of_triggers_stops_where_a_trigger_would_fire_on_its_own_consequence(jp_flowdapt_api):
    api = jp_flowdapt_api
    for name in ("ping", "pong"):
        await api("POST", "workflows", body=workflow_doc(name))
    after = lambda workflow: {"and": [{"eq": [{"var": "type"}, FINISHED]},  # noqa: E731
                                      {"eq": [{"var": "data.workflow"}, workflow]}]}
    await api("POST", "triggers", body=trigger_doc("ping-then-pong", after("ping"), "pong", input={"name": "p"}))
    await api("POST", "triggers", body=trigger_doc("pong-then-ping", after("pong"), "ping", input={"name": "p"}))
    await api("POST", "workflows", "ping", "run", body={"name": "start"})

    async def second_ping_finished():
        runs = (await api("GET", "runs", params={"workflow": "ping", "state": "finished"}))[1]
        return len(runs) == 2

    await eventually(second_ping_finished)
    await asyncio.sleep(1)
    # ping (by hand) -> pong (by ping-then-pong) -> ping (by pong-then-ping) -> stop: ping-then-pong caused it
    assert len(await _firings(api, "ping-then-pong")) == 1 and len(await _firings(api, "pong-then-ping")) == 1
    assert len((await api("GET", "runs", params={"workflow": "pong"}))[1]) == 1


async def test_a_trigger_matching_too_often_is_suppressed_and_says_so(jp_flowdapt_api):
    api = jp_flowdapt_api
    await api("POST", "workflows", body=workflow_doc("hello"))
    rule = {"eq": [{"var": "type"}, "com.example.tick"]}
    await api("POST", "triggers", body=trigger_doc("ticker", rule, "hello", input={"name": "t"}))
    for _ in range(6):
        await api("POST", "events", body={"type": "com.example.tick"})

    async def four_firings():
        firings = await _firings(api, "ticker")
        return firings if len(firings) == 4 else None

    firings = await eventually(four_firings)
    await asyncio.sleep(0.5)
    assert len(await _firings(api, "ticker")) == 4  # 3 within the limit, and 1 record of the suppression
    suppressed = [firing for firing in firings if not firing["ok"]]
    assert len(suppressed) == 1 and suppressed[0]["run_uid"] is None
    assert suppressed[0]["error"].startswith("suppressed: over the rate limit of 3 firings a minute")
    assert (await api("GET", "status"))[1]["trigger_suppressed"] == 3
