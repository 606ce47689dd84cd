"""What every view of the dashboard uses: the refresh context, links into Lab, tables, KPI cards, formats."""

from __future__ import annotations

import html
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable
from urllib.parse import quote

import pandas as pd
import panel as pn

from flowdapt.dashboard.filters import Filters
from flowdapt.dashboard.source import HistorySource

# The statistics of one refresh are fetched at once: the refresh takes as long as the slowest, not the sum.
_FETCHERS = ThreadPoolExecutor(max_workers=6, thread_name_prefix="flowdapt-dashboard")


@dataclass(frozen=True)
class Links:
    """URLs of the Jupyter server the history belongs to (``root``: its URL or path with the base URL;
    ``None`` without a server, where there is no Lab to link to)."""

    root: str | None = None

    def lab_run(self, uid: str) -> str | None:
        """The run's view in JupyterLab."""
        return None if self.root is None else f"{self.root}lab?flowdapt-run={quote(uid)}"

    def notebook(self, uid: str, stage: str) -> str | None:
        """A notebook stage's output notebook."""
        if self.root is None:
            return None
        return f"{self.root}flowdapt/api/v1/runs/{quote(uid)}/stages/{quote(stage, safe='')}/notebook"


@dataclass
class Context:
    """One refresh: where to read, the filters as they stand, and the time they are read at."""

    source: HistorySource
    filters: Filters
    links: Links
    now: datetime

    @property
    def params(self) -> dict[str, Any]:
        return self.filters.history_params(self.now)


def fetch(calls: dict[str, Callable[[], Any]]) -> dict[str, Future]:
    """Start ``calls`` together (in worker threads); their futures by the same keys."""
    return {key: _FETCHERS.submit(call) for key, call in calls.items()}


def table(name: str, columns: dict[str, str], *, hidden: tuple[str, ...] = (), max_height: int = 320,
          **options: Any) -> pn.widgets.Tabulator:
    """A read-only table with ``columns`` (field: title) and ``hidden`` fields (uids, URLs), as tall as its
    rows up to ``max_height`` (then it scrolls), with the CSS class ``fd-<name>``; filled later with
    :func:`show_rows`."""
    fields = [*columns, *hidden]
    return pn.widgets.Tabulator(pd.DataFrame({field: [] for field in fields}), titles=columns, show_index=False,
                                disabled=True, sizing_mode="stretch_width", max_height=max_height,
                                layout="fit_columns", selectable=False, hidden_columns=list(hidden),
                                css_classes=[f"fd-{name}"], **options)


def show_rows(widget: pn.widgets.Tabulator, rows: list[dict[str, Any]]) -> None:
    """Replace a table's rows (each a dict with at least the table's columns)."""
    columns = list(widget.value.columns)
    widget.value = pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame({column: [] for column in columns})


def link_formatter(url_field: str) -> dict[str, Any]:
    """A Tabulator cell whose text links to the URL in the row's ``url_field`` (in a new tab)."""
    return {"type": "link", "urlField": url_field, "target": "_blank"}


def kpi_cards(cards: list[tuple[str, str, str, str]]) -> str:
    """HTML of KPI cards ``(key, label, value, note)``; ``data-kpi=key`` marks each value."""
    items = "".join(
        f'<div class="fd-kpi"><div class="fd-kpi-label">{html.escape(label)}</div>'
        f'<div class="fd-kpi-value" data-kpi="{html.escape(key)}">{html.escape(value)}</div>'
        f'<div class="fd-kpi-note">{html.escape(note)}</div></div>' for key, label, value, note in cards)
    return f'<div class="fd-kpis">{items}</div>'


KPI_CSS = """
.fd-kpis {display: flex; flex-wrap: wrap; gap: 12px; width: 100%;}
.fd-kpi {flex: 1 1 120px; border: 1px solid #dee2e6; border-radius: 6px; padding: 8px 12px; background: #fff;}
.fd-kpi-label {font-size: 12px; color: #546e7a; text-transform: uppercase; letter-spacing: .04em;}
.fd-kpi-value {font-size: 26px; font-weight: 600; color: #263238;}
.fd-kpi-note {font-size: 11px; color: #78909c; min-height: 14px;}
"""


def seconds(value: float | None) -> str:
    """A duration for people: ``850 ms``, ``42.0 s``, ``3m 05s``, ``2h 07m``."""
    if value is None or value != value:
        return "–"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes}m {rest:02d}s"
    return f"{minutes // 60}h {minutes % 60:02d}m"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def when(value: datetime | None) -> str:
    """A time as shown in tables: UTC, to the second."""
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")
