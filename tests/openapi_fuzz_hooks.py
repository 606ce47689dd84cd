"""schemathesis hooks of tests/test_openapi_fuzz.py: what the fuzzer sends stays harmless and bounded.

Each hook changes a generated request only from one valid value to another, never the part a
negative case is about (a value of the wrong type is left alone): stage targets become harmless
importables, trigger actions ``run_workflow``, and a request never waits on a run, a backfill, a log
stream or a drain for longer than a second (the fuzzer's own workflows and reported runs can last
for ever: a reported run it leaves ``running`` never ends).
"""

from __future__ import annotations

from typing import Any

import schemathesis

HARMLESS_TARGETS = ("tests.stages.greet", "tests.stages.add", "tests.stages.noop", "tests.stages.kwargs_echo")


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    query = case.query if isinstance(case.query, dict) else {}
    for flag in ("wait", "follow"):
        if query.get(flag) is True or query.get(flag) == "true":
            query[flag] = "false"
    timeout = query.get("timeout")
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 1:
        query["timeout"] = 1
    body = case.body
    if case.path.endswith("/backfill") and isinstance(body, dict) and body.get("wait") is True:
        body["wait"] = False
    for document in body if isinstance(body, list) else [body]:
        _harmless(document)


def _harmless(document: Any) -> None:
    """Point a resource document's stage targets and trigger action at harmless importables."""
    spec = document.get("spec") if isinstance(document, dict) else None
    if not isinstance(spec, dict):
        return
    stages = spec.get("stages")
    for index, stage in enumerate(stages if isinstance(stages, list) else []):
        if isinstance(stage, dict) and isinstance(stage.get("target"), str):
            stage["target"] = HARMLESS_TARGETS[index % len(HARMLESS_TARGETS)]
    action = spec.get("action")
    if isinstance(action, dict) and isinstance(action.get("target"), str):
        action["target"] = "run_workflow"
