"""Loading and validating resources (SPEC §3, §9): every bad input names file, resource, stage and field."""

from __future__ import annotations

import pickle
import textwrap

import pytest

import flowdapt
from flowdapt.errors import ResourceError
from flowdapt.resources import Config, TriggerRule, Workflow, load, loads, parse_bytes
from flowdapt.resources.catalog import MemoryCatalog
from flowdapt.compute.validation import workflow_graph

GOOD = """
kind: workflow
metadata:
  name: train
  annotations: {group: nowcast}
spec:
  stages:
    - name: source
      target: tests.stages.numbers
      resources: {cpus: 0.5, memory: 8GB}
    - name: square
      target: tests.stages.square
      type: parameterized
      depends_on: [source]
      resources: {cpus: 1, gpus: 0, memory: 1GiB, hamster_wheels: 2}
---
kind: config
metadata: {name: main}
spec:
  selector: {type: annotation, value: {group: nowcast}}
  data: {study: unique-namespace}
---
version: v1alpha1
kind: trigger_rule
metadata: {name: auto_predict}
spec:
  type: condition
  rule:
    and:
      - eq: [{var: type}, com.event.workflow.workflow_finished]
      - eq: [{var: data.workflow}, train]
  action: {target: run_workflow, parameters: {workflow: predict}}
"""


