"""The dashboard inside JupyterLab, at ``{base_url}flowdapt/dashboard/``, behind Jupyter's authentication.

How it is served there, and why:

- The flowdapt server extension mounts a `jupyter-server-proxy <https://jupyter-server-proxy.readthedocs.io>`_
  route at that URL (:func:`dashboard_routes`): the first request starts ``flowdapt dashboard`` as a
  child process listening on a **unix socket** in a private (0700) temporary directory, and every
  HTTP and websocket request is proxied to it. jupyter-server-proxy's handlers are Jupyter handlers:
  nothing reaches the dashboard without Jupyter's authentication (a token or the login cookie), and
  here also Jupyter's authorizer (resource ``flowdapt``); no TCP port is opened that another local
  user could reach. The process is supervised (restarted on the next request if it died) and ends
  with the server. The route is the same under ``jupyter lab`` and ``flowdapt serve``.
- Its own process keeps the Bokeh sessions (document building, serialization, the periodic refresh
  of every open dashboard) off the Jupyter server's event loop, where the kernels' messages, the REST
  API and the trigger loop's wake-ups (millisecond lateness) run. It reads the history through the
  server's REST API (``FLOWDAPT_URL``/``FLOWDAPT_TOKEN``, which the extension sets before anything
  starts), so it never opens the DuckDB file the server holds.
- Not Panel's own server extension: it runs each app in a new kernel (a second or more per open,
  plus a kernel per viewer) under a fixed ``panel-preview/`` URL; and not Bokeh handlers mounted in
  the Jupyter process, for the event-loop reason above.

The first open starts the process (about two seconds here); later opens are served at once.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from typing import Any

from tornado import web

_log = logging.getLogger("flowdapt.dashboard")
PATH = "flowdapt/dashboard"
START_TIMEOUT = 60.0  # seconds for the dashboard process to answer its first request


def dashboard_command() -> list[str]:
    """The dashboard process, as jupyter-server-proxy fills in ``{unix_socket}`` and ``{base_url}``."""
    return [sys.executable, "-m", "flowdapt.cli.admin", "dashboard", "--unix-socket", "{unix_socket}",
            "--prefix", "{base_url}" + PATH, "--links-root", "{base_url}"]


def available() -> bool:
    """Whether Panel and jupyter-server-proxy are installed (the ``dashboard`` extra)."""
    return all(importlib.util.find_spec(name) is not None for name in ("panel", "jupyter_server_proxy"))


def dashboard_routes() -> list[tuple[Any, ...]]:
    """Routes (relative to the base URL) serving the dashboard at ``flowdapt/dashboard/``; none without the extra."""
    if not available():
        _log.info("the run-history dashboard is off: pip install 'flowdapt[dashboard]'")
        return []
    from jupyter_server_proxy.config import ServerProcess, make_handlers

    process = ServerProcess(name=PATH, command=dashboard_command(), unix_socket=True, absolute_url=True,
                            timeout=START_TIMEOUT, launcher_entry={"enabled": False})
    return [(pattern, _authorized(handler), *rest) for pattern, handler, *rest in make_handlers("/", [process])]


def _authorized(handler: type) -> type:
    """``handler`` that also asks Jupyter's authorizer (resource ``flowdapt``, ``read`` for GET, else ``write``)."""

    class AuthorizedDashboardHandler(handler):  # type: ignore[misc, valid-type]
        async def prepare(self, *args: Any, **kwargs: Any) -> None:
            prepared = super().prepare(*args, **kwargs)
            if prepared is not None:
                await prepared
            action = "read" if self.request.method in ("GET", "HEAD", "OPTIONS") else "write"
            if self.current_user and not self.authorizer.is_authorized(self, self.current_user, action, "flowdapt"):
                raise web.HTTPError(403, f"not authorized to {action} flowdapt")

    AuthorizedDashboardHandler.__name__ = f"Authorized{handler.__name__}"
    return AuthorizedDashboardHandler
