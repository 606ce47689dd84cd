"""The process-wide state lives in one object that a block (a test) can replace and get back."""

import pytest

from flowdapt import process
from flowdapt.compute import object_store
from flowdapt.compute.executors import shared_executor
from flowdapt.errors import ResourceNotFoundError
from flowdapt.resources import catalog
from flowdapt.resources.loading import parse_resource
from flowdapt.settings import Settings, get_settings


def test_a_state_put_in_force_has_its_own_settings_catalog_and_memory_and_the_previous_one_comes_back(tmp_path):
    definition = {"kind": "workflow", "metadata": {"name": "w"},
                  "spec": {"stages": [{"name": "s", "target": "tests.stages.numbers"}]}}
    outer_settings = get_settings()
    catalog.get_catalog().apply([parse_resource(definition)])
    object_store.put("k", "outer")
    executor = shared_executor("local", mode="threads", cpus=1)
    inner = process.current().fresh(settings=Settings(app_dir=tmp_path / "inner"))
    with process.use(inner):
        assert get_settings().app_dir == tmp_path / "inner"
        with pytest.raises(ResourceNotFoundError):
            catalog.get_workflow("w")
        with pytest.raises(KeyError):
            object_store.get("k", strategy="cluster_memory")
        object_store.put("k", "inner")
        assert shared_executor("local", mode="threads", cpus=1) is executor  # executors are kept
    assert get_settings() is outer_settings
    assert catalog.get_workflow("w").metadata.name == "w"
    assert object_store.get("k") == "outer"
    assert inner.local_memory.get("k", "default") == "inner"
