"""The dashboard's Bokeh charts: each is built once with an empty ``ColumnDataSource`` and refreshed by
replacing its data (``update``), so a refresh sends new numbers, never new figures.

Every source has a ``name`` (``timeline``, ``durations-p50``, ``stage-boxes``, ``gantt``, ...): the
browser tests read the plotted values from ``Bokeh.documents[0].get_model_by_name(name).data``.
Times are UTC.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from bokeh.models import (
    ColumnDataSource,
    FactorRange,
    HoverTool,
    LinearAxis,
    NumeralTickFormatter,
    Range1d,
    Span,
)
from bokeh.palettes import Category10_10
from bokeh.plotting import figure
from bokeh.transform import dodge

from flowdapt.dashboard.filters import STATES

STATE_COLORS = {"finished": "#2e7d32", "failed": "#c62828", "interrupted": "#ef6c00", "cancelled": "#9e9e9e",
                "running": "#1565c0", "pending": "#90caf9"}
BUCKET_SPAN = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
TOOLS = "xpan,xwheel_zoom,box_zoom,reset,save"


def _figure(title: str, height: int = 280, tools: str = TOOLS, **options: Any) -> Any:
    chart = figure(title=title, height=height, sizing_mode="stretch_width", tools=tools, toolbar_location="above",
                   **options)
    chart.title.text_font_size = "13px"
    chart.xgrid.grid_line_color = None
    return chart


def _naive(value: datetime | None) -> datetime | None:
    """A UTC time as Bokeh plots it (naive: Bokeh reads naive datetimes as UTC)."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def workflow_colors(names: Iterable[str]) -> dict[str, str]:
    """A stable color per workflow name (by sorted position)."""
    return {name: Category10_10[index % 10] for index, name in enumerate(sorted(set(names)))}


class TimelineChart:
    """Runs started per hour or day, stacked by state (one bar segment per bucket and state, one glyph for
    all), with the success rate (finished of ended) on the right axis."""

    def __init__(self) -> None:
        self.source = ColumnDataSource({"start": [], "center": [], "state": [], "runs": [], "bottom": [], "top": [],
                                        "color": [], "total": []}, name="timeline")
        self.rates = ColumnDataSource({"start": [], "center": [], "success": []}, name="success-rate")
        chart = _figure("Runs started, by state", x_axis_type="datetime")
        chart.yaxis.axis_label = "runs"
        self.bars = chart.vbar(x="center", width=BUCKET_SPAN["day"].total_seconds() * 900, bottom="bottom", top="top",
                               color="color", source=self.source, line_color=None, legend_field="state")
        chart.extra_y_ranges = {"rate": Range1d(0, 1.05)}
        chart.add_layout(LinearAxis(y_range_name="rate", axis_label="success rate",
                                    formatter=NumeralTickFormatter(format="0%")), "right")
        chart.line("center", "success", source=self.rates, y_range_name="rate", color="#212121", line_width=1.5,
                   line_dash="dotted", legend_label="success rate")
        chart.legend.orientation = "horizontal"
        chart.legend.location = "top_left"
        chart.legend.label_text_font_size = "11px"
        chart.add_tools(HoverTool(renderers=[self.bars], formatters={"@start": "datetime"}, tooltips=[
            ("from", "@start{%F %H:%M} UTC"), ("state", "@state"), ("runs", "@runs of @total")]))
        self.figure = chart

    def update(self, buckets: list[Any], unit: str) -> None:
        """Show ``RunBucket`` rows, bucketed by ``unit`` (``hour``/``day``); states stack in a fixed order."""
        span = BUCKET_SPAN[unit]
        rows: dict[datetime, dict[str, int]] = {}
        for bucket in buckets:
            rows.setdefault(_naive(bucket.start), dict.fromkeys(STATES, 0))[bucket.state] += bucket.runs
        starts = sorted(rows)
        data: dict[str, list[Any]] = {name: [] for name in self.source.data}
        for start in starts:
            counts, bottom = rows[start], 0
            for state in STATES:
                if counts[state]:
                    data["start"].append(start)
                    data["center"].append(start + span / 2)
                    data["state"].append(state)
                    data["runs"].append(counts[state])
                    data["bottom"].append(bottom)
                    data["top"].append(bottom + counts[state])
                    data["color"].append(STATE_COLORS[state])
                    data["total"].append(sum(counts.values()))
                    bottom += counts[state]
        self.bars.glyph.width = span.total_seconds() * 900  # milliseconds, 90 % of the bucket
        self.figure.title.text = f"Runs started per {unit}, by state (UTC)"
        self.source.data = data
        self.rates.data = {"start": starts, "center": [start + span / 2 for start in starts],
                           "success": [_success(rows[start]) for start in starts]}


