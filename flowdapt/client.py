"""``flowdapt.Client``: the REST API of a flowdapt server from Python (httpx, synchronous).

The server is found from the arguments, else ``FLOWDAPT_URL`` / ``FLOWDAPT_TOKEN`` (set in the
kernels a server starts), else the runtime file ``server.json`` the server writes in the app dir.
``FLOWDAPT_URL`` is the Jupyter server's root URL with its base URL; the client appends
``flowdapt/api/v1/``. Errors answered by the server raise :class:`ServerError` with its ``detail``,
except a resource or run that does not exist, which raises :class:`ResourceNotFoundError` as the
embedded store does. :class:`ServerCatalog` lets the engine look names up on a server.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator
from urllib.parse import quote

import httpx

from flowdapt.errors import FlowdaptError, ResourceNotFoundError
from flowdapt.resources.models import RESOURCE_KINDS, Resource, WorkflowRun

if TYPE_CHECKING:
    from flowdapt.history.models import LogLine
    from flowdapt.plugins import Plugin

API_PATH = "flowdapt/api/v1/"
COLLECTIONS = {"workflow": "workflows", "config": "configs", "trigger_rule": "triggers"}


class ServerError(FlowdaptError):
    """The server answered with an error status; ``detail`` is its one-line message."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(status_code, detail)
        self.status_code = status_code
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


class ServerNotFoundError(FlowdaptError):
    """No server URL was given and none is running for this app dir."""


def find_server(url: str | None = None, token: str | None = None,
                app_dir: str | Path | None = None) -> tuple[str, str] | None:
    """``(url, token)`` of the server to talk to: the arguments, the environment, then the runtime file."""
    from flowdapt.server.runtime import read_runtime_file
    from flowdapt.settings import get_settings

    url = url or os.environ.get("FLOWDAPT_URL") or None
    token = token if token is not None else os.environ.get("FLOWDAPT_TOKEN")
    info = read_runtime_file(app_dir or get_settings().app_dir)
    if url is None:
        if info is None:
            return None
        url = info["url"]
    if token is None and info is not None and info["url"].rstrip("/") == url.rstrip("/"):
        token = info.get("token")
    return url, token or ""


