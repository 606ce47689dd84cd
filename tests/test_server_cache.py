"""The server's in-memory catalog: its own writes are read at once, writes by others within the refresh time."""

from __future__ import annotations

import asyncio
import threading

import pytest

from flowdapt.resources.loading import parse_resource
from flowdapt.resources.models import Resource
from flowdapt.server.cache import CatalogCache
from tests.flowdapt_server import (  # noqa: F401 - fixtures
    eventually,
    jp_flowdapt,
    jp_flowdapt_api,
    jp_server_config,
    workflow_doc,
)

pytest_plugins = ("pytest_jupyter.jupyter_server",)


@pytest.fixture
def short_catalog_refresh(jp_server_config):
    jp_server_config["FlowdaptApp"] = {"catalog_refresh_seconds": 0.2}
    return jp_server_config


async def _names(api) -> list[str]:
    return [item["metadata"]["name"] for item in (await api("GET", "workflows"))[1]]


async def test_writes_through_the_api_are_read_at_once(jp_flowdapt_api):
    api = jp_flowdapt_api
    await api("POST", "workflows", body=workflow_doc("a"))
    assert await _names(api) == ["a"]  # now cached (refreshed every 2 s by default)
    await api("POST", "apply", body=[workflow_doc("b")])
    assert await _names(api) == ["a", "b"]
    changed = workflow_doc("a", {"name": "other", "target": "tests.stages.greet"})
    await api("PUT", "workflows", "a", body=changed)
    assert (await api("GET", "workflows", "a"))[1]["spec"]["stages"][0]["name"] == "other"
    await api("DELETE", "workflows", "b")
    assert await _names(api) == ["a"]


async def test_resources_written_by_another_process_are_seen(short_catalog_refresh, jp_flowdapt_api, jp_flowdapt):
    api = jp_flowdapt_api
    store = jp_flowdapt.web_app.settings["flowdapt_services"].store
    await api("POST", "workflows", body=workflow_doc("mine"))
    assert await _names(api) == ["mine"]
    # Written to the database behind the server's back, as another process sharing it does.
    await asyncio.to_thread(store.apply, [parse_resource(workflow_doc("theirs"))])
    assert (await api("GET", "workflows", "theirs"))[1]["metadata"]["name"] == "theirs"  # a miss asks the database
    assert (await api("POST", "workflows", "theirs", "run", body={"name": "x"}))[1]["state"] == "finished"

    async def listed(expected: list[str]) -> bool:
        return await _names(api) == expected

    await eventually(lambda: listed(["mine", "theirs"]))
    await asyncio.to_thread(store.delete, "workflow", "mine")
    await eventually(lambda: listed(["theirs"]))


class _SlowStore:
    """A store whose listing takes a snapshot, then waits until released."""

    def __init__(self, items: list[Resource]) -> None:
        self.items = items
        self.listing = threading.Event()
        self.release = threading.Event()

    def list(self, kind: str) -> list[Resource]:
        snapshot = list(self.items)
        self.listing.set()
        self.release.wait()
        return snapshot


async def test_a_listing_under_way_when_a_write_lands_is_not_kept():
    first, second = parse_resource(workflow_doc("first")), parse_resource(workflow_doc("second"))
    store = _SlowStore([first])
    cache = CatalogCache(store, ttl=3600)  # type: ignore[arg-type]
    before = asyncio.ensure_future(cache.list("workflow"))
    await asyncio.to_thread(store.listing.wait)
    store.items.append(second)  # the write commits after the listing read the table
    cache.invalidate("workflow")
    store.release.set()
    assert await before == [first]  # the reader that came before the write
    assert await cache.list("workflow") == [first, second]  # the next read lists again
