"""Stage outputs that outlive a run: the result cache and resuming a failed run, on every executor."""

from __future__ import annotations

import time

import pytest

import flowdapt
from flowdapt.compute.outputs import clear_cache
from tests.ops_stages import calls


def _cached_workflow(**options) -> dict:
    return {"metadata": {"name": "cached"}, "spec": {"stages": [
        {"name": "expensive", "target": "tests.ops_stages.expensive", "options": {"cache": True, **options}},
        {"name": "after", "target": "tests.ops_stages.plus_one", "depends_on": ["expensive"]}]}}


def test_a_cached_stage_is_reused_while_its_code_config_and_inputs_are_the_same(executor, tmp_path):
    marker = str(tmp_path / "calls")
    workflow = _cached_workflow()
    first = flowdapt.run_workflow(workflow, {"n": 3, "marker": marker}, executor=executor)
    again = flowdapt.run_workflow(workflow, {"n": 3, "marker": marker}, executor=executor)
    assert (first.result, again.result) == (301, 301)
    assert calls(marker) == ["expensive", "plus_one", "plus_one"]
    assert [(stage.state, stage.cached_from) for stage in again.stages] == [
        ("cached", f"cache:{first.uid}/expensive"), ("finished", None)]
    other = flowdapt.run_workflow(workflow, {"n": 4, "marker": marker}, executor=executor)
    configured = flowdapt.run_workflow(workflow, {"n": 3, "marker": marker}, executor=executor, config={"x": 1})
    assert (other.stage("expensive").state, configured.stage("expensive").state) == ("finished", "finished")
    assert calls(marker).count("expensive") == 3


def test_each_item_of_a_parameterized_stage_is_cached(executor, tmp_path):
    marker = str(tmp_path / "calls")
    workflow = {"metadata": {"name": "items"}, "spec": {"stages": [
        {"name": "prepare", "target": "tests.ops_stages.prepare"},
        {"name": "double", "target": "tests.ops_stages.double_item", "type": "parameterized",
         "depends_on": ["prepare"], "options": {"cache": True}}]}}
    flowdapt.run_workflow(workflow, {"n": 3, "marker": marker}, executor=executor)
    grown = flowdapt.run_workflow(workflow, {"n": 4, "marker": marker}, executor=executor)
    assert grown.result == [0, 2, 4, 6] and grown.stage("double").state == "finished"
    again = flowdapt.run_workflow(workflow, {"n": 4, "marker": marker}, executor=executor)
    assert again.result == [0, 2, 4, 6] and again.stage("double").state == "cached"
    assert sorted(call for call in calls(marker) if call.startswith("double")) == [
        "double-0", "double-1", "double-2", "double-3"]


def test_the_cache_key_function_the_ttl_and_clearing_decide_what_is_reused(tmp_path):
    marker = str(tmp_path / "calls")
    keyed = _cached_workflow(cache_key="tests.ops_stages.key_by_n")
    flowdapt.run_workflow(keyed, {"n": 3, "marker": marker, "flag": "a"})
    assert flowdapt.run_workflow(keyed, {"n": 3, "marker": marker, "flag": "b"}).stage("expensive").state == "cached"
    brief = _cached_workflow(cache_ttl=1)
    flowdapt.run_workflow(brief, {"n": 5, "marker": marker})
    time.sleep(1.1)
    assert flowdapt.run_workflow(brief, {"n": 5, "marker": marker}).stage("expensive").state == "finished"
    assert clear_cache("cached", "expensive") >= 2 and clear_cache("cached") == 0
    assert flowdapt.run_workflow(keyed, {"n": 3, "marker": marker}).stage("expensive").state == "finished"


def _resumable(keep) -> dict:
    return {"metadata": {"name": "resumable"}, "spec": {"stages": [
        {"name": "prepare", "target": "tests.ops_stages.prepare", "options": {"keep_output": keep}},
        {"name": "square", "target": "tests.ops_stages.square_unless_flagged", "type": "parameterized",
         "depends_on": ["prepare"], "options": {"keep_output": keep}},
        {"name": "total", "target": "tests.ops_stages.total_unless_flagged", "depends_on": ["square"]}]}}


def test_a_failed_run_resumes_reusing_kept_outputs_and_running_failed_stages_and_items_again(executor, tmp_path):
    marker, flag = str(tmp_path / "calls"), tmp_path / "flag"
    flag.touch()
    workflow = _resumable(True)
    failed = flowdapt.run_workflow(workflow, {"n": 4, "marker": marker, "flag": str(flag)}, executor=executor)
    assert failed.state == "failed" and failed.error.stage == "total"
    assert [failure.index for failure in failed.stage("square").item_failures] == [1, 3]
    flag.unlink()
    open(marker, "w").close()
    resumed = flowdapt.run_workflow(workflow, failed.input, executor=executor, resume=failed)
    assert resumed.state == "finished", resumed.error
    assert resumed.result == 0 + 1 + 4 + 9 and resumed.resumed_from == failed.uid
    assert sorted(calls(marker)) == ["square-1", "square-3", "total"]  # prepare and items 0, 2 were reused
    assert [(stage.name, stage.state) for stage in resumed.stages] == [
        ("prepare", "cached"), ("square", "finished"), ("total", "finished")]
    assert resumed.stage("prepare").cached_from == f"run:{failed.uid}"


def test_outputs_not_kept_are_computed_again_where_needed(tmp_path):
    marker, flag = str(tmp_path / "calls"), tmp_path / "flag"
    flag.touch()
    workflow = _resumable(False)
    failed = flowdapt.run_workflow(workflow, {"n": 2, "marker": marker, "flag": str(flag)})
    flag.unlink()
    open(marker, "w").close()
    resumed = flowdapt.run_workflow(workflow, failed.input, resume=failed)
    assert resumed.result == 1 and sorted(calls(marker)) == ["prepare", "square-0", "square-1", "total"]
    assert [stage.state for stage in resumed.stages] == ["finished", "finished", "finished"]


def test_outputs_kept_in_memory_are_reused_while_the_process_holds_them(tmp_path):
    marker, flag = str(tmp_path / "calls"), tmp_path / "flag"
    flag.touch()
    workflow = _resumable("memory")
    failed = flowdapt.run_workflow(workflow, {"n": 2, "marker": marker, "flag": str(flag)})
    flag.unlink()
    open(marker, "w").close()
    resumed = flowdapt.run_workflow(workflow, failed.input, resume=failed)
    assert resumed.result == 1 and sorted(calls(marker)) == ["square-1", "total"]


def test_bad_cache_options_are_refused_when_applied():
    from flowdapt.errors import ResourceError
    from flowdapt.resources.loading import parse_resource

    for options, message in (({"cache_ttl": "soon"}, "invalid duration 'soon'"),
                             ({"cache_key": "nokey"}, "'nokey' is not an import path"),
                             ({"keep_output": "disk"}, "keep_output")):
        with pytest.raises(ResourceError, match=message):
            parse_resource({"kind": "workflow", **_cached_workflow(**options)})
