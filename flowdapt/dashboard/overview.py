"""The overview: what ran (runs by state over time), how well (success rate, p50/p95 per workflow per
day), what runs now, and what failed most (errors grouped by type and message, with the latest run)."""

from __future__ import annotations

from typing import Any, Callable

import panel as pn

from flowdapt.dashboard.charts import DurationChart, TimelineChart
from flowdapt.dashboard.parts import (
    KPI_CSS,
    Context,
    Links,
    kpi_cards,
    link_formatter,
    percent,
    seconds,
    show_rows,
    table,
    when,
)

ERROR_LIMIT = 10


class OverviewView:
    """KPIs, the timeline, durations per workflow, the workflows, the active runs and the top errors.

    ``navigate(**filters)`` is called when a row is clicked (a workflow opens its view, a run its view).
    """

    title = "Overview"

    def __init__(self, navigate: Callable[..., None], links: Links) -> None:
        self.kpis = pn.pane.HTML(kpi_cards([]), sizing_mode="stretch_width", stylesheets=[KPI_CSS])
        self.empty = pn.pane.Markdown("No run started in this window: widen the time range or clear the filters.",
                                      visible=False)
        self.timeline = TimelineChart()
        self.durations = DurationChart()
        self.workflows = table("workflows", {"workflow": "Workflow", "runs": "Runs", "success": "Success", "failed": "Failed",
                                "active": "Active", "p50": "p50", "p95": "p95", "last": "Last start (UTC)"})
        self.active = table("active", {"name": "Run", "workflow": "Workflow", "state": "State", "source": "Source",
                             "started": "Started (UTC)"}, hidden=("uid",))
        self.errors = table("errors", {"runs": "Runs", "type": "Error", "message": "Message", "workflow": "Latest in",
                             "stage": "Stage", "at": "Latest (UTC)", "run": "Latest run", "lab": ""},
                            hidden=("uid", "lab_url") if links.root else ("uid", "lab_url", "lab"),
                            formatters={"lab": link_formatter("lab_url")}, widths={"runs": 70, "message": "35%", "lab": 60},
                            max_height=300)
        self.workflows.on_click(lambda event: navigate(workflow=self.workflows.value.iloc[event.row]["workflow"],
                                                       tab="workflow"))
        self.active.on_click(lambda event: navigate(run=self.active.value.iloc[event.row]["uid"], tab="run"))
        self.errors.on_click(lambda event: event.column != "lab" and navigate(
            run=self.errors.value.iloc[event.row]["uid"], tab="run"))
        self.panel = pn.Column(
            self.kpis,
            self.empty,
            pn.pane.Bokeh(self.timeline.figure, sizing_mode="stretch_width"),
            pn.pane.Bokeh(self.durations.figure, sizing_mode="stretch_width"),
            "#### Running now", self.active,
            "#### Workflows", self.workflows,
            "#### Most frequent errors", self.errors,
            sizing_mode="stretch_width",
        )

    @staticmethod
    def queries(context: Context) -> dict[str, Callable[[], Any]]:
        """What the view reads, run together (see :class:`~flowdapt.dashboard.app.Dashboard`)."""
        source, params = context.source, context.params
        now_params = {key: value for key, value in params.items() if key in ("workflow", "source")}
        bucket = context.filters.bucket_for(context.now)
        return {
            "summary": lambda: source.stats("summary", **params),
            "timeline": lambda: source.stats("timeline", bucket=bucket, **params),
            "daily": lambda: source.stats("daily", **params),
            "workflows": lambda: source.stats("workflows", **params),
            "active": lambda: source.stats("active", **now_params),
            "errors": lambda: source.stats("errors", limit=ERROR_LIMIT, **params),
        }

    def show(self, context: Context, found: dict[str, Any]) -> None:
        """Show what :meth:`queries` read."""
        bucket = context.filters.bucket_for(context.now)
        summary, active = found["summary"], found["active"]
        self.empty.visible = summary.runs == 0
        running = sum(run.state == "running" for run in active)
        self.kpis.object = kpi_cards([
            ("runs", "Runs", f"{summary.runs:,}", f"{summary.ended:,} ended"),
            ("success", "Success rate", percent(summary.success_rate), f"{summary.finished:,} finished"),
            ("failed", "Failed", f"{summary.failed:,}", f"{summary.states.get('interrupted', 0):,} interrupted"),
            ("p50", "p50 duration", seconds(summary.p50_duration), "of ended runs"),
            ("p95", "p95 duration", seconds(summary.p95_duration), "of ended runs"),
            ("running", "Running now", f"{running:,}", f"{len(active) - running:,} queued"),
        ])
        self.timeline.update(found["timeline"], bucket)
        self.durations.update(found["daily"])
        show_rows(self.workflows, [_workflow_row(row) for row in found["workflows"]])
        show_rows(self.active, [{"name": run.name, "workflow": run.workflow, "state": run.state, "source": run.source,
                                 "started": when(run.started_at), "uid": run.uid} for run in active])
        show_rows(self.errors, [{"runs": group.runs, "type": group.type, "message": group.message,
                                 "workflow": group.last_workflow, "stage": group.stage or "", "at": when(group.last_at),
                                 "run": group.last_run_name, "lab": "Lab",
                                 "lab_url": context.links.lab_run(group.last_run_uid), "uid": group.last_run_uid}
                                for group in found["errors"]])


def _workflow_row(row: Any) -> dict[str, Any]:
    return {"workflow": row.workflow, "runs": row.runs, "success": percent(row.success_rate), "failed": row.failed,
            "active": row.active, "p50": seconds(row.p50_duration), "p95": seconds(row.p95_duration),
            "last": when(row.last_started_at)}