def write(tmp_path, text: str, name: str = "flows.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def workflow_yaml(stages: str, name: str = "wf") -> str:
    return f"kind: workflow\nmetadata: {{name: {name}}}\nspec:\n  stages:\n{textwrap.indent(textwrap.dedent(stages), '    ')}"


def load_error(tmp_path, text: str) -> ResourceError:
    path = write(tmp_path, text)
    with pytest.raises(ResourceError) as caught:
        load(path)
    assert "\n" not in str(caught.value), "errors are one line"
    assert str(path) in str(caught.value), "errors name the file"
    return caught.value


def test_a_multi_document_file_loads_every_kind(tmp_path):
    workflow, config, trigger = load(write(tmp_path, GOOD))
    assert isinstance(workflow, Workflow) and isinstance(config, Config) and isinstance(trigger, TriggerRule)
    stages = workflow.spec.stages
    assert stages[0].resources.memory == 8_000_000_000
    assert stages[1].resources.memory == 2**30
    assert stages[1].resources.as_dict() == {"cpus": 1, "gpus": 0, "memory": 2**30, "hamster_wheels": 2.0}
    assert workflow.metadata.annotations == {"group": "nowcast"}
    assert trigger.version == "v1alpha1"


def test_a_folder_loads_yaml_and_json_files(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path, workflow_yaml("- {name: a, target: tests.stages.noop}", "one"), "sub/one.yml")
    (tmp_path / "two.json").write_text(
        '{"kind": "workflow", "metadata": {"name": "two"}, "spec": {"stages": [{"name": "a", "target": "tests.stages.noop"}]}}')
    (tmp_path / "notes.txt").write_text("not a resource")
    assert sorted(r.name for r in load(tmp_path)) == ["one", "two"]


def test_flowdapt_resource_files_keep_working(tmp_path):
    # The nowcast plugin's files, verbatim in shape (targets from a plugin that is not installed here).
    text = """
    kind: workflow
    metadata:
      name: train
      annotations:
        group: nowcast
    spec:
      stages:
        - name: get_city_model_iterable
          target: flowdapt_nowcast_plugin.stages.get_city_model_iterable
          resources:
            cpus: 0.5
        - name: train_pipeline
          target: flowdapt_nowcast_plugin.stages.train_pipeline
          type: parameterized
          depends_on:
            - get_city_model_iterable
          resources:
            cpus: 4
            memory: 8GB
    ---
    kind: trigger_rule
    metadata: {name: run_scheduled}
    spec:
      type: schedule
      rule: ["*/10 * * * *"]
      action:
        target: run_workflow
        params: {workflow: scheduled_workflow, input: {x: 6}}
    """
    workflow, trigger = load(write(tmp_path, text), check_targets=False)
    assert workflow.spec.stages[1].depends_on == ["get_city_model_iterable"]
    assert trigger.spec.action.parameters == {"workflow": "scheduled_workflow", "input": {"x": 6}}


@pytest.mark.parametrize(
    ("stages", "expected"),
    [
        ("- {name: a, target: tests.stages.noop, type: magic}",
         "workflow/wf: stage 'a': type: unknown stage type 'magic' (known: documented, notebook, parameterized, simple)"),
        ("- {name: a, target: tests.stages.noop}\n- {name: a, target: tests.stages.noop}",
         "workflow/wf: stage 'a': name: duplicate stage name 'a'"),
        ("- {name: a, target: tests.stages.square, depends_on: [nope]}",
         "workflow/wf: stage 'a': depends_on: unknown stage 'nope'"),
        ("- {name: a, target: tests.stages.square, depends_on: [a]}",
         "workflow/wf: stage 'a': depends_on: stage depends on itself"),
        ("- {name: a, target: tests.stages.square, depends_on: [c]}\n"
         "- {name: b, target: tests.stages.square, depends_on: [a]}\n"
         "- {name: c, target: tests.stages.square, depends_on: [b]}",
         "depends_on: cycle "),
        ("- {name: a, target: no_such_package.mod.func}",
         "workflow/wf: stage 'a': target: no module named 'no_such_package'"),
        ("- {name: a, target: tests.stages.no_such_function}",
         "workflow/wf: stage 'a': target: module 'tests.stages' has no attribute 'no_such_function'"),
        ("- {name: a, target: notapath}",
         "stage 'a': target: 'notapath' is not an import path of the form package.module.function"),
        ("- {name: a, target: tests.stages.noop, resources: {memory: 8 gigs}}",
         "workflow/wf: stage 'a': resources.memory: invalid size '8 gigs'"),
        ("- {name: a, target: tests.stages.noop, resources: {cpus: -1}}",
         "workflow/wf: stage 'a': resources.cpus: Input should be greater than or equal to 0"),
        ("- {name: a, target: tests.stages.noop, resources: {wheels: many}}",
         "stage 'a': resources: custom resource 'wheels' must be a non-negative number, got 'many'"),
        ("- {name: a, target: tests.stages.noop, depend_on: [b]}",
         "workflow/wf: stage 'a': depend_on: unknown field"),
        ("- {name: a, target: tests.stages.noop, options: {retries: -1}}",
         "workflow/wf: stage 'a': options.retries: Input should be greater than or equal to 0"),
        ("- {name: a, target: tests.stages.square, type: parameterized}",
         "stage 'a': options.map_on: a parameterized stage needs depends_on or options.map_on"),
        ("- {name: a, target: tests.stages.numbers}\n- {name: b, target: tests.stages.takes_nothing, depends_on: [a]}",
         "stage 'b': target: function takes no positional arguments but depends_on lists 1 stage(s)"),
        ("- {name: 'bad name', target: tests.stages.noop}",
         "workflow/wf: stage 'bad name': name: String should match pattern"),
        ("- {name: a}", "workflow/wf: stage 'a': target: required field is missing"),
        (f"- {{name: {'s' * 129}, target: tests.stages.noop}}", "name: String should have at most 128 characters"),
    ],
)
def test_invalid_workflows_are_rejected_naming_resource_stage_and_field(tmp_path, stages, expected):
    assert expected in str(load_error(tmp_path, workflow_yaml(stages)))


def test_a_cycle_is_named_stage_by_stage(tmp_path):
    error = load_error(tmp_path, workflow_yaml(
        "- {name: a, target: tests.stages.square, depends_on: [c]}\n"
        "- {name: b, target: tests.stages.square, depends_on: [a]}\n"
        "- {name: c, target: tests.stages.square, depends_on: [b]}"))
    assert error.field == "depends_on"
    assert "cycle a -> b -> c -> a" in str(error)


def test_a_target_whose_module_fails_to_import_says_why(tmp_path):
    (tmp_path / "brokenmod.py").write_text("raise RuntimeError('missing credentials')\n")
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        error = load_error(tmp_path, workflow_yaml("- {name: a, target: brokenmod.func}"))
    finally:
        sys.path.remove(str(tmp_path))
    assert "importing module 'brokenmod' failed: RuntimeError: missing credentials" in str(error)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kind: workflow\nmetadata: {name: x}\nspec: {stages: []}", "workflow/x: spec.stages: List should have at least 1 item"),
        ("kind: pipeline\nmetadata: {name: x}\nspec: {}", "resource/x: kind: unknown kind 'pipeline' (known: workflow, config, trigger_rule)"),
        ("metadata: {name: x}\nspec: {}", "resource/x: kind: missing field 'kind'"),
        ("kind: workflow\nspec: {stages: [{name: a, target: tests.stages.noop}]}", "workflow/?: metadata: required field is missing"),
        ("kind: workflow\nmetadata: {name: 'a/b'}\nspec: {stages: [{name: a, target: tests.stages.noop}]}",
         "metadata.name: String should match pattern"),
        (f"kind: workflow\nmetadata: {{name: {'w' * 200_000}}}\nspec: {{stages: [{{name: a, target: tests.stages.noop}}]}}",
         "metadata.name: String should have at most 128 characters"),
        ("version: v9\nkind: config\nmetadata: {name: c}\nspec: {data: {}}", "config/c: version: unsupported version 'v9'"),
        ("kind: config\nmetadata: {name: c}\nspec: {selector: {type: annotation, value: x}, data: {}}",
         "config/c: spec.selector: an annotation selector needs value: {key: value}"),
        ("kind: config\nmetadata: {name: c}\nspec: {selector: {type: name, value: w}}", "config/c: spec.data: required field is missing"),
        ("kind: trigger_rule\nmetadata: {name: t}\nspec: {type: schedule, rule: ['61 * * * *'], action: {target: run_workflow, parameters: {workflow: w}}}",
         "trigger_rule/t: spec.rule: malformed cron '61 * * * *'"),
        ("kind: trigger_rule\nmetadata: {name: t}\nspec: {type: schedule, rule: ['* * *'], action: {target: run_workflow, parameters: {workflow: w}}}",
         "malformed cron '* * *' (expected 5 fields, or 6 with seconds last)"),
        ("kind: trigger_rule\nmetadata: {name: t}\nspec: {type: schedule, rule: ['* * * * *'], timezone: Mars/Olympus, action: {target: run_workflow, parameters: {workflow: w}}}",
         "timezone: unknown time zone 'Mars/Olympus'"),
        ("kind: trigger_rule\nmetadata: {name: t}\nspec: {type: condition, rule: {equals: [1, 1]}, action: {target: run_workflow, parameters: {workflow: w}}}",
         "trigger_rule/t: spec.rule: unknown operator 'equals'"),
        ("kind: trigger_rule\nmetadata: {name: t}\nspec: {type: condition, rule: {and: [{eq: [1]}]}, action: {target: run_workflow, parameters: {workflow: w}}}",
         "rule.and[0].eq: expects 2 operands, got 1"),
        ("kind: trigger_rule\nmetadata: {name: t}\nspec: {type: condition, rule: {eq: [1, 1]}, action: {target: run_workflow}}",
         "trigger_rule/t: spec.action: run_workflow needs parameters.workflow"),
        ("kind: trigger_rule\nmetadata: {name: t}\nspec: {type: condition, rule: {eq: [1, 1]}, action: {target: explode}}",
         "spec.action.target: unknown action 'explode' (use "),
        ("kind: workflow\nmetadata: {name: x\nspec: {}", "line 3: invalid YAML"),
        ("- 1\n- 2", "expected a mapping with kind, metadata and spec, got int"),
        ("", "no resources in this file"),
    ],
)
def test_invalid_documents_are_rejected_with_one_clear_line(tmp_path, text, expected):
    assert expected in str(load_error(tmp_path, text))


