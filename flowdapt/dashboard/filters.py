"""The dashboard's state that lives in the URL: filters (workflow, state, source, time range), the tab,
the run and trigger shown, so a view can be shared by copying its address.

``?workflow=etl&state=failed&range=30d&tab=workflow`` opens the workflow view of ``etl`` on its
failed runs of the last 30 days; ``?run=<uid or name>`` opens a run. Unknown or malformed values are
dropped with a message (the page still opens) rather than failing the page.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, get_args
from urllib.parse import urlencode

import param

from flowdapt.history.models import RunSource
from flowdapt.resources.models import RunState

STATES = get_args(RunState)
SOURCES = get_args(RunSource)
TABS = ("overview", "workflow", "run", "triggers", "runs")
RANGES: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30),
    "90d": timedelta(days=90), "365d": timedelta(days=365), "all": None, "custom": None,
}
RANGE_LABELS = {"1h": "last hour", "24h": "last 24 hours", "7d": "last 7 days", "30d": "last 30 days",
                "90d": "last 90 days", "365d": "last year", "all": "all time", "custom": "custom range"}
LIMITS = (100, 1000, 10_000)
HOURLY_UP_TO = timedelta(days=3)  # "auto" buckets: hours for windows up to this long, days beyond


class Filters(param.Parameterized):
    """What the dashboard shows; every parameter is a URL query parameter of the same name."""

    workflow = param.String(default="", doc="Only runs of this workflow ('' for all).")
    state = param.Selector(default="", objects=["", *STATES], doc="Only runs in this state.")
    source = param.Selector(default="", objects=["", *SOURCES], doc="Only runs started this way.")
    range = param.Selector(default="7d", objects=list(RANGES), doc="The time window, back from now.")
    since = param.String(default="", doc="Start of a custom window (ISO 8601, UTC if no zone).")
    until = param.String(default="", doc="End of a custom window (ISO 8601).")
    bucket = param.Selector(default="auto", objects=["auto", "hour", "day"], doc="Timeline bucket size.")
    tab = param.Selector(default="overview", objects=list(TABS), doc="The view shown.")
    run = param.String(default="", doc="The run shown in the run view (uid or name).")
    trigger = param.String(default="", doc="Only firings of this trigger ('' for all).")
    late_after = param.Number(default=1.0, bounds=(0, None), doc="Seconds after which a firing is late.")
    limit = param.Selector(default=1000, objects=list(LIMITS), doc="How many of the newest runs the Runs tab lists.")

    QUERY = ("workflow", "state", "source", "range", "since", "until", "bucket", "tab", "run", "trigger", "late_after",
             "limit")

    @classmethod
    def from_query(cls, args: dict[str, Any]) -> tuple["Filters", list[str]]:
        """Filters from URL query arguments (lists of bytes or str, as Bokeh hands them over), and one
        message per value that was dropped."""
        filters, problems = cls(), []
        for name in cls.QUERY:
            if name not in args:
                continue
            raw = args[name]
            value = raw[-1] if isinstance(raw, (list, tuple)) else raw
            value = value.decode() if isinstance(value, bytes) else str(value)
            try:
                filters.param.update({name: _typed(name, value)})
                if name in ("since", "until") and value:
                    parse_time(value)
            except ValueError as exc:
                filters.param.update({name: cls.param[name].default})
                problems.append(f"ignored {name}={value!r}: {str(exc).splitlines()[0]}")
        if "run" in args and "tab" not in args:
            filters.tab = "run"  # ?run=<uid> opens on the run
        if ("since" in args or "until" in args) and "range" not in args:
            filters.range = "custom"
        return filters, problems

    def to_query(self) -> str:
        """The URL query string of the values that differ from the defaults (``""`` when none)."""
        values = {name: getattr(self, name) for name in self.QUERY
                  if getattr(self, name) != self.param[name].default}
        if self.range != "custom":
            values.pop("since", None)
            values.pop("until", None)
        return urlencode(values)

    def window(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        """``(since, until)`` of the time window at ``now`` (``None``: open)."""
        if self.range == "custom":
            return (parse_time(self.since) if self.since else None, parse_time(self.until) if self.until else None)
        span = RANGES[self.range]
        return (now - span if span is not None else None), None

    def history_params(self, now: datetime) -> dict[str, Any]:
        """The filters as the statistics take them (``workflow state source since until``), blanks left out."""
        since, until = self.window(now)
        values = {"workflow": self.workflow, "state": self.state, "source": self.source, "since": since, "until": until}
        return {key: value for key, value in values.items() if value not in ("", None)}

    def bucket_for(self, now: datetime) -> str:
        """``hour`` or ``day``: as chosen, or for ``auto`` hours when the window is at most three days."""
        if self.bucket != "auto":
            return self.bucket
        since, until = self.window(now)
        return "hour" if since is not None and (until or now) - since <= HOURLY_UP_TO else "day"


def _typed(name: str, text: str) -> Any:
    if name == "late_after":
        return float(text)
    return int(text) if name == "limit" else text


def parse_time(text: str) -> datetime:
    """An ISO 8601 time; one without a zone is UTC."""
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value
