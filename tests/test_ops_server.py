"""Operating runs through a real Jupyter server: logs (streamed while a run goes on), run again, resume,
backfill, the cache, and notifications to a real local HTTP receiver and a real local SMTP server."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from flowdapt.settings import Settings, get_settings, set_settings
from tests.flowdapt_server import (  # noqa: F401 - fixtures
    error_of,
    eventually,
    jp_flowdapt,
    jp_flowdapt_api,
    jp_server_config,
    trigger_doc,
    workflow_doc,
)

pytest_plugins = ("pytest_jupyter.jupyter_server",)
CHATTY = workflow_doc("chatty", {"name": "make", "target": "tests.ops_stages.chatty"},
                      {"name": "talk", "target": "tests.ops_stages.talk_then_sleep", "depends_on": ["make"]})


async def test_logs_are_served_and_streamed_while_the_run_goes_on(jp_flowdapt_api, jp_fetch):
    api = jp_flowdapt_api
    await api("POST", "workflows", body=CHATTY)
    _, run = await api("POST", "workflows", "chatty", "run", body={"n": 2, "seconds": 1.5}, params={"wait": "false"})
    streamed = await jp_fetch("flowdapt", "api", "v1", "runs", run["uid"], "logs", params={"follow": "true"},
                              request_timeout=30)
    assert streamed.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(text) for text in streamed.body.decode().splitlines()]
    assert [line["seq"] for line in lines] == list(range(len(lines)))
    assert [(line["stage"], line["message"]) for line in lines][-1] == ("talk", "early line")
    assert (await api("GET", "runs", run["uid"]))[1]["state"] == "finished"  # the stream ended with the run
    _, only = await api("GET", "runs", run["name"], "logs", params={"stage": "make", "after": 1})
    assert [line["message"] for line in only] == ["careful: 2 items", "info through the run logger",
                                                 "no newline at the end"]
    code, error = await error_of(api("GET", "runs", "nope", "logs"))
    assert code == 404 and error["detail"] == "workflow_run 'nope' not found"


async def test_a_run_is_run_again_and_a_failed_run_resumed(jp_flowdapt_api, tmp_path):
    api = jp_flowdapt_api
    flag = tmp_path / "flag"
    flag.touch()
    await api("POST", "workflows", body=workflow_doc(
        "resumable", {"name": "prepare", "target": "tests.ops_stages.prepare", "options": {"keep_output": True}},
        {"name": "total", "target": "tests.ops_stages.total_unless_flagged", "depends_on": ["prepare"]}))
    _, failed = await api("POST", "workflows", "resumable", "run", body={"n": 3, "flag": str(flag)})
    assert failed["state"] == "failed"
    code, error = await error_of(api("POST", "runs", failed["uid"], "rerun", params={"executor": "spark"}))
    assert code == 400 and "spark" in error["detail"]
    _, again = await api("POST", "runs", failed["name"], "rerun")
    assert (again["state"], again["rerun_of"], again["input"]) == ("failed", failed["uid"], failed["input"])
    flag.unlink()
    _, resumed = await api("POST", "runs", failed["uid"], "resume")
    assert (resumed["state"], resumed["result"], resumed["resumed_from"]) == ("finished", 3, failed["uid"])
    assert [(stage["name"], stage["state"]) for stage in resumed["stages"]] == [("prepare", "cached"),
                                                                              ("total", "finished")]
    code, error = await error_of(api("POST", "runs", resumed["uid"], "resume"))
    assert code == 409 and "only failed, cancelled or interrupted runs can be resumed" in error["detail"]


async def test_a_run_is_run_again_with_the_version_it_ran_after_the_workflow_changed(jp_flowdapt_api):
    api = jp_flowdapt_api
    await api("POST", "workflows", body=workflow_doc("hello"))
    _, first = await api("POST", "workflows", "hello", "run", body={"name": "v1"})
    await api("PUT", "workflows", "hello", body=workflow_doc("hello", {"name": "n", "target": "tests.stages.numbers"}))
    _, again = await api("POST", "runs", first["uid"], "rerun")
    assert (again["result"], again["workflow_version"]) == ("hello v1", first["workflow_version"])


async def test_a_backfill_runs_each_due_time_once_with_its_logical_time(jp_flowdapt_api):
    api = jp_flowdapt_api
    await api("POST", "workflows", body=workflow_doc("daily", {"name": "when", "target": "tests.ops_stages.logical_time_of"}))
    await api("POST", "triggers", body=trigger_doc("nightly", ["0 3 * * *"], "daily", kind="schedule"))
    body = {"start": "2024-01-01T00:00:00", "end": "2024-01-04T03:00:00", "concurrency": 2, "wait": True}
    _, done = await api("POST", "triggers", "nightly", "backfill", body=body)
    assert done["times"] == [f"2024-01-0{day}T03:00:00+00:00" for day in range(1, 5)] and done["already_fired"] == []
    runs = [(await api("GET", "runs", firing["run_uid"]))[1] for firing in done["fired"]]
    assert sorted((run["result"], run["logical_time"][:19]) for run in runs) == [
        (f"2024-01-0{day}T03:00:00+00:00", f"2024-01-0{day}T03:00:00") for day in range(1, 5)]
    _, again = await api("POST", "triggers", "nightly", "backfill", body={**body, "end": "2024-01-05T03:00:00"})
    assert len(again["already_fired"]) == 4 and [f["scheduled_for"] for f in again["fired"]] == [
        "2024-01-05T03:00:00+00:00"]
    firings = (await api("GET", "triggers", "nightly", "firings"))[1]
    assert len(firings) == 5 and all(firing["backfill"] for firing in firings)
    code, error = await error_of(api("POST", "triggers", "nightly", "backfill", body={"start": "2024-01-02"}))
    assert code == 422 and error["detail"] == "body field 'end': required field is missing"


async def test_the_cache_is_cleared_through_the_api(jp_flowdapt_api, tmp_path):
    api = jp_flowdapt_api
    await api("POST", "workflows", body=workflow_doc(
        "cached", {"name": "expensive", "target": "tests.ops_stages.expensive", "options": {"cache": True}}))
    await api("POST", "workflows", "cached", "run", body={"n": 1})
    _, second = await api("POST", "workflows", "cached", "run", body={"n": 1})
    assert second["stages"][0]["state"] == "cached"
    assert (await api("DELETE", "cache", params={"workflow": "cached"}))[1] == {"deleted": 1}
    _, third = await api("POST", "workflows", "cached", "run", body={"n": 1})
    assert third["stages"][0]["state"] == "finished"


# -- notifications --------------------------------------------------------------------------------------------
class _Receiver(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        length = int(self.headers["Content-Length"])
        self.received.append((self.path, self.headers.get("X-Token"), json.loads(self.rfile.read(length))))
        self.send_response(204 if self.path == "/hook" else 500)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def flowdapt_webhook():
    """A real HTTP server on 127.0.0.1 recording the POSTs it gets (``/hook`` answers 204, others 500)."""
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Receiver.received
    server.shutdown()
    server.server_close()


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
        return "250 OK"


@pytest.fixture
def flowdapt_smtp():
    """A real SMTP server (aiosmtpd) on 127.0.0.1, set as ``notify.smtp`` in the settings."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mailbox = _Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings = get_settings()
    set_settings(Settings(app_dir=settings.app_dir, notify={"smtp": {"host": "127.0.0.1", "port": port,
                                                                     "sender": "flowdapt@example.com"}}))
    yield mailbox.messages
    controller.stop()


