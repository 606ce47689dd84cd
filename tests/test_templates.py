"""The example resources in ``templates/``, their stage code and ``python -m flowdapt.demo``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import flowdapt
from flowdapt.compute.executors.local import LocalExecutor
from flowdapt.events.models import RunFinished
from flowdapt.examples.forecast import CITIES_KEY, CityModel, model_key
from flowdapt.resources import Config, TriggerRule, parse_resource
from flowdapt.resources.catalog import get_catalog
from flowdapt.triggers.conditions import evaluate

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"


@pytest.fixture(scope="module", params=["threads", "processes"])
def local_executor(request):
    with LocalExecutor(mode=request.param, cpus=2) as executor:
        yield executor


@pytest.fixture
def applied():
    """Every template applied to the (per-test) catalog."""
    resources = flowdapt.load(TEMPLATES)
    get_catalog().apply(resources)
    return {(resource.kind, resource.name): resource for resource in resources}


@pytest.mark.parametrize("path", sorted(TEMPLATES.glob("*.yaml")), ids=lambda path: path.name)
def test_every_template_file_loads(path):
    assert flowdapt.load(path)


def test_templates_folder_has_the_documented_examples(applied):
    assert {name for kind, name in applied if kind == "workflow"} >= {"hello", "train", "predict"}
    config = applied[("config", "forecast-params")]
    assert isinstance(config, Config) and config.spec.selector.type == "annotation"
    triggers = {name: resource for (kind, name), resource in applied.items() if kind == "trigger_rule"}
    assert {trigger.spec.type for trigger in triggers.values()} == {"schedule", "condition"}
    assert all(isinstance(trigger, TriggerRule) for trigger in triggers.values())


def test_hello_greets_from_the_run_input(local_executor, applied):
    run = flowdapt.run_workflow("hello", {"name": "Ada"}, executor=local_executor)
    assert run.state == "finished", run.error
    assert run.result == {"greeting": "Hello, Ada!", "run": run.name, "workflow": "hello"}


def test_train_stores_one_model_per_city_and_summarises(local_executor, applied):
    run = flowdapt.run_workflow("train", {"cities": 5, "days": 200}, executor=local_executor)
    assert run.state == "finished", run.error
    assert run.stage("train_city").items_total == 5 and run.stage("train_city").items_failed == 0
    cities = flowdapt.object_store.get(CITIES_KEY)
    assert len(cities) == 5
    for city in cities:
        model = flowdapt.object_store.get(model_key(city))
        assert isinstance(model, CityModel) and model.city == city
        assert len(model.forecast(3)) == 3
    summary = run.result
    assert summary["models"] == 5 and summary["best"] in cities and summary["worst"] in cities
    assert 0 < summary["mean_mae"] < 10  # noise sd is 3: a lag model must get close


def test_config_selected_by_annotation_reaches_stages(applied):
    run = flowdapt.run_workflow("train", {"cities": 2}, executor="local")
    assert run.state == "finished", run.error
    assert run.result["parameters"] == {"lags": 14, "alpha": 0.5, "test_days": 28, "horizon": 7}
    assert flowdapt.object_store.get(model_key("amsterdam")).lags == 14


def test_config_selected_by_name_wins_over_annotation(applied):
    get_catalog().apply([parse_resource({"kind": "config", "metadata": {"name": "train-only"}, "spec": {
        "selector": {"type": "name", "value": "train"}, "data": {"lags": 3}}})])
    run = flowdapt.run_workflow("train", {"cities": 2}, executor="local")
    assert run.state == "finished", run.error
    assert run.result["parameters"]["lags"] == 3 and run.result["parameters"]["alpha"] == 0.5
    assert flowdapt.object_store.get(model_key("berlin")).lags == 3


def test_predict_forecasts_every_trained_city(local_executor, applied):
    assert flowdapt.run_workflow("train", {"cities": 3}, executor=local_executor).state == "finished"
    run = flowdapt.run_workflow("predict", {"horizon": 4}, executor=local_executor)
    assert run.state == "finished", run.error
    assert sorted(run.result) == sorted(flowdapt.object_store.get(CITIES_KEY))
    assert all(len(forecast) == 4 for forecast in run.result.values())


def test_predict_before_train_fails_with_a_clear_error(applied):
    run = flowdapt.run_workflow("predict", executor="local")
    assert run.state == "failed"
    assert run.error.type == "LookupError" and run.error.stage == "trained_cities"
    assert "run the 'train' workflow first" in run.error.message


def test_condition_trigger_matches_only_a_finished_train_run(applied):
    rule = applied[("trigger_rule", "predict-after-train")].spec.rule
    failed = flowdapt.run_workflow("train", {"cities": 1, "days": 10}, executor="local")  # too few days
    assert failed.state == "failed"
    assert not evaluate(rule, RunFinished(run=failed).to_dict())
    finished = flowdapt.run_workflow("train", {"cities": 1}, executor="local")
    assert evaluate(rule, RunFinished(run=finished).to_dict())
    other = flowdapt.run_workflow("hello", executor="local")
    assert not evaluate(rule, RunFinished(run=other).to_dict())


def test_demo_runs_the_examples_and_prints_finished_runs(tmp_path):
    env = {**os.environ, "FLOWDAPT_APP_DIR": str(tmp_path / "app")}
    result = subprocess.run([sys.executable, "-m", "flowdapt.demo"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if "│" in line and (" manual " in line or " trigger " in line)]
    assert {row.split("│")[2].strip() for row in rows} == {"hello", "train", "predict"}
    assert all("finished" in row for row in rows)
    assert "trigger predict-after-train matched train finished" in result.stdout