def test_one_bad_document_rejects_the_whole_file_and_nothing_is_applied(tmp_path):
    catalog = MemoryCatalog()
    text = workflow_yaml("- {name: a, target: tests.stages.noop}", "good") + "\n---\n" + workflow_yaml(
        "- {name: a, target: tests.stages.square, depends_on: [missing]}", "bad")
    with pytest.raises(ResourceError, match="workflow/bad: stage 'a': depends_on"):
        catalog.apply(load(write(tmp_path, text)))
    assert catalog.list("workflow") == []


def test_the_same_resource_twice_in_one_apply_is_rejected(tmp_path):
    text = workflow_yaml("- {name: a, target: tests.stages.noop}", "twin") * 1 + "\n---\n" + workflow_yaml(
        "- {name: b, target: tests.stages.noop}", "twin")
    assert "workflow/twin: metadata.name: defined more than once" in str(load_error(tmp_path, text))


def test_missing_and_unreadable_files_are_clear_errors(tmp_path):
    with pytest.raises(ResourceError, match="no such file or folder"):
        load(tmp_path / "nope.yaml")
    with pytest.raises(ResourceError, match="no .yaml, .yml or .json files in this folder"):
        load(tmp_path)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00kind")
    with pytest.raises(ResourceError, match="binary.yaml: cannot read file"):
        load(binary)


