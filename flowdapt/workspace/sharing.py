"""Sharing the embedded store: the process that holds a DuckDB history answers the others.

DuckDB lets one process open a database file. Without a server, the process that holds it for a
while (``flowctl run``, a kernel whose ``%flowdapt`` magics work on the embedded store) serves it
on 127.0.0.1 with the routes of the server's REST API that read and change the catalog and the
runs (list, get, apply, delete, cancel, status), so a second shell can list and cancel the runs of
a running ``flowctl run``. Starting runs is refused there: the holder ends when its own work ends.

While it serves, the holder writes ``store.json`` in the app dir (URL, token, pid, database; mode
0600) and :func:`flowdapt.workspace.connect` sends other processes there. Requests need the token.
SQLite and PostgreSQL take several processes, so a store on them is never served.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import secrets
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import ValidationError

from flowdapt.errors import FlowdaptError, ResourceError, ResourceNotFoundError
from flowdapt.history.models import RunQuery
from flowdapt.resources.loading import parse_resource
from flowdapt.server.runtime import read_runtime_file, remove_runtime_file, write_runtime_file

if TYPE_CHECKING:
    from flowdapt.workspace.local import LocalBackend

STORE_FILE = "store.json"
API = "/flowdapt/api/v1/"
KINDS = {"workflows": "workflow", "configs": "config", "triggers": "trigger_rule"}
Route = tuple[str, re.Pattern[str], Callable[..., Any]]


class _Refused(FlowdaptError):
    """What the holder does not do for others (starting runs)."""


class StoreServer:
    """Serves ``backend``'s store to other processes until :meth:`close`.

    Parameters
    ----------
    backend : the local backend holding the store
    holder : who holds it, for messages (``flowctl run``, ``a notebook kernel``)
    """

    def __init__(self, backend: "LocalBackend", holder: str) -> None:
        self.backend = backend
        self.holder = holder
        self.token = secrets.token_hex(16)
        self.app_dir = backend.settings.app_dir
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/"
        self._thread = threading.Thread(target=self._http.serve_forever, name="flowdapt-store-server", daemon=True)
        self._thread.start()
        write_runtime_file(self.app_dir, self.url, self.token, name=STORE_FILE,
                           extra={"database": backend.settings.database_url(), "holder": holder})
        self.routes: list[Route] = [
            ("GET", re.compile(r"status"), self._status),
            ("GET", re.compile(r"plugins"), self._plugins),
            ("GET", re.compile(r"(?P<collection>workflows|configs|triggers)"), self._list),
            ("GET", re.compile(r"(?P<collection>workflows|configs|triggers)/(?P<identifier>[^/]+)"), self._get),
            ("POST", re.compile(r"triggers/(?P<identifier>[^/]+)/(?P<switch>enable|disable)"), self._switch),
            ("GET", re.compile(r"triggers/(?P<identifier>[^/]+)/firings"), self._firings),
            ("DELETE", re.compile(r"(?P<collection>workflows|configs|triggers)/(?P<identifier>[^/]+)"), self._delete),
            ("POST", re.compile(r"apply"), self._apply),
            ("GET", re.compile(r"runs"), self._runs),
            ("GET", re.compile(r"runs/(?P<identifier>[^/]+)"), self._run),
            ("POST", re.compile(r"runs/(?P<identifier>[^/]+)/cancel"), self._cancel),
            ("POST", re.compile(r"workflows/(?P<identifier>[^/]+)/run"), self._refuse_run),
            ("GET", re.compile(r"runs/(?P<identifier>[^/]+)/logs"), self._logs),
            ("POST", re.compile(r"runs/(?P<identifier>[^/]+)/(?:rerun|resume)"), self._refuse_run),
            ("POST", re.compile(r"triggers/(?P<identifier>[^/]+)/backfill"), self._refuse_run),
            ("DELETE", re.compile(r"cache"), self._clear_cache),
        ]

    def close(self) -> None:
        """Stop serving (first, so nobody is sent to a store about to close) and remove ``store.json``."""
        remove_runtime_file(self.app_dir, name=STORE_FILE)
        self._http.shutdown()
        self._http.server_close()

    # -- routes: (query, body, **path) -> JSON ------------------------------------------------------------
    def _status(self, query: dict[str, str], body: Any) -> dict[str, Any]:
        self.backend.store.flush()
        return {**self.backend.status(), "shared_by": f"{self.holder} (pid {os.getpid()})"}

    def _plugins(self, query: dict[str, str], body: Any) -> list[dict[str, Any]]:
        return [plugin.model_dump(mode="json") for plugin in self.backend.plugins()]

    def _list(self, query: dict[str, str], body: Any, collection: str) -> list[dict[str, Any]]:
        return [resource.to_document() for resource in self.backend.list(KINDS[collection])]

    def _get(self, query: dict[str, str], body: Any, collection: str, identifier: str) -> dict[str, Any]:
        document = self.backend.get(KINDS[collection], identifier).to_document()
        if collection == "triggers":
            document["status"] = self.backend.trigger_status(identifier)
        return document

    def _switch(self, query: dict[str, str], body: Any, identifier: str, switch: str) -> dict[str, Any]:
        return self.backend.set_trigger_enabled(identifier, switch == "enable").to_document()

    def _firings(self, query: dict[str, str], body: Any, identifier: str) -> list[dict[str, Any]]:
        return self.backend.trigger_firings(identifier, int(query.get("limit", 50)))

    def _delete(self, query: dict[str, str], body: Any, collection: str, identifier: str) -> dict[str, Any]:
        return self.backend.delete(KINDS[collection], [identifier])[0].to_document()

    def _apply(self, query: dict[str, str], body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, list) or not body:
            raise ResourceError("body: expected a non-empty JSON list of resources")
        resources = [parse_resource(document) for document in body]
        return [{"resource": resource.to_document(), "outcome": outcome}
                for resource, outcome in self.backend.apply(resources)]

    def _runs(self, query: dict[str, str], body: Any) -> list[dict[str, Any]]:
        self.backend.store.flush()
        return [run.to_document() for run in self.backend.list_runs(RunQuery.model_validate(query))]

    def _run(self, query: dict[str, str], body: Any, identifier: str) -> dict[str, Any]:
        self.backend.store.flush()
        return self.backend.get_run(identifier).to_document()

    def _logs(self, query: dict[str, str], body: Any, identifier: str) -> list[dict[str, Any]]:
        filters = {key: int(query[key]) for key in ("attempt", "after", "limit") if key in query}
        lines = self.backend.logs(identifier, stage=query.get("stage"), **filters)
        return [line.model_dump(mode="json") for line in lines]

    def _clear_cache(self, query: dict[str, str], body: Any) -> dict[str, int]:
        return {"deleted": self.backend.clear_cache(query.get("workflow"), query.get("stage"))}

    def _cancel(self, query: dict[str, str], body: Any, identifier: str) -> dict[str, Any]:
        return self.backend.cancel(identifier).to_document()

    def _refuse_run(self, query: dict[str, str], body: Any, identifier: str) -> Any:  # starting runs, in any way
        raise _Refused(f"the embedded store is held by {self.holder} (pid {os.getpid()}), which runs only its own "
                       "work: wait until it ends, or run `flowdapt serve` to run workflows from several shells")


def _handler(server: StoreServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass  # requests are not the holder's output

        def _answer(self, status: int, data: Any) -> None:
            payload = json.dumps(data, default=lambda value: value.isoformat() if isinstance(value, datetime)
                                 else str(value)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _error(self, status: int, detail: str) -> None:
            self._answer(status, {"detail": detail, "status_code": status})

        def _dispatch(self, method: str) -> None:
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"token {server.token}".encode()):
                return self._error(403, "a token is needed (the one in the app dir's store.json)")
            parts = urlsplit(self.path)
            if not parts.path.startswith(API):
                return self._error(404, f"no route {parts.path}")
            path = parts.path[len(API):].strip("/")
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length)) if length else None
            except ValueError as exc:
                return self._error(400, f"body: invalid JSON: {exc}")
            query = dict(parse_qsl(parts.query))
            for verb, pattern, route in server.routes:
                match = pattern.fullmatch(path)
                if verb == method and match:
                    break
            else:
                return self._error(404, f"{method} {path}: not served by {server.holder}; start `flowdapt serve` "
                                        "for the whole API")
            arguments = {key: unquote(value) for key, value in match.groupdict().items()}
            try:
                self._answer(200, route(query, body, **arguments))
            except ResourceNotFoundError as exc:
                self._error(404, str(exc))
            except _Refused as exc:
                self._error(409, str(exc))
            except ValidationError as exc:
                self._error(400, f"query: {exc.errors()[0]['msg']}")
            except FlowdaptError as exc:
                self._error(422 if isinstance(exc, ResourceError) else 409, str(exc))
            except Exception as exc:  # noqa: BLE001 - the holder's own work goes on
                self._error(500, f"{type(exc).__name__}: {exc}")

        def do_GET(self) -> None:  # noqa: N802 - http.server's names
            self._dispatch("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch("POST")

        def do_DELETE(self) -> None:  # noqa: N802
            self._dispatch("DELETE")

    return Handler


def shared_store(app_dir: Any, database_url: str) -> dict[str, Any] | None:
    """``{"url", "token", "pid", "holder"}`` of the process serving this database, if one does."""
    info = read_runtime_file(app_dir, name=STORE_FILE)
    if info is None or info.get("database") != database_url:
        return None
    return info
