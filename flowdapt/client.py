"""``flowdapt.Client``: the REST API of a flowdapt server from Python (httpx, synchronous).

The server is found from the arguments, else ``FLOWDAPT_URL`` / ``FLOWDAPT_TOKEN`` (set in the
kernels a server starts), else the runtime file ``server.json`` the server writes in the app dir.
``FLOWDAPT_URL`` is the Jupyter server's root URL with its base URL; the client appends
``flowdapt/api/v1/``. Errors answered by the server raise :class:`ServerError` with its ``detail``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import httpx

from flowdapt.errors import FlowdaptError
from flowdapt.resources.models import RESOURCE_KINDS, Resource, WorkflowRun

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

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServerError(503, f"cannot talk to the server at {self.url}: {exc}") from None
        if response.is_error:
            try:
                detail = response.json()["detail"]
            except (ValueError, KeyError, TypeError):
                detail = f"{response.status_code} {response.reason_phrase} from {response.request.url}"
            raise ServerError(response.status_code, detail)
        return response.json()

    # -- resources -----------------------------------------------------------------------------------------
    def list(self, kind: str, *, limit: int = 10_000, offset: int = 0) -> list[Resource]:
        """Resources of ``kind`` (``workflow``, ``config``, ``trigger_rule``) by name."""
        items = self._call("GET", _collection(kind), params={"limit": limit, "offset": offset})
        return [_resource(kind, item) for item in items]

    def get(self, kind: str, identifier: str) -> Resource:
        return _resource(kind, self._call("GET", f"{_collection(kind)}/{identifier}"))

    def create(self, resource: Resource | dict) -> Resource:
        document = _document(resource)
        return _resource(document["kind"], self._call("POST", _collection(document["kind"]), json=document))

    def delete(self, kind: str, identifier: str) -> Resource:
        return _resource(kind, self._call("DELETE", f"{_collection(kind)}/{identifier}"))

    def apply(self, resources: Iterable[Resource | dict]) -> list[tuple[Resource, str]]:
        """Create or update resources of any kinds, all or nothing; (resource, created|updated|unchanged)."""
        outcome = self._call("POST", "apply", json=[_document(item) for item in resources])
        return [(_resource(item["resource"]["kind"], item["resource"]), item["outcome"]) for item in outcome]

    def set_trigger_enabled(self, identifier: str, enabled: bool) -> Resource:
        return _resource("trigger_rule", self._call("POST", f"triggers/{identifier}/"
                                                            f"{'enable' if enabled else 'disable'}"))

    def trigger_status(self, identifier: str) -> dict[str, Any]:
        """``enabled``, ``last_fire_time``, ``next_fire_time`` of a trigger."""
        return self._call("GET", f"triggers/{identifier}")["status"]

    def trigger_firings(self, identifier: str, *, limit: int = 50) -> list[dict[str, Any]]:
        return self._call("GET", f"triggers/{identifier}/firings", params={"limit": limit})

    # -- runs ----------------------------------------------------------------------------------------------
    def run(self, workflow: str, input: dict[str, Any] | None = None, *, wait: bool = True,
            namespace: str | None = None, executor: str | None = None, source: str | None = None) -> WorkflowRun:
        """Run a workflow on the server; with ``wait``, return once it has ended.

        ``source`` (``api`` by default, ``manual`` or ``notebook``) is recorded on the run.
        """
        params = {"wait": str(wait).lower(), **{k: v for k, v in (("namespace", namespace),
                                                                  ("executor", executor), ("source", source)) if v}}
        return WorkflowRun.model_validate(self._call("POST", f"workflows/{workflow}/run", json=input or {},
                                                     params=params, timeout=None if wait else httpx.USE_CLIENT_DEFAULT))

    def get_run(self, identifier: str) -> WorkflowRun:
        return WorkflowRun.model_validate(self._call("GET", f"runs/{identifier}"))

    def list_runs(self, **filters: Any) -> list[WorkflowRun]:
        """Runs newest first; filters ``workflow state source since until limit offset``."""
        params = {key: value.isoformat() if hasattr(value, "isoformat") else value
                  for key, value in filters.items() if value is not None}
        return [WorkflowRun.model_validate(item) for item in self._call("GET", "runs", params=params)]

    def cancel(self, identifier: str) -> WorkflowRun:
        return WorkflowRun.model_validate(self._call("POST", f"runs/{identifier}/cancel"))

    def stages(self, identifier: str) -> list[dict[str, Any]]:
        return self._call("GET", f"runs/{identifier}/stages")

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
