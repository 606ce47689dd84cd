"""Flowdapt's condition DSL and cron helpers used by triggers."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from flowdapt.triggers.conditions import evaluate, validate_condition
from flowdapt.triggers.schedule import next_fire_time, validate_cron

EVENT = {"type": "com.event.workflow.workflow_finished",
         "data": {"workflow": "train", "state": "finished", "result": {"score": 0.9}, "items": [3, 4]}}


@pytest.mark.parametrize(("rule", "expected"), [
    ({"eq": [{"var": "data.workflow"}, "train"]}, True),
    ({"ne": [{"var": "data.state"}, "finished"]}, False),
    ({"gt": [{"var": "data.result.score"}, 0.5]}, True),
    ({"le": [{"var": "data.result.score"}, 0.5]}, False),
    ({"and": [{"eq": [{"var": "type"}, "com.event.workflow.workflow_finished"]},
              {"eq": [{"var": "data.workflow"}, "train"]}, {"eq": [{"var": "data.state"}, "finished"]}]}, True),
    ({"or": [{"eq": [{"var": "data.workflow"}, "predict"]}, {"eq": [{"var": "data.items.1"}, 4]}]}, True),
    ({"not": {"bool": {"var": "data.missing"}}}, True),
    ({"gt": [{"var": "data.missing"}, 3]}, False),
    ({"eq": [{"var": "data.missing.deeper"}, None]}, True),
])
def test_conditions_evaluate_against_event_data(rule, expected):
    validate_condition(rule)
    assert evaluate(rule, EVENT) is expected


@pytest.mark.parametrize(("rule", "message"), [
    ({"eq": [1, 2], "ne": [1, 2]}, "rule: a condition node has exactly one operator"),
    ({"like": [1, 2]}, "rule: unknown operator 'like'"),
    ({"not": [1, 2]}, "rule.not: expects 1 operand, got 2"),
    ({"or": [{"eq": [{"var": "a"}, 1, 2]}]}, "rule.or[0].eq: expects 2 operands, got 3"),
    ({"var": 3}, "rule.var: expected a dot path"),
])
def test_malformed_conditions_name_the_bad_node(rule, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate_condition(rule)


def test_cron_with_seconds_as_sixth_field_and_timezones():
    validate_cron("*/5 * * * * *")
    start = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert next_fire_time("* * * * * */10", start) == datetime(2026, 1, 1, 12, 0, 10, tzinfo=timezone.utc)
    berlin = next_fire_time("0 9 * * *", start, "Europe/Berlin")
    assert berlin.utcoffset().total_seconds() == 3600 and berlin.hour == 9 and berlin.day == 2
