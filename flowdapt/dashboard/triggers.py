"""Triggers: every firing with its schedule time, actual time, lateness and outcome; late firings are
orange, failed ones and missed schedule times red, in the chart and in the table."""

from __future__ import annotations

from typing import Any, Callable

import pandas as pd
import panel as pn

from flowdapt.dashboard.charts import LatenessChart, outcome
from flowdapt.dashboard.parts import Context, Links, seconds, show_rows, table, when

ROW_COLORS = {"late": "background-color: #fff3e0", "failed": "background-color: #ffebee",
              "missed": "background-color: #ffcdd2"}


def _row_style(row: pd.Series) -> list[str]:
    return [ROW_COLORS.get(row["outcome"], "")] * len(row)


class TriggersView:
    """The triggers view; ``navigate(run=...)`` opens the run a firing started, ``navigate(late_after=...)``
    changes what counts as late."""

    title = "Triggers"

    def __init__(self, navigate: Callable[..., None], links: Links) -> None:
        self.late_after = pn.widgets.FloatInput(label="Late after (seconds)", value=1.0, start=0, step=0.5, width=180)
        self.late_after.param.watch(lambda event: navigate(late_after=event.new), "value")
        self.summary = table("trigger-summary", {"trigger": "Trigger", "firings": "Firings", "failed": "Failed", "late": "Late",
                              "missed": "Missed", "p50": "p50 late by", "p95": "p95 late by", "max": "max late by",
                              "last": "Last fired (UTC)"}, max_height=180)
        self.chart = LatenessChart()
        self.firings = table("trigger-firings", {"trigger": "Trigger", "outcome": "Outcome", "scheduled": "Scheduled (UTC)",
                              "fired": "Fired (UTC)", "lateness": "Late by", "run": "Run", "error": "Error"},
                             hidden=("run_uid",), max_height=360)
        self.firings.style.apply(_row_style, axis=1)
        self.firings.on_click(lambda event: self.firings.value.iloc[event.row]["run_uid"] and navigate(
            run=self.firings.value.iloc[event.row]["run_uid"], tab="run"))
        self.note = pn.pane.Markdown("", styles={"font-size": "12px", "color": "#546e7a"})
        self.panel = pn.Column(self.late_after, "#### Per trigger", self.summary, self.note,
                               pn.pane.Bokeh(self.chart.figure, sizing_mode="stretch_width"),
                               "#### Firings and missed schedule times, newest first", self.firings,
                               sizing_mode="stretch_width")

    @staticmethod
    def queries(context: Context) -> dict[str, Callable[[], Any]]:
        """The firings of the window (of the ``trigger`` filter, if any)."""
        filters = context.filters
        since, until = filters.window(context.now)
        return {"report": lambda: context.source.stats("triggers", trigger=filters.trigger or None, since=since,
                                                       until=until, late_after=filters.late_after)}

    def show(self, context: Context, found: dict[str, Any]) -> None:
        """Show what :meth:`queries` read."""
        if self.late_after.value != context.filters.late_after:
            self.late_after.value = context.filters.late_after
        report = found["report"]
        show_rows(self.summary, [{"trigger": row.trigger, "firings": row.firings, "failed": row.failed,
                                  "late": row.late, "missed": row.missed, "p50": seconds(row.p50_lateness),
                                  "p95": seconds(row.p95_lateness), "max": seconds(row.max_lateness),
                                  "last": when(row.last_fired_at)} for row in report.triggers])
        self.note.object = (f"Late: fired more than {report.late_after:g} s after the schedule time. Missed: a due time "
                            f"of an enabled schedule (after its last change) without a firing; the newest "
                            f"{report.missed_checked} due times of each schedule are checked.")
        self.chart.update(report.firings, report.missed, report.late_after)
        rows = [_firing_row(firing) for firing in report.firings]
        rows += [{"trigger": miss.trigger, "outcome": "missed", "scheduled": when(miss.scheduled_at), "fired": "",
                  "lateness": "", "run": "", "error": "no firing for this schedule time", "run_uid": ""}
                 for miss in report.missed]
        rows.sort(key=lambda row: row["scheduled"] or row["fired"], reverse=True)
        show_rows(self.firings, rows)


def _firing_row(firing: Any) -> dict[str, Any]:
    return {"trigger": firing.trigger, "outcome": outcome(firing), "scheduled": when(firing.scheduled_at),
            "fired": when(firing.fired_at), "lateness": seconds(firing.lateness) if firing.lateness is not None else "",
            "run": firing.run_uid or "", "error": firing.error or "", "run_uid": firing.run_uid or ""}
