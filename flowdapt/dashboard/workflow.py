"""One workflow: its duration trend, per-stage duration box plots, stage failure rates and the items of
parameterized stages that fail most. Without a workflow filter it shows the busiest workflow."""

from __future__ import annotations

from typing import Any, Callable

import panel as pn

from flowdapt.dashboard.charts import RateChart, StageBoxChart, TrendChart
from flowdapt.dashboard.parts import Context, Links, percent, seconds, show_rows, table, when

ITEM_LIMIT = 20


class WorkflowView:
    """The workflow view; ``navigate(run=...)`` opens a run from the failing-items table."""

    title = "Workflow"

    def __init__(self, navigate: Callable[..., None], links: Links) -> None:
        self.heading = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.trend = TrendChart()
        self.boxes = StageBoxChart()
        self.failures = RateChart("Stage failure rate (failed attempts)", "stage-failures", "#c62828",
                                  [("stage", "@label"), ("failed", "@count of @total attempts"),
                                   ("rate", "@value{0.0%}")], percent=True)
        self.items_chart = RateChart("Most failing items of parameterized stages", "item-failures", "#ef6c00",
                                     [("item", "@label"), ("failed", "@count attempts")], percent=False)
        self.stages = table("workflow-stages", {"stage": "Stage", "attempts": "Attempts", "failed": "Failed", "retried": "Retries",
                             "p50": "p50", "p95": "p95", "max": "max", "items": "Items failed"}, max_height=220)
        self.items = table("workflow-items", {"stage": "Stage", "item": "Item", "failures": "Failed attempts", "type": "Latest error",
                            "message": "Message", "at": "Latest (UTC)"}, hidden=("uid",), max_height=220)
        self.items.on_click(lambda event: navigate(run=self.items.value.iloc[event.row]["uid"], tab="run"))
        self.panel = pn.Column(
            self.heading,
            pn.pane.Bokeh(self.trend.figure, sizing_mode="stretch_width"),
            pn.Row(pn.pane.Bokeh(self.boxes.figure, sizing_mode="stretch_width"),
                   pn.pane.Bokeh(self.failures.figure, sizing_mode="stretch_width"), sizing_mode="stretch_width"),
            "#### Stages", self.stages,
            pn.pane.Bokeh(self.items_chart.figure, sizing_mode="stretch_width"),
            "#### Failing items", self.items,
            sizing_mode="stretch_width",
        )

    @staticmethod
    def queries(context: Context) -> dict[str, Callable[[], Any]]:
        """What the view reads, run together; without a workflow filter, for the busiest workflow."""
        source, params = context.source, dict(context.params)
        if "workflow" not in params:
            busiest = sorted(source.stats("workflows", **params), key=lambda row: -row.runs)
            if not busiest:
                return {}
            params["workflow"] = busiest[0].workflow
        return {
            "workflow": lambda: params["workflow"],
            "summary": lambda: source.stats("summary", **params),
            "daily": lambda: source.stats("daily", **params),
            "stages": lambda: source.stats("stages", **params),
            "items": lambda: source.stats("items", limit=ITEM_LIMIT, **params),
        }

    def show(self, context: Context, found: dict[str, Any]) -> None:
        """Show what :meth:`queries` read."""
        if not found:
            self.heading.object = "### No runs in this window\nWiden the time range or clear the filters."
            return
        workflow = found["workflow"]
        note = "" if context.filters.workflow else (
            " — the busiest in this window; choose another in *Workflow* on the left")
        summary, stages, items = found["summary"], found["stages"], found["items"]
        self.heading.object = (f"### {workflow}{note}\n{summary.runs:,} runs, success rate "
                               f"{percent(summary.success_rate)}, p50 {seconds(summary.p50_duration)}, "
                               f"p95 {seconds(summary.p95_duration)}")
        self.trend.update(found["daily"])
        self.boxes.update(stages)
        self.failures.update([stage.stage for stage in stages],
                             [stage.failed / stage.attempts if stage.attempts else 0 for stage in stages],
                             [stage.failed for stage in stages], [stage.attempts for stage in stages])
        show_rows(self.stages, [{"stage": stage.stage, "attempts": stage.attempts, "failed": stage.failed,
                                 "retried": stage.retried, "p50": seconds(stage.p50_duration),
                                 "p95": seconds(stage.p95_duration), "max": seconds(stage.max_duration),
                                 "items": f"{stage.items_failed:,} of {stage.items_total:,}" if stage.items_total else ""}
                                for stage in stages])
        self.items_chart.update([f"{item.stage}[{item.item}]" for item in items], [item.failures for item in items],
                                [item.failures for item in items], [item.failures for item in items])
        show_rows(self.items, [{"stage": item.stage, "item": item.item, "failures": item.failures, "type": item.type,
                                "message": item.message, "at": when(item.last_at), "uid": item.last_run_uid}
                               for item in items])
