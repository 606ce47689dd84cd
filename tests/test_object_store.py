"""The object store (SPEC §4): cluster memory with an artifact fallback, namespaces, any picklable object."""

from __future__ import annotations

import multiprocessing
import os
import stat

import numpy as np
import pytest

import flowdapt
from flowdapt.compute import object_store
from flowdapt.compute.object_store import MemoryServer, SocketMemory, register_cluster_memory
from flowdapt.compute.executors.local import LocalExecutor


def test_put_get_exists_delete_by_namespace():
    object_store.put("model", {"a": 1}, namespace="one")
    assert object_store.get("model", namespace="one") == {"a": 1}
    assert object_store.exists("model", namespace="one")
    assert not object_store.exists("model", namespace="two")
    object_store.delete("model", namespace="one")
    assert not object_store.exists("model", namespace="one")


def test_a_missing_key_raises_key_error_naming_key_and_namespace():
    with pytest.raises(KeyError, match="object 'ghost' not found in namespace 'default'"):
        object_store.get("ghost")
    with pytest.raises(KeyError, match="object 'ghost' not found in namespace 'ns'"):
        object_store.delete("ghost", namespace="ns")


def test_any_picklable_object_round_trips_including_closures_and_arrays():
    offset = 3
    object_store.put("fn", lambda x: x + offset, strategy="artifact")
    assert object_store.get("fn", strategy="artifact")(1) == 4
    array = np.arange(1_000_000, dtype=np.float64)
    object_store.put("array", array)
    assert object_store.get("array") is array  # same process: no copy at all
    object_store.put("array", array, strategy="artifact")
    assert np.array_equal(object_store.get("array", strategy="artifact"), array)


def test_artifacts_are_files_under_the_app_dir(flowdapt_app_dir):
    object_store.put("report", [1, 2], namespace="team", strategy="artifact")
    assert (flowdapt_app_dir / "artifacts" / "team" / "report").is_file()
    assert object_store.get("report", namespace="team") == [1, 2]  # fallback finds the artifact


def test_keys_can_never_escape_the_artifact_root(flowdapt_app_dir):
    object_store.put("../../escape", "x", namespace="..", strategy="artifact")
    written = [p for p in flowdapt_app_dir.rglob("*") if p.is_file()]
    assert len(written) == 1 and (flowdapt_app_dir / "artifacts") in written[0].parents
    assert object_store.get("../../escape", namespace="..") == "x"


def test_when_cluster_memory_is_unreachable_objects_fall_back_to_artifacts(tmp_path, flowdapt_app_dir):
    # A real fault: the cluster memory's socket does not exist.
    register_cluster_memory("local", SocketMemory(str(tmp_path / "gone.sock")))
    try:
        object_store.put("model", 42)
        assert object_store.get("model") == 42
        assert object_store.exists("model")
        with pytest.raises(OSError):
            object_store.put("model", 1, strategy="cluster_memory")
    finally:
        register_cluster_memory("local", None)
    assert list((flowdapt_app_dir / "artifacts" / "default").iterdir())[0].name == "model"


def test_delete_removes_both_the_memory_and_the_artifact_copy():
    object_store.put("both", 1, strategy="artifact")
    object_store.put("both", 1, strategy="cluster_memory")
    object_store.delete("both")
    assert not object_store.exists("both")


def test_inside_a_stage_the_namespace_defaults_to_the_runs():
    definition = {"metadata": {"name": "w"}, "spec": {"stages": [{"name": "p", "target": "tests.stages.put_model"}]}}
    flowdapt.run_workflow(definition, namespace="experiment-7")
    assert object_store.get("model", namespace="experiment-7") == {"weights": [1, 2, 3]}


def _child_put(path: str) -> None:
    SocketMemory(path).put("from-child", os.getpid(), "default")


def test_process_workers_share_the_drivers_cluster_memory(tmp_path):
    server = MemoryServer(object_store.local_memory())
    try:
        # It unpickles what reaches it: only this user may reach the socket, whatever the umask.
        assert stat.S_IMODE(os.stat(os.path.dirname(server.path)).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o600
        child = multiprocessing.get_context("spawn").Process(target=_child_put, args=(server.path,))
        child.start()
        child.join(30)
        assert object_store.get("from-child") == child.pid
        with pytest.raises(ValueError, match="Invalid operation: explode"):
            SocketMemory(server.path)._call("explode")
        with pytest.raises(KeyError, match="object 'nothing' not found"):
            SocketMemory(server.path).get("nothing", "default")
    finally:
        server.close()
    assert not os.path.exists(os.path.dirname(server.path))


def test_objects_put_by_process_workers_are_visible_to_thread_runs():
    definition = {"metadata": {"name": "w"}, "spec": {"stages": [{"name": "p", "target": "tests.stages.put_model"}]}}
    with LocalExecutor(mode="processes", cpus=1) as executor:
        assert flowdapt.run_workflow(definition, executor=executor).state == "finished"
    assert object_store.get("model") == {"weights": [1, 2, 3]}