def test_resource_errors_survive_pickling():
    error = ResourceError("unknown stage 'x'", file="f.yaml", kind="workflow", resource="wf", stage="a", field="depends_on")
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) == "f.yaml: workflow/wf: stage 'a': depends_on: unknown stage 'x'"


@pytest.mark.parametrize(("size", "expected"), [
    ("8GB", 8 * 10**9), ("1GiB", 2**30), ("100M", 10**8), ("512", 512), (1024, 1024), ("1.5 kib", 1536), ("2tb", 2 * 10**12)])
def test_sizes_are_parsed_in_decimal_and_binary_units(size, expected):
    assert parse_bytes(size) == expected


def test_loads_and_load_agree_and_validated_workflows_run():
    (workflow,) = loads(workflow_yaml("- {name: n, target: tests.stages.numbers}\n"
                                      "- {name: s, target: tests.stages.total, depends_on: [n]}"))
    assert flowdapt.run_workflow(workflow, {"n": 5}).result == 10


def test_a_workflow_object_edited_between_runs_is_validated_again():
    (workflow,) = loads(workflow_yaml("- {name: n, target: tests.stages.numbers}\n"
                                      "- {name: s, target: tests.stages.total, depends_on: [n]}"))
    assert flowdapt.run_workflow(workflow, {"n": 5}).result == 10
    workflow.spec.stages[1].depends_on.append("gone")
    with pytest.raises(ResourceError, match="stage 's': depends_on: unknown stage 'gone'"):
        flowdapt.run_workflow(workflow, {"n": 5})
    workflow.spec.stages[1].depends_on.pop()
    workflow.spec.stages[1].target = "tests.stages.missing"
    with pytest.raises(ResourceError, match="stage 's': target: module 'tests.stages' has no attribute 'missing'"):
        flowdapt.run_workflow(workflow, {"n": 5})
    workflow.spec.stages[1] = workflow.spec.stages[1].model_copy(update={"target": "tests.stages.first"})
    assert flowdapt.run_workflow(workflow, {"n": 5}).result == 0  # the new stage object runs, not the old one
    assert workflow_graph(workflow) is workflow_graph(workflow)  # unchanged: validated once


def test_a_dict_definition_edited_between_runs_runs_as_edited():
    from flowdapt.compute.api import resolve_workflow

    definition = {"metadata": {"name": "d"}, "spec": {"stages": [
        {"name": "n", "target": "tests.stages.numbers"},
        {"name": "s", "target": "tests.stages.total", "depends_on": ["n"]}]}}
    assert flowdapt.run_workflow(definition, {"n": 5}).result == 10
    assert resolve_workflow(definition) is resolve_workflow(definition)  # unchanged: parsed once
    definition["spec"]["stages"][1]["target"] = "tests.stages.first"  # edited in place, nested
    assert flowdapt.run_workflow(definition, {"n": 5}).result == 0
    definition["spec"]["stages"][1]["depends_on"].append("gone")
    with pytest.raises(ResourceError, match="stage 's': depends_on: unknown stage 'gone'"):
        flowdapt.run_workflow(definition, {"n": 5})
    definition["spec"]["stages"][1]["depends_on"].pop()
    assert flowdapt.run_workflow(definition, {"n": 5}).result == 0


def test_workflows_are_found_by_name_or_uid_in_the_catalog():
    from flowdapt.resources.catalog import get_catalog

    (workflow,) = loads(workflow_yaml("- {name: n, target: tests.stages.numbers}", "named"))
    [(stored, status)] = get_catalog().apply([workflow])
    assert status == "created"
    assert flowdapt.run_workflow("named", {"n": 2}).result == [0, 1]
    assert flowdapt.run_workflow(stored.uid, {"n": 1}).result == [0]
    assert get_catalog().apply([workflow])[0][1] == "unchanged"
    with pytest.raises(flowdapt.errors.ResourceNotFoundError, match="workflow 'nope' not found"):
        flowdapt.run_workflow("nope")