def _success(counts: dict[str, int]) -> float:
    ended = sum(count for state, count in counts.items() if state not in ("pending", "running"))
    return counts["finished"] / ended if ended else float("nan")


class DurationChart:
    """p50 (solid) and p95 (dashed) run duration per workflow per day."""

    def __init__(self) -> None:
        empty = {"xs": [], "ys": [], "workflow": [], "color": [], "days": []}
        self.p50 = ColumnDataSource(dict(empty), name="durations-p50")
        self.p95 = ColumnDataSource(dict(empty), name="durations-p95")
        chart = _figure("Duration per workflow per day: p50 (solid), p95 (dashed)", x_axis_type="datetime")
        chart.yaxis.axis_label = "seconds"
        median = chart.multi_line("xs", "ys", color="color", line_width=2, source=self.p50, legend_field="workflow")
        chart.multi_line("xs", "ys", color="color", line_width=1.2, line_dash="dashed", source=self.p95)
        chart.legend.click_policy = "hide"
        chart.legend.label_text_font_size = "11px"
        chart.legend.location = "top_left"
        chart.add_tools(HoverTool(renderers=[median], tooltips=[("workflow", "@workflow"), ("p50", "$y{0.0} s"),
                                                                ("day", "$x{%F}")], formatters={"$x": "datetime"}))
        self.figure = chart

    def update(self, days: list[Any]) -> None:
        """Show ``DailyWorkflowStats`` rows."""
        colors = workflow_colors(day.workflow for day in days)
        for source, field in ((self.p50, "p50_duration"), (self.p95, "p95_duration")):
            series: dict[str, tuple[list, list]] = {}
            for day in days:
                value = getattr(day, field)
                if value is not None:
                    xs, ys = series.setdefault(day.workflow, ([], []))
                    xs.append(datetime(day.day.year, day.day.month, day.day.day, 12))
                    ys.append(value)
            names = sorted(series)
            source.data = {"xs": [series[name][0] for name in names], "ys": [series[name][1] for name in names],
                           "workflow": names, "color": [colors[name] for name in names],
                           "days": [len(series[name][0]) for name in names]}


class TrendChart:
    """One workflow's daily p50/p95/mean duration and its runs per day."""

    def __init__(self) -> None:
        self.source = ColumnDataSource({"day": [], "p50": [], "p95": [], "mean": [], "runs": [], "success": []},
                                       name="trend")
        chart = _figure("Duration trend (per day)", x_axis_type="datetime")
        chart.yaxis.axis_label = "seconds"
        chart.varea("day", "p50", "p95", source=self.source, fill_color="#1565c0", fill_alpha=0.12,
                    legend_label="p50–p95")
        line = chart.line("day", "p50", source=self.source, color="#1565c0", line_width=2, legend_label="p50")
        chart.line("day", "p95", source=self.source, color="#1565c0", line_dash="dashed", legend_label="p95")
        chart.line("day", "mean", source=self.source, color="#6d4c41", line_dash="dotted", legend_label="mean")
        chart.scatter("day", "p50", source=self.source, color="#1565c0", size=5)
        chart.legend.location = "top_left"
        chart.legend.click_policy = "hide"
        chart.add_tools(HoverTool(renderers=[line], mode="vline", formatters={"@day": "datetime"}, tooltips=[
            ("day", "@day{%F}"), ("runs", "@runs"), ("success", "@success{0.0%}"), ("p50", "@p50{0.00} s"),
            ("p95", "@p95{0.00} s"), ("mean", "@mean{0.00} s")]))
        self.figure = chart

    def update(self, days: list[Any]) -> None:
        days = sorted(days, key=lambda day: day.day)
        self.source.data = {
            "day": [datetime(day.day.year, day.day.month, day.day.day, 12) for day in days],
            "p50": [_nan(day.p50_duration) for day in days], "p95": [_nan(day.p95_duration) for day in days],
            "mean": [_nan(day.mean_duration) for day in days], "runs": [day.runs for day in days],
            "success": [day.success_rate for day in days]}


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


