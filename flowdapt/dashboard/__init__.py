"""The Panel dashboard of run history: what ran, what failed and why, what got slower, whether the
schedules fire on time.

Three ways to open it, one app:

- inside JupyterLab at ``{base_url}flowdapt/dashboard/``, behind Jupyter's authentication
  (:mod:`flowdapt.dashboard.jupyter` explains how it is served there);
- standalone, ``flowdapt dashboard [--port N]`` (:mod:`flowdapt.dashboard.serve`);
- inline in a notebook, :func:`show` (or ``%flowdapt dashboard``).

Its data are the statistics of :mod:`flowdapt.history.stats`, aggregated by the database: through
the server's REST API (``stats/{view}``) when a server runs, else from the local store with the same
queries (:mod:`flowdapt.dashboard.source`). Panel and Bokeh come with the ``dashboard`` extra and are
imported only when a dashboard is made.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from flowdapt.errors import FlowdaptError


class DashboardUnavailableError(FlowdaptError):
    """Panel (the ``dashboard`` extra) is not installed."""


def _require_panel() -> None:
    try:
        import bokeh  # noqa: F401
        import panel  # noqa: F401
    except ImportError:
        raise DashboardUnavailableError("the dashboard needs Panel: pip install 'flowdapt[dashboard]'") from None


def links_for(source: Any, *, relative: bool) -> Any:
    """Links into the Jupyter server ``source`` reads from (none for a local store); ``relative``: by
    path only, for pages served by that server (notebook outputs, the dashboard inside Lab)."""
    from flowdapt.dashboard.parts import Links
    from flowdapt.dashboard.source import ServerSource

    if not isinstance(source, ServerSource):
        return Links(None)
    root = source.client.url.rstrip("/") + "/"
    return Links(urlparse(root).path if relative else root)


def show(source: Any = None, *, refresh_seconds: float = 5.0, **filters: Any) -> Any:
    """The dashboard as a notebook cell's output (return it from the cell, or ``display`` it).

    Parameters
    ----------
    source : a :class:`~flowdapt.client.Client`, an open ``HistoryStore`` or ``None``: the server the
        kernel belongs to (``FLOWDAPT_URL``), else the running server, else the local store
    refresh_seconds : how often to look for new runs (0: never)
    filters : initial filters: ``workflow``, ``state``, ``source``, ``range`` (``1h 24h 7d 30d 90d 365d all``),
        ``tab`` (``overview workflow run triggers runs``), ``run``, ...
    """
    _require_panel()
    import panel as pn

    from flowdapt.dashboard.app import Dashboard
    from flowdapt.dashboard.filters import Filters
    from flowdapt.dashboard.source import as_source, connect_source
    from flowdapt.settings import get_settings

    pn.extension("tabulator", inline=True)  # no CDN: the page may be offline
    history = as_source(source) if source is not None else connect_source(get_settings())
    dashboard = Dashboard(history, links_for(history, relative=True), Filters(**filters),
                          refresh_seconds=refresh_seconds)
    dashboard.start()
    return dashboard.layout()


__all__ = ["show", "DashboardUnavailableError"]