async def test_a_failed_run_is_notified_by_webhook_and_email(jp_flowdapt_api, flowdapt_webhook, flowdapt_smtp):
    api = jp_flowdapt_api
    url, received = flowdapt_webhook
    await api("POST", "workflows", body=workflow_doc("flaky", {"name": "boom", "target": "tests.stages.fail"}))
    rule = {"eq": [{"var": "type"}, "com.event.workflow.workflow_failed"]}
    notify = {"kind": "trigger_rule", "metadata": {"name": "tell-ops"}, "spec": {"type": "condition", "rule": rule,
              "action": {"target": "notify", "parameters": {
                  "webhook": {"url": f"{url}/hook", "headers": {"X-Token": "s3cret"}},
                  "email": {"to": ["ops@example.com"]}, "subject": "flowdapt: {data.workflow} {data.state}"}}}}
    await api("POST", "triggers", body=notify)
    _, run = await api("POST", "workflows", "flaky", "run")
    await eventually(lambda: _truthy(received and flowdapt_smtp))
    path, token, body = received[0]
    assert (path, token, body["trigger"]) == ("/hook", "s3cret", "tell-ops")
    assert body["text"] == f"Run {run['name']} of workflow flaky failed: ValueError: stage exploded: bad value 42"
    assert body["event"]["data"]["uid"] == run["uid"]
    recipients, message = flowdapt_smtp[0]
    assert recipients == ["ops@example.com"] and "Subject: flowdapt: flaky failed" in message
    assert "stage exploded: bad value 42" in message and "From: flowdapt@example.com" in message
    firing, = (await api("GET", "triggers", "tell-ops", "firings"))[1]
    assert firing["ok"] and firing["run_uid"] is None


async def test_a_webhook_that_refuses_fails_the_firing_with_its_answer(jp_flowdapt_api, flowdapt_webhook):
    api = jp_flowdapt_api
    url, received = flowdapt_webhook
    doc = {"kind": "trigger_rule", "metadata": {"name": "hook"}, "spec": {
        "type": "condition", "rule": {"eq": [{"var": "type"}, "com.example.ping"]},
        "action": {"target": "notify", "parameters": {"webhook": f"{url}/broken", "message": "rows: {data.rows}"}}}}
    await api("POST", "triggers", body=doc)
    await api("POST", "events", body={"type": "com.example.ping", "data": {"rows": 7}})
    firing = await eventually(lambda: _first_firing(api, "hook"))
    assert not firing["ok"] and firing["error"].startswith(f"RuntimeError: webhook {url}/broken answered 500")
    assert received[0][2]["text"] == "rows: 7"
    bad = {**doc, "metadata": {"name": "bad"}, "spec": {**doc["spec"], "action": {"target": "notify", "parameters": {
        "webhook": "ftp://x"}}}}
    code, error = await error_of(api("POST", "triggers", body=bad))
    assert code == 422 and "notify: webhook 'ftp://x' is not an http(s) URL" in error["detail"]


async def _truthy(value):
    return value


async def _first_firing(api, name):
    firings = (await api("GET", "triggers", name, "firings"))[1]
    return firings[0] if firings else None
