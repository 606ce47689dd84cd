"""schemathesis over the served OpenAPI document of a real ``flowdapt serve``, every check on: no 5xx, no
answer outside its documented statuses, content types, headers and schemas, schema-invalid requests
refused, schema-valid ones accepted where a schema can say what is valid, nothing deleted still
served (use_after_free), nothing created missing (ensure_resource_availability), nothing served
without the token (ignored_auth), and no error in the server's log behind any answer.

The fuzzer authenticates with the server's token, so it may do what any authorised user may do:
create workflows and triggers, run them, publish events. Its hooks (:mod:`tests.openapi_fuzz_hooks`)
keep that harmless and bounded without changing what a request tests: stage targets become harmless
importables and trigger actions ``run_workflow`` (the server imports and calls what a workflow names:
that is the permission, not a defect), and ``wait``/``follow`` become false and a drain's ``timeout``
at most a second, since a wait lasts as long as the fuzzer's own workflow or run (a reported run it
leaves ``running`` never ends). tests/test_ops_server.py and test_server_api.py cover waiting,
following and draining.

Positive data acceptance is not checked where validity depends on what a schema cannot say (see
:mod:`flowdapt.server.openapi`): resources whose targets must import and whose stages must form a
graph, notebooks that must exist, stage modules named by their source's hash, reported runs and logs
that must match what the server holds, backfills of triggers that must be schedules. Jupyter answers a
request without credentials 403, where schemathesis's missing_required_header wants 401: that check is
off (ignored_auth holds the server to refusing them; test_server_api.py checks every route answers 403).
``max-examples`` and the deterministic mode keep the run bounded (about a minute and a half on two
busy cores) and the same on every machine; the whole report is written to test-artifacts/.
"""

from __future__ import annotations

import json
import re
import subprocess

import httpx
import pytest

from tests.test_serve import BIN, ROOT, TOKEN, Server, flowdapt_env  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(420)

MAX_EXAMPLES = 10
ARTIFACTS = ROOT / "test-artifacts"
NOT_EXPRESSIBLE = ["create_workflow", "replace_workflow", "replace_config", "create_trigger", "replace_trigger",
                   "apply_resources", "record_workflow_version", "create_notebook_workflow", "save_stage_module",
                   "record_run", "record_run_logs", "backfill_trigger", "run_workflow"]
SEED = [
    {"kind": "workflow", "metadata": {"name": "fuzz-hello"},
     "spec": {"stages": [{"name": "hello", "target": "tests.stages.greet"}]}},
    {"kind": "workflow", "metadata": {"name": "fuzz-fail"},
     "spec": {"stages": [{"name": "boom", "target": "tests.stages.fail"}]}},
    {"kind": "config", "metadata": {"name": "fuzz-config"}, "spec": {"data": {"n": 1}}},
    {"kind": "trigger_rule", "metadata": {"name": "fuzz-daily"}, "spec": {
        "type": "schedule", "rule": ["0 3 * * *"],
        "action": {"target": "run_workflow", "parameters": {"workflow": "fuzz-hello", "input": {"name": "fuzz"}}}}},
]


def config(names: dict[str, list[str]]) -> str:
    """The schemathesis configuration: hooks, checks, and the names of what the test made, drawn for half of
    the identifiers of the routes on them (the other half are generated, mostly unknown: 404)."""
    text = ['hooks = "tests.openapi_fuzz_hooks"', "", "[checks]", "enabled = true",
            "missing_required_header.enabled = false", ""]
    for name, values in names.items():
        text += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    text += ["[[operations]]", f"include-operation-id = {json.dumps(NOT_EXPRESSIBLE)}",
             "checks.positive_data_acceptance.enabled = false", ""]
    for name in names:
        text += ["[[operations]]", f'include-path-regex = "^/{name}/[{{]identifier[}}]"',
                 f'parameters = {{ "path.identifier" = {{ dictionary = "{name}", probability = 0.5 }} }}', ""]
    return "\n".join(text)


def seeded(api: str) -> dict[str, list[str]]:
    """Resources and runs for the fuzzer to work on: a workflow that succeeds and one that fails, each run once."""
    headers = {"Authorization": f"token {TOKEN}"}
    assert httpx.post(f"{api}/apply", json=SEED, headers=headers, timeout=30).status_code == 200
    runs = [httpx.post(f"{api}/workflows/{name}/run", json={"name": "fuzz"}, headers=headers, timeout=60).json()["uid"]
            for name in ("fuzz-hello", "fuzz-fail")]
    return {"workflows": ["fuzz-hello", "fuzz-fail"], "configs": ["fuzz-config"], "triggers": ["fuzz-daily"],
            "runs": runs}


def test_the_served_openapi_document_holds_against_the_server(tmp_path, flowdapt_env):
    server = Server(flowdapt_env, tmp_path / "serve.log")
    try:
        api = f"{server.url}flowdapt/api/v1"
        served = httpx.get(f"{api}/openapi.json", headers={"Authorization": f"token {TOKEN}"}, timeout=10).json()
        assert served["servers"] == [{"url": "/flowdapt/api/v1"}]
        (tmp_path / "schemathesis.toml").write_text(config(seeded(api)))
        done = subprocess.run(
            [str(BIN / "st"), "--config-file", str(tmp_path / "schemathesis.toml"), "run", f"{api}/openapi.json",
             "--header", f"Authorization: token {TOKEN}", "--max-examples", str(MAX_EXAMPLES),
             "--generation-deterministic", "--workers", "1",
             "--request-timeout", "20", "--no-color", "--output-truncate", "false"],
            cwd=tmp_path, env={**flowdapt_env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=360)
    finally:
        server.stop(2)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "openapi-fuzz.txt").write_text(done.stdout + done.stderr)  # the whole report, for CI
    report = done.stdout[-20000:] + done.stderr[-3000:]
    assert done.returncode == 0, report
    selected, tested = re.search(r"Selected: (\d+)/(\d+)", done.stdout), re.search(r"Tested: (\d+)", done.stdout)
    assert selected and tested and selected.group(1) == selected.group(2) == tested.group(1), report  # all of them
    log = (tmp_path / "serve.log").read_text(errors="replace")
    # No 5xx but 503 (starting; draining, which the fuzzer may ask for), nor an error behind an answer.
    failures = [line for line in log.splitlines()
                if re.search(r"\] 5(?!03)\d\d (GET|POST|PUT|DELETE) |Traceback|Uncaught exception", line)]
    assert not failures, log[max(0, log.index(failures[0]) - 3000):][:8000]
