"""Serving the dashboard: a Panel (Bokeh) server, on a TCP port or on a unix socket behind Jupyter.

Every asset comes from the server itself (Bokeh's and Panel's JS and CSS, Tabulator, the Bootstrap
template): nothing is fetched from a CDN, so the dashboard works offline. One
:class:`~flowdapt.dashboard.source.HistorySource` serves every session.
"""

from __future__ import annotations

import socket
from typing import Any, Callable

import panel as pn

from flowdapt.dashboard.app import TITLE, Dashboard
from flowdapt.dashboard.filters import Filters
from flowdapt.dashboard.parts import Links
from flowdapt.dashboard.source import HistorySource


def dashboard_app(source: HistorySource, links: Links, *, refresh_seconds: float = 5.0) -> Callable[[], Any]:
    """The Panel app: each session gets a :class:`Dashboard` on the URL's filters, with its data in the first page."""

    def app() -> Any:
        filters, problems = Filters.from_query(pn.state.session_args)
        dashboard = Dashboard(source, links, filters, refresh_seconds=refresh_seconds, problems=problems)
        dashboard.start()
        return dashboard.page()

    return app


def serve(source: HistorySource, links: Links, *, port: int = 5006, address: str = "127.0.0.1",
          unix_socket: str | None = None, prefix: str = "", refresh_seconds: float = 5.0, show: bool = False,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serve the dashboard at ``/`` (under ``prefix``) until interrupted.

    ``unix_socket``: listen there instead of a port (behind a proxy that authenticates, which is why
    any websocket origin is accepted then). ``on_ready`` is called with the URL once listening.
    """
    options: dict[str, Any] = {"prefix": prefix, "title": TITLE, "show": False, "start": False}
    if unix_socket:
        options.update(unix_socket=unix_socket, websocket_origin=["*"])
    else:
        port = port or _free_port(address)  # the websocket origins name it
        options.update(port=port, address=address,
                       websocket_origin=sorted({f"{address}:{port}", f"localhost:{port}", f"127.0.0.1:{port}"}))
    server = pn.serve({"/": dashboard_app(source, links, refresh_seconds=refresh_seconds)}, **options)
    url = unix_socket or f"http://{address}:{server.port}{prefix.rstrip('/')}/"
    if on_ready is not None:
        server.io_loop.add_callback(on_ready, url)
    if show and not unix_socket:
        server.io_loop.add_callback(server.show, "/")
    server.start()
    server.io_loop.start()


def _free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]