class Client:
    """Talks to a flowdapt server.

    Parameters
    ----------
    url : the Jupyter server's root URL (with its base URL); default from the environment or runtime file
    token : the Jupyter token; default ``FLOWDAPT_TOKEN`` or the runtime file's
    timeout : seconds per request (runs waited for have no limit)
    app_dir : where to look for the runtime file (default: the configured app dir)
    """

    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 30.0,
                 app_dir: str | Path | None = None) -> None:
        found = find_server(url, token, app_dir)
        if found is None:
            raise ServerNotFoundError("no flowdapt server: pass url=, set FLOWDAPT_URL, or start `flowdapt serve`")
        self.url, token = found
        headers = {"Authorization": f"token {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url.rstrip("/") + "/" + API_PATH, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _call(self, method: str, path: str, *, missing: tuple[str, str] | None = None, **kwargs: Any) -> Any:
        """The JSON answer; ``missing`` = (kind, identifier) turns a 404 into :class:`ResourceNotFoundError`."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServerError(503, f"cannot talk to the server at {self.url}: {exc}") from None
        if response.is_error:
            self._raise(response, missing)
        return response.json()

    @staticmethod
    def _raise(response: httpx.Response, missing: tuple[str, str] | None) -> None:
        if response.status_code == 404 and missing is not None:
            raise ResourceNotFoundError(*missing)
        try:
            detail = response.json()["detail"]
        except (ValueError, KeyError, TypeError):
            detail = f"{response.status_code} {response.reason_phrase} from {response.request.url}"
        raise ServerError(response.status_code, detail)

    # -- resources -----------------------------------------------------------------------------------------
    def list(self, kind: str, *, limit: int = 10_000, offset: int = 0) -> list[Resource]:
        """Resources of ``kind`` (``workflow``, ``config``, ``trigger_rule``) by name."""
        items = self._call("GET", _collection(kind), params={"limit": limit, "offset": offset})
        return [_resource(kind, item) for item in items]

    def get(self, kind: str, identifier: str) -> Resource:
        """One resource by name or uid; :class:`ResourceNotFoundError` if there is none."""
        return _resource(kind, self._call("GET", f"{_collection(kind)}/{_part(identifier)}", missing=(kind, identifier)))

    def create(self, resource: Resource | dict) -> Resource:
        document = _document(resource)
        return _resource(document["kind"], self._call("POST", _collection(document["kind"]), json=document))

    def delete(self, kind: str, identifier: str) -> Resource:
        return _resource(kind, self._call("DELETE", f"{_collection(kind)}/{_part(identifier)}",
                                          missing=(kind, identifier)))

    def apply(self, resources: Iterable[Resource | dict]) -> list[tuple[Resource, str]]:
        """Create or update resources of any kinds, all or nothing; (resource, created|updated|unchanged)."""
        outcome = self._call("POST", "apply", json=[_document(item) for item in resources])
        return [(_resource(item["resource"]["kind"], item["resource"]), item["outcome"]) for item in outcome]

    def set_trigger_enabled(self, identifier: str, enabled: bool) -> Resource:
        switch = "enable" if enabled else "disable"
        return _resource("trigger_rule", self._call("POST", f"triggers/{_part(identifier)}/{switch}",
                                                    missing=("trigger_rule", identifier)))

    def trigger_status(self, identifier: str) -> dict[str, Any]:
        """``enabled``, ``last_fire_time``, ``next_fire_time`` of a trigger."""
        return self._call("GET", f"triggers/{_part(identifier)}", missing=("trigger_rule", identifier))["status"]

    def trigger_firings(self, identifier: str, *, limit: int = 50) -> list[dict[str, Any]]:
        return self._call("GET", f"triggers/{_part(identifier)}/firings", params={"limit": limit},
                          missing=("trigger_rule", identifier))

    def save_stage_module(self, module: str, source: str) -> dict[str, Any]:
        """Store a ``%%flowdapt stage`` cell's module on the server, where its executors import it."""
        return self._call("PUT", f"stage-modules/{_part(module)}", json={"source": source})

    # -- runs ----------------------------------------------------------------------------------------------
    def run(self, workflow: str, input: dict[str, Any] | None = None, *, wait: bool = True,
            namespace: str | None = None, executor: str | None = None, source: str | None = None) -> WorkflowRun:
        """Run a workflow on the server; with ``wait``, return once it has ended.

        ``source`` (``api`` by default, ``manual`` or ``notebook``) is recorded on the run.
        """
        params = {"wait": str(wait).lower(), **{k: v for k, v in (("namespace", namespace),
                                                                  ("executor", executor), ("source", source)) if v}}
        return WorkflowRun.model_validate(self._call("POST", f"workflows/{_part(workflow)}/run", json=input or {},
                                                     params=params, missing=("workflow", workflow),
                                                     timeout=None if wait else httpx.USE_CLIENT_DEFAULT))

    def get_run(self, identifier: str) -> WorkflowRun:
        return WorkflowRun.model_validate(self._call("GET", f"runs/{_part(identifier)}",
                                                     missing=("workflow_run", identifier)))

    def list_runs(self, **filters: Any) -> list[WorkflowRun]:
        """Runs newest first; filters ``workflow state source since until limit offset``; ``stages=True``
        includes each run's stages."""
        return [WorkflowRun.model_validate(item) for item in self._call("GET", "runs", params=_params(filters))]

    def record_run(self, run: WorkflowRun) -> None:
        """Record in the server's history a run this process runs itself."""
        self._call("PUT", f"runs/{_part(run.uid)}", json=run.to_document())

    def cancel(self, identifier: str) -> WorkflowRun:
        return WorkflowRun.model_validate(self._call("POST", f"runs/{_part(identifier)}/cancel",
                                                     missing=("workflow_run", identifier)))

    def stages(self, identifier: str) -> list[dict[str, Any]]:
        return self._call("GET", f"runs/{_part(identifier)}/stages", missing=("workflow_run", identifier))

    # -- operating runs: logs, runs again, resumed runs, backfills, the cache ------------------------------
    def logs(self, identifier: str, *, stage: str | None = None, attempt: int | None = None, after: int = -1,
             limit: int = 10_000, follow: bool = False) -> "list[LogLine] | Iterator[LogLine]":
        """What a run's stages printed and logged (:class:`~flowdapt.history.models.LogLine`, numbered
        ``seq``), those after line ``after``; with ``follow`` an iterator of the lines as they come, which
        ends once the run has ended."""
        from flowdapt.history.models import LogLine

        params = _params({"stage": stage, "attempt": attempt, "after": after, "limit": limit})
        path = f"runs/{_part(identifier)}/logs"
        if not follow:
            lines = self._call("GET", path, params=params, missing=("workflow_run", identifier))
            return [LogLine.model_validate(line) for line in lines]
        return self._follow_logs(path, params, identifier)

    def _follow_logs(self, path: str, params: dict[str, Any], identifier: str) -> "Iterator[LogLine]":
        from flowdapt.history.models import LogLine

        try:
            with self._http.stream("GET", path, params={**params, "follow": "true"}, timeout=None) as response:
                if response.is_error:
                    response.read()
                    self._raise(response, ("workflow_run", identifier))
                for text in response.iter_lines():
                    if text:
                        yield LogLine.model_validate_json(text)
        except httpx.HTTPError as exc:
            raise ServerError(503, f"cannot talk to the server at {self.url}: {exc}") from None

    def record_logs(self, uid: str, lines: list[Any]) -> None:
        """Record in the server's history lines a run this process runs printed."""
        self._call("POST", f"runs/{_part(uid)}/logs", json=[line.model_dump(mode="json") for line in lines])

    def record_workflow_version(self, version: str, document: dict[str, Any]) -> None:
        """Record the workflow version a run this process runs ran (so the server can run it again)."""
        self._call("PUT", f"workflow-versions/{_part(version)}", json=document)

    def rerun(self, identifier: str, *, wait: bool = True, executor: str | None = None,
              source: str | None = None) -> WorkflowRun:
        """Run a run's workflow version again with its input; the new run records ``rerun_of``."""
        return self._again("rerun", identifier, wait, executor, source)

    def resume(self, identifier: str, *, wait: bool = True, executor: str | None = None,
               source: str | None = None) -> WorkflowRun:
        """Resume a failed or cancelled run (stages it finished reused where their outputs were kept)."""
        return self._again("resume", identifier, wait, executor, source)

    def _again(self, operation: str, identifier: str, wait: bool, executor: str | None,
               source: str | None) -> WorkflowRun:
        params = _params({"wait": str(wait).lower(), "executor": executor, "source": source})
        return WorkflowRun.model_validate(self._call("POST", f"runs/{_part(identifier)}/{operation}", params=params,
                                                     missing=("workflow_run", identifier),
                                                     timeout=None if wait else httpx.USE_CLIENT_DEFAULT))

    def backfill(self, trigger: str, start: Any, end: Any, *, concurrency: int = 4, wait: bool = False) -> dict[str, Any]:
        """Fire a schedule trigger's action for each due time in ``[start, end]`` that has not fired yet;
        answers the backfill (its times, those that had fired, what each firing started)."""
        body = {"start": _iso(start), "end": _iso(end), "concurrency": concurrency, "wait": wait}
        return self._call("POST", f"triggers/{_part(trigger)}/backfill", json=body, missing=("trigger_rule", trigger),
                          timeout=None if wait else httpx.USE_CLIENT_DEFAULT)

    def clear_cache(self, workflow: str | None = None, stage: str | None = None) -> int:
        """Delete result-cache entries (of a workflow, one of its stages, or all); returns how many."""
        return self._call("DELETE", "cache", params=_params({"workflow": workflow, "stage": stage}))["deleted"]

    # -- run-history statistics (the dashboard's data) ---------------------------------------------------
    def stats(self, view: str, **params: Any) -> Any:
        """One run-history statistic, aggregated by the server's database (``GET stats/{view}``).

        ``view`` is one of :data:`flowdapt.history.stats.VIEWS`: ``timeline`` (``bucket=hour|day``),
        ``summary``, ``workflows``, ``daily``, ``errors`` and ``items`` (``limit``), ``active``, ``stages``,
        ``triggers`` (``trigger``, ``late_after``, ``limit``), ``version``. Filters: ``workflow``,
        ``state``, ``source``, ``since``, ``until``. Answers the view's models (``RunSummary``, lists of
        ``RunBucket``, ...).
        """
        from flowdapt.history.stats import VIEWS

        if view not in VIEWS:
            raise FlowdaptError(f"unknown statistic '{view}' (known: {', '.join(VIEWS)})")
        return VIEWS[view].adapter.validate_python(self._call("GET", f"stats/{view}", params=_params(params)))

    def output_notebook(self, run: str, stage: str) -> dict[str, Any]:
        """The output notebook (nbformat JSON) of notebook stage ``stage`` of ``run``."""
        return self._call("GET", f"runs/{run}/stages/{stage}/notebook")

    def workflow_inputs(self, workflow: str) -> dict[str, Any]:
        """The run input ``workflow`` takes: ``fields`` (name, type, default, ...) and ``open``."""
        return self._call("GET", f"workflows/{workflow}/inputs")

    # -- events and the server -----------------------------------------------------------------------------
    def publish(self, type: str, data: Any = None, *, source: str = "user", channel: str = "events") -> dict:
        """Publish an event; condition triggers evaluate it."""
        return self._call("POST", "events", json={"type": type, "data": data, "source": source, "channel": channel})

    def status(self) -> dict[str, Any]:
        return self._call("GET", "status")

    def plugins(self) -> list["Plugin"]:
        """The plugin packages installed on the server and what each ships."""
        from flowdapt.plugins import Plugin

        return [Plugin.model_validate(item) for item in self._call("GET", "plugins")]


class ServerCatalog:
    """The engine's catalog (:mod:`flowdapt.resources.catalog`) on a server: names given to
    :func:`flowdapt.run_workflow` in a kernel that Lab started are looked up there.

    The client is made on first use (default: the server of ``FLOWDAPT_URL``), so installing the
    catalog costs nothing until a name is looked up.
    """

    def __init__(self, client: Client | None = None) -> None:
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Client:
        with self._lock:
            if self._client is None:
                self._client = Client()
            return self._client

    def get(self, kind: str, identifier: str) -> Resource:
        return self.client.get(kind, identifier)

    def list(self, kind: str) -> list[Resource]:
        return self.client.list(kind)

    def apply(self, resources: Iterable[Resource]) -> list[tuple[Resource, str]]:
        return self.client.apply(resources)


def _part(identifier: str) -> str:
    """``identifier`` as one URL path segment."""
    return quote(identifier, safe="")


def _params(values: dict[str, Any]) -> dict[str, Any]:
    """Query parameters: ``None`` left out, times in ISO 8601."""
    return {key: value.isoformat() if hasattr(value, "isoformat") else value
            for key, value in values.items() if value is not None}


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _collection(kind: str) -> str:
    try:
        return COLLECTIONS[kind]
    except KeyError:
        raise FlowdaptError(f"unknown kind '{kind}' (known: {', '.join(COLLECTIONS)})") from None


def _document(resource: Resource | dict) -> dict[str, Any]:
    return resource.to_document() if isinstance(resource, Resource) else dict(resource)


def _resource(kind: str, document: dict[str, Any]) -> Resource:
    document = {key: value for key, value in document.items() if key != "status"}
    return RESOURCE_KINDS[kind].model_validate(document)
