"""Two ``flowdapt serve`` processes on one PostgreSQL database: every schedule time fires exactly once,
neither takes over the other's runs, and when one is killed the other fires its schedules within the
lease time."""

from __future__ import annotations

import signal
import time
from datetime import datetime

import httpx

from tests.history_backends import flowdapt_postgres_server, new_postgres_database  # noqa: F401 - fixture
from tests.test_serve import TOKEN, Server, flowdapt_env  # noqa: F401 - fixture

LEASE = 2.0
RESOURCES = [
    {"kind": "workflow", "metadata": {"name": "nap"}, "spec": {"stages": [{"name": "nap", "target": "tests.stages.sleep_for"}]}},
    {"kind": "trigger_rule", "metadata": {"name": "tick"}, "spec": {
        "type": "schedule", "rule": ["* * * * * *"], "action": {"target": "tests.stages.noop"}}},
]


def _api(server: Server, method: str, path: str, **kwargs) -> httpx.Response:
    response = httpx.request(method, f"{server.url}flowdapt/api/v1/{path}", headers={"Authorization": f"token {TOKEN}"},
                             timeout=30, **kwargs)
    assert response.status_code < 400, response.text
    return response


def test_two_servers_share_schedules_exactly_once_and_one_takes_over_when_the_other_dies(
        tmp_path, flowdapt_env, flowdapt_postgres_server):
    url = new_postgres_database(flowdapt_postgres_server)
    servers = []
    for name in ("a", "b"):
        env = {**flowdapt_env, "FLOWDAPT_APP_DIR": str(tmp_path / name), "FLOWDAPT__DATABASE__URL": url}
        servers.append(Server(env, tmp_path / f"{name}.log", f"--FlowdaptApp.trigger_lease_seconds={LEASE}",
                              "--FlowdaptApp.trigger_refresh_seconds=0.5"))
    first, second = servers
    try:
        _api(first, "POST", "apply", json=RESOURCES)
        run = _api(first, "POST", "workflows/nap/run", params={"wait": "false"}, json={"seconds": 60}).json()
        time.sleep(4)
        # The run is the first server's: the second one sees it running and does not run or claim it.
        assert _api(second, "GET", f"runs/{run['uid']}").json()["state"] == "running"
        assert _api(second, "GET", "status").json()["running"] == 0
        first.stop(signal.SIGKILL)
        killed = time.time()
        time.sleep(LEASE + 3)
        firings = _api(second, "GET", "triggers/tick/firings", params={"limit": 1000}).json()
    finally:
        for server in servers:
            server.stop(signal.SIGTERM)
    times = [firing["scheduled_at"] for firing in firings]
    assert len(times) == len(set(times)), "a schedule time fired twice"
    after = sorted(datetime.fromisoformat(when).timestamp() for when in times if datetime.fromisoformat(when).timestamp() > killed)
    assert after and after[0] - killed <= LEASE + 1.5, "the second server did not take the schedule over in time"
    assert all(later - earlier <= 1.5 for earlier, later in zip(after, after[1:])), after  # then every second
    assert len(times) >= 6
