"""The filtered runs as a table (newest first), downloadable as CSV or Parquet; a click opens a run."""

from __future__ import annotations

import io
from typing import Any, Callable

import pandas as pd
import panel as pn
from bokeh.models.widgets.tables import NumberFormatter

from flowdapt.dashboard.filters import LIMITS
from flowdapt.dashboard.parts import Context, Links

COLUMNS = ["name", "workflow", "state", "source", "started_at", "finished_at", "duration", "error_type",
           "error_message", "executor", "namespace", "uid"]


TITLES = {"name": "Run", "workflow": "Workflow", "state": "State", "source": "Source", "started_at": "Started (UTC)",
          "finished_at": "Finished (UTC)", "duration": "Duration (s)", "error_type": "Error",
          "error_message": "Message", "executor": "Executor", "namespace": "Namespace"}


def runs_frame(runs: list[Any]) -> pd.DataFrame:
    """Runs as a table: one row per run, times as UTC timestamps, durations in seconds."""
    frame = pd.DataFrame([{
        "name": run.name, "workflow": run.workflow, "state": run.state, "source": run.source,
        "started_at": run.started_at, "finished_at": run.finished_at, "duration": run.duration,
        "error_type": run.error.type if run.error else None, "error_message": run.error.message if run.error else None,
        "executor": run.executor, "namespace": run.namespace, "uid": run.uid} for run in runs], columns=COLUMNS)
    for column in ("started_at", "finished_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


class RunsView:
    """The runs table with CSV and Parquet downloads of what it holds."""

    title = "Runs"

    def __init__(self, navigate: Callable[..., None], links: Links) -> None:
        self.limit = pn.widgets.Select(label="Show", options={f"newest {limit:,}": limit for limit in LIMITS},
                                       value=1000, width=160)
        self.frame = runs_frame([])
        self.count = pn.pane.Markdown("", margin=(18, 10))
        self.csv = pn.widgets.FileDownload(callback=self._csv, filename="flowdapt-runs.csv", label="Download CSV",
                                           color="primary", width=160, margin=(20, 5))
        self.parquet = pn.widgets.FileDownload(callback=self._parquet, filename="flowdapt-runs.parquet",
                                               label="Download Parquet", color="primary", width=170,
                                               margin=(20, 5))
        self.table = pn.widgets.Tabulator(_shown(self.frame), show_index=False, disabled=True,
                                          sizing_mode="stretch_width", pagination="remote", page_size=25,
                                          layout="fit_columns", selectable=False, hidden_columns=["uid"],
                                          titles=TITLES, formatters={"duration": NumberFormatter(format="0.000")},
                                          css_classes=["fd-runs"])
        self.table.on_click(lambda event: navigate(run=self.table.value.iloc[event.row]["uid"], tab="run"))
        self.limit.param.watch(lambda event: navigate(limit=event.new), "value")
        self.panel = pn.Column(pn.Row(self.limit, self.count, self.csv, self.parquet), self.table,
                               sizing_mode="stretch_width")

    @staticmethod
    def queries(context: Context) -> dict[str, Callable[[], Any]]:
        """The newest runs the filters match, as many as chosen."""
        return {"runs": lambda: context.source.list_runs(**context.params, limit=context.filters.limit)}

    def show(self, context: Context, found: dict[str, Any]) -> None:
        """Show what :meth:`queries` read."""
        runs, limit = found["runs"], context.filters.limit
        if self.limit.value != limit:
            self.limit.value = limit
        self.frame = runs_frame(runs)
        self.table.value = _shown(self.frame)
        more = " (the newest; there may be more)" if len(runs) == limit else ""
        self.count.object = f"**{len(runs):,} runs**{more}"

    def _csv(self) -> io.BytesIO:
        return io.BytesIO(self.frame.to_csv(index=False).encode())

    def _parquet(self) -> io.BytesIO:
        buffer = io.BytesIO()
        self.frame.to_parquet(buffer, index=False)
        buffer.seek(0)
        return buffer


def _shown(frame: pd.DataFrame) -> pd.DataFrame:
    """The table as shown: times as UTC text (the downloads keep them typed)."""
    shown = frame.copy()
    for column in ("started_at", "finished_at"):
        shown[column] = shown[column].dt.strftime("%Y-%m-%d %H:%M:%S").fillna("")
    return shown
