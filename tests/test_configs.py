"""Config resources reach stages through ``get_run_context().config`` (Flowdapt's selector rules)."""

from __future__ import annotations

import flowdapt
from flowdapt.resources import loads
from flowdapt.resources.catalog import get_catalog
from flowdapt.resources.configs import merged_config

WORKFLOW = """
kind: workflow
metadata: {name: train, annotations: {group: nowcast, team: ml}}
spec:
  stages:
    - {name: ctx, target: tests.stages.context_info}
"""


def config(name: str, selector: str, data: str) -> str:
    return f"---\nkind: config\nmetadata: {{name: {name}}}\nspec:\n  selector: {selector}\n  data: {data}\n"


def resources(*configs: str):
    return loads(WORKFLOW + "".join(configs))


def test_configs_select_by_name_and_by_any_matching_annotation():
    workflow, *configs = resources(
        config("by-name", "{type: name, value: train}", "{a: name}"),
        config("by-team", "{type: annotation, value: {team: ml}}", "{b: team}"),
        config("other-team", "{type: annotation, value: {team: ops}}", "{c: nope}"),
        config("other-name", "{type: name, value: predict}", "{d: nope}"),
        config("wrong-kind", "{kind: trigger_rule, type: name, value: train}", "{e: nope}"),
    )
    assert merged_config(workflow, configs) == {"a": "name", "b": "team"}


def test_name_configs_win_over_annotation_configs_and_later_configs_win_among_equals():
    workflow, *configs = resources(
        config("specific", "{type: name, value: train}", "{lr: 0.1, depth: 3}"),
        config("general", "{type: annotation, value: {group: nowcast}}", "{lr: 0.5, epochs: 10}"),
        config("general-later", "{type: annotation, value: {group: nowcast}}", "{epochs: 20}"),
    )
    assert merged_config(workflow, configs) == {"lr": 0.1, "depth": 3, "epochs": 20}


def test_a_config_without_selector_never_applies():
    workflow, *configs = resources("---\nkind: config\nmetadata: {name: loose}\nspec:\n  data: {x: 1}\n")
    assert merged_config(workflow, configs) == {}


def test_applied_configs_reach_the_stage_context():
    get_catalog().apply(resources(config("main", "{type: annotation, value: {group: nowcast}}", "{study: s1}")))
    run = flowdapt.run_workflow("train")
    assert run.result["config"] == {"study": "s1"}
    run = flowdapt.run_workflow("train", config={"study": "override"})
    assert run.result["config"] == {"study": "override"}