class StageBoxChart:
    """Per-stage duration box plots: box p25–p75, median line, whiskers p5–p95 (numbers from SQL)."""

    COLUMNS = ("stage", "min", "p05", "p25", "p50", "p75", "p95", "max", "mean", "attempts", "failed", "retried")

    def __init__(self) -> None:
        self.source = ColumnDataSource({column: [] for column in self.COLUMNS}, name="stage-boxes")
        chart = _figure("Stage durations (box p25–p75, whiskers p5–p95)", tools="box_zoom,reset,save",
                        x_range=FactorRange())
        chart.yaxis.axis_label = "seconds"
        chart.segment("stage", "p05", "stage", "p25", source=self.source, color="#546e7a")
        chart.segment("stage", "p75", "stage", "p95", source=self.source, color="#546e7a")
        for field in ("p05", "p95"):
            chart.segment(dodge("stage", -0.12, range=chart.x_range), field, dodge("stage", 0.12, range=chart.x_range),
                          field, source=self.source, color="#546e7a")
        box = chart.vbar("stage", 0.5, "p75", "p25", source=self.source, fill_color="#90caf9", line_color="#1565c0")
        chart.segment(dodge("stage", -0.25, range=chart.x_range), "p50", dodge("stage", 0.25, range=chart.x_range),
                      "p50", source=self.source, color="#0d47a1", line_width=2)
        chart.add_tools(HoverTool(renderers=[box], tooltips=[
            ("stage", "@stage"), ("attempts", "@attempts (failed @failed, retries @retried)"),
            ("p5 / p25 / p50", "@p05{0.00} / @p25{0.00} / @p50{0.00} s"), ("p75 / p95", "@p75{0.00} / @p95{0.00} s"),
            ("min / mean / max", "@min{0.00} / @mean{0.00} / @max{0.00} s")]))
        self.figure = chart

    def update(self, stages: list[Any]) -> None:
        """Show ``StageStats`` rows of one workflow (already in stage order)."""
        self.figure.x_range.factors = [stage.stage for stage in stages]
        self.source.data = {
            "stage": [stage.stage for stage in stages], "min": [_nan(stage.min_duration) for stage in stages],
            **{f"p{q:02d}": [_nan(getattr(stage, f"p{q:02d}_duration")) for stage in stages] for q in (5, 25, 50, 75, 95)},
            "max": [_nan(stage.max_duration) for stage in stages], "mean": [_nan(stage.mean_duration) for stage in stages],
            "attempts": [stage.attempts for stage in stages], "failed": [stage.failed for stage in stages],
            "retried": [stage.retried for stage in stages]}


class RateChart:
    """Horizontal bars of a rate per category (stage failure rates, failing items)."""

    def __init__(self, title: str, name: str, color: str, tooltips: list[tuple[str, str]], *, percent: bool) -> None:
        self.source = ColumnDataSource({"label": [], "value": [], "count": [], "total": []}, name=name)
        chart = _figure(title, height=240, y_range=FactorRange(), tools="save")
        bars = chart.hbar("label", 0.6, "value", source=self.source, color=color)
        if percent:
            chart.xaxis.formatter = NumeralTickFormatter(format="0%")
        chart.x_range.start = 0
        chart.ygrid.grid_line_color = None
        chart.add_tools(HoverTool(renderers=[bars], tooltips=tooltips))
        self.figure = chart

    def update(self, labels: list[str], values: list[float], counts: list[int], totals: list[int]) -> None:
        self.figure.y_range.factors = list(reversed(labels))
        self.source.data = {"label": labels, "value": values, "count": counts, "total": totals}


class GanttChart:
    """A run's stage attempts on a time axis: one row per stage, one bar per attempt (retries side by side)."""

    def __init__(self) -> None:
        self.source = ColumnDataSource({"stage": [], "attempt": [], "state": [], "start": [], "end": [], "color": [],
                                        "duration": [], "label": [], "error": [], "running": []}, name="gantt")
        chart = _figure("Stage attempts", height=300, x_axis_type="datetime", y_range=FactorRange())
        bars = chart.hbar(y="stage", left="start", right="end", height=0.6, color="color", source=self.source,
                          line_color="#263238", line_width=0.5, hatch_pattern="running", hatch_alpha=0.25)
        chart.text(x="start", y="stage", text="label", source=self.source, text_font_size="10px", x_offset=3,
                   text_baseline="middle", text_color="white")
        chart.ygrid.grid_line_color = None
        chart.add_tools(HoverTool(renderers=[bars], formatters={"@start": "datetime", "@end": "datetime"}, tooltips=[
            ("stage", "@stage"), ("attempt", "@attempt"), ("state", "@state"), ("start", "@start{%F %T.%3N}"),
            ("end", "@end{%F %T.%3N}"), ("duration", "@duration{0.000} s"), ("error", "@error")]))
        self.figure = chart

    def update(self, attempts: list[Any], order: list[str], now: datetime) -> None:
        """Show ``StageAttempt`` rows; ``order`` is the stage order; unfinished attempts end at ``now``."""
        rows = [attempt for attempt in attempts if attempt.started_at is not None]
        retried = {attempt.stage for attempt in attempts if attempt.attempt > 1}
        self.figure.y_range.factors = list(reversed([stage for stage in order if any(a.stage == stage for a in rows)]))
        ends = [_naive(attempt.finished_at or now) for attempt in rows]
        self.source.data = {
            "stage": [attempt.stage for attempt in rows], "attempt": [attempt.attempt for attempt in rows],
            "state": [attempt.state for attempt in rows], "start": [_naive(attempt.started_at) for attempt in rows],
            "end": ends, "color": [STATE_COLORS.get(attempt.state, "#757575") for attempt in rows],
            "duration": [(end - _naive(attempt.started_at)).total_seconds() for attempt, end in zip(rows, ends)],
            "label": [f"#{attempt.attempt}" if attempt.stage in retried else "" for attempt in rows],
            "error": [(attempt.error or {}).get("message", "") for attempt in rows],
            "running": [" " if attempt.finished_at else "/" for attempt in rows]}


class LatenessChart:
    """Each schedule firing's lateness (log scale) at its schedule time; late ones orange, failed red,
    missed times as red crosses on the bottom edge; the dashed line is the lateness counted as late."""

    FLOOR = 1e-4  # seconds: on time

    def __init__(self) -> None:
        self.source = ColumnDataSource({"scheduled": [], "lateness": [], "shown": [], "trigger": [], "outcome": [],
                                        "color": []}, name="lateness")
        self.missed = ColumnDataSource({"scheduled": [], "trigger": [], "shown": []}, name="missed")
        chart = _figure("Schedule firings: lateness (log scale)", height=260, x_axis_type="datetime",
                        y_axis_type="log", y_range=Range1d(self.FLOOR / 2, 3600))
        chart.yaxis.axis_label = "seconds late"
        dots = chart.scatter("scheduled", "shown", color="color", size=7, alpha=0.8, source=self.source)
        crosses = chart.scatter("scheduled", "shown", marker="x", color="#c62828", size=12, line_width=2,
                                source=self.missed, legend_label="missed")
        self.threshold = Span(location=1.0, dimension="width", line_dash="dashed", line_color="#ef6c00")
        chart.add_layout(self.threshold)
        chart.legend.location = "top_left"
        chart.add_tools(HoverTool(renderers=[dots], formatters={"@scheduled": "datetime"}, tooltips=[
            ("trigger", "@trigger"), ("scheduled", "@scheduled{%F %T} UTC"), ("late by", "@lateness{0.000} s"),
            ("outcome", "@outcome")]))
        chart.add_tools(HoverTool(renderers=[crosses], formatters={"@scheduled": "datetime"}, tooltips=[
            ("trigger", "@trigger"), ("missed", "@scheduled{%F %T} UTC")]))
        self.figure = chart

    def update(self, firings: list[Any], missed: list[Any], late_after: float) -> None:
        scheduled = [firing for firing in firings if firing.scheduled_at is not None]
        self.threshold.location = max(late_after, self.FLOOR)
        self.source.data = {
            "scheduled": [_naive(firing.scheduled_at) for firing in scheduled],
            "lateness": [firing.lateness for firing in scheduled],
            "shown": [max(firing.lateness, self.FLOOR) for firing in scheduled],
            "trigger": [firing.trigger for firing in scheduled],
            "outcome": [outcome(firing) for firing in scheduled],
            "color": [OUTCOME_COLORS[outcome(firing)] for firing in scheduled]}
        self.missed.data = {"scheduled": [_naive(miss.scheduled_at) for miss in missed],
                            "trigger": [miss.trigger for miss in missed], "shown": [self.FLOOR] * len(missed)}


OUTCOME_COLORS = {"on time": "#2e7d32", "late": "#ef6c00", "failed": "#c62828", "missed": "#c62828"}


def outcome(firing: Any) -> str:
    """``failed``, ``late`` or ``on time`` (a failed firing is failed however late)."""
    if not firing.ok:
        return "failed"
    return "late" if firing.late else "on time"
