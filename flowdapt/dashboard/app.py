"""The dashboard: filters on the left, five views in tabs, refreshed by itself when runs change.

A :class:`Dashboard` belongs to one browser session (or one notebook output). It refreshes only the
tab on screen: a change of filters marks every tab stale and refreshes the visible one; a stale tab
refreshes when it is opened. Every ``refresh_seconds`` it asks the history's ``version`` (a count
and the newest times of runs and firings, one cheap query) and refreshes when it changed, and at
every poll while the run on screen has not ended. The filters, the tab and the run are kept in the
page's URL (:mod:`~flowdapt.dashboard.filters`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

import panel as pn

from flowdapt.dashboard.filters import RANGE_LABELS, SOURCES, STATES, TABS, Filters, parse_time
from flowdapt.dashboard.overview import OverviewView
from flowdapt.dashboard.parts import Context, Links, fetch
from flowdapt.dashboard.run import RunView
from flowdapt.dashboard.runs import RunsView
from flowdapt.dashboard.source import HistorySource
from flowdapt.dashboard.triggers import TriggersView
from flowdapt.dashboard.workflow import WorkflowView

_log = logging.getLogger("flowdapt.dashboard")
TITLE = "flowdapt · run history"
VIEWS = {"overview": OverviewView, "workflow": WorkflowView, "run": RunView, "triggers": TriggersView,
         "runs": RunsView}


class Dashboard:
    """One session's dashboard.

    Parameters
    ----------
    source : where the history is read
    links : URLs into the Jupyter server (Lab's run view, output notebooks)
    filters : the initial filters (from the URL)
    refresh_seconds : how often to look for changes (0: never)
    problems : messages about URL values that were dropped, shown once
    """

    def __init__(self, source: HistorySource, links: Links, filters: Filters | None = None, *,
                 refresh_seconds: float = 5.0, problems: list[str] | tuple[str, ...] = ()) -> None:
        self.source = source
        self.links = links
        self.filters = filters or Filters()
        self.refresh_seconds = refresh_seconds
        self.views: dict[str, Any] = {}  # built when first shown: a page holds only what was looked at
        self.slots = {name: pn.Column(sizing_mode="stretch_width") for name in TABS}
        self.stale = set(TABS)
        self.version: Any = None
        self.updated_at: datetime | None = None
        self.alert = pn.pane.Alert("\n".join(problems), alert_type="warning", visible=bool(problems),
                                   sizing_mode="stretch_width")
        self.status = pn.pane.Markdown("", sizing_mode="stretch_width", styles={"font-size": "12px"})
        self.tabs = pn.Tabs(*((VIEWS[name].title, self.slots[name]) for name in TABS),
                            active=TABS.index(self.filters.tab), sizing_mode="stretch_width", dynamic=True)
        self.tabs.param.watch(lambda event: self.navigate(tab=TABS[event.new]), "active")
        self._names: Any = fetch({"names": source.workflows})["names"]  # for the filter, read meanwhile
        self.sidebar = self._sidebar()
        self.filters.param.watch(self._filters_changed, list(Filters.QUERY))

    # -- layout --------------------------------------------------------------------------------------
    def _sidebar(self) -> pn.Column:
        filters = self.filters
        self.workflow = pn.widgets.Select(label="Workflow", options=self._workflow_options([]), value=filters.workflow)
        state = pn.widgets.Select(label="State", options={"all states": "", **{s: s for s in STATES}}, value=filters.state)
        source = pn.widgets.Select(label="Source", options={"all sources": "", **{s: s for s in SOURCES}},
                                   value=filters.source)
        window = pn.widgets.Select(label="Time range", options={label: key for key, label in RANGE_LABELS.items()},
                                   value=filters.range)
        custom = pn.widgets.DatetimeRangePicker(label="From – to (UTC)", visible=filters.range == "custom",
                                                value=self._custom_value())
        bucket = pn.widgets.RadioButtonGroup(label="Buckets", options=["auto", "hour", "day"], value=filters.bucket,
                                             color="light")
        for widget, name in ((self.workflow, "workflow"), (state, "state"), (source, "source"), (window, "range"),
                             (bucket, "bucket")):
            widget.param.watch(lambda event, name=name: self.navigate(**{name: event.new}), "value")
        custom.param.watch(self._custom_chosen, "value")
        window.param.watch(lambda event: setattr(custom, "visible", event.new == "custom"), "value")
        for name, widget in (("workflow", self.workflow), ("state", state), ("source", source), ("range", window),
                             ("bucket", bucket)):
            filters.param.watch(lambda event, widget=widget: setattr(widget, "value", event.new), name)
        self.auto = pn.widgets.Checkbox(label="refresh when runs change", value=self.refresh_seconds > 0)
        for widget in (self.workflow, state, source, window, custom):
            widget.sizing_mode = "stretch_width"
        return pn.Column(self.workflow, state, source, window, custom, pn.pane.Markdown("Timeline buckets"), bucket,
                         pn.layout.Divider(), self.auto, self.status, sizing_mode="stretch_width")

    def _custom_value(self) -> tuple[datetime, datetime] | None:
        if self.filters.range != "custom" or not (self.filters.since and self.filters.until):
            return None
        return (_naive(parse_time(self.filters.since)), _naive(parse_time(self.filters.until)))

    def _custom_chosen(self, event: Any) -> None:
        if event.new:
            since, until = event.new
            self.navigate(range="custom", since=since.isoformat(), until=until.isoformat())

    def layout(self) -> pn.Row:
        """The dashboard as one component (for notebooks)."""
        return pn.Row(pn.Column(self.sidebar, width=260), pn.Column(self.alert, self.tabs, sizing_mode="stretch_width"),
                      sizing_mode="stretch_width")

    def page(self) -> pn.template.BootstrapTemplate:
        """The dashboard as a page (served): header, filters in the sidebar, the tabs."""
        return pn.template.BootstrapTemplate(title=TITLE, sidebar=[self.sidebar], main=[self.alert, self.tabs],
                                             header_background="#263238", sidebar_width=280)

    # -- behaviour -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Show the first data and start polling (call inside the session: served page or notebook)."""
        if self.refresh_seconds > 0:
            try:
                self.version = self.source.stats("version")
            except Exception:  # noqa: BLE001 - the refresh below says what is wrong
                _log.debug("reading the history version failed", exc_info=True)
        self.refresh()
        if self.refresh_seconds > 0:
            pn.state.add_periodic_callback(self.poll, period=int(self.refresh_seconds * 1000))

    def navigate(self, **changes: Any) -> None:
        """Change filters (the URL and the views follow); without changes, refresh the tab on screen."""
        if changes:
            self.filters.param.update(changes)
        else:
            self.refresh()

    def _filters_changed(self, *events: Any) -> None:
        names = {event.name for event in events}
        if names - {"tab"}:
            self.stale = set(TABS)
        if "tab" in names:
            self.tabs.active = TABS.index(self.filters.tab)
        if "workflow" in names and self.filters.workflow not in self.workflow.options.values():
            self.workflow.options = self._workflow_options(list(self.workflow.options.values()))
        self._sync_url()
        if self.filters.tab in self.stale:
            self.refresh()

    def _sync_url(self) -> None:
        location = pn.state.location
        if location is not None and pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            query = self.filters.to_query()
            location.search = f"?{query}" if query else ""

    def view(self, tab: str) -> Any:
        """The view of ``tab``, built (and put in its tab) the first time it is asked for."""
        if tab not in self.views:
            self.views[tab] = VIEWS[tab](self.navigate, self.links)
            self.slots[tab].append(self.views[tab].panel)
        return self.views[tab]

    def refresh(self) -> None:
        """Show fresh data in the tab on screen: its queries start first and run together, while the view
        is built (the first time); then it shows their answers."""
        tab = self.filters.tab
        now = datetime.now(timezone.utc)
        context = Context(self.source, self.filters, self.links, now)
        try:
            answers = fetch(VIEWS[tab].queries(context))
            view = self.view(tab)
            view.show(context, {key: answer.result() for key, answer in answers.items()})
        except Exception as exc:  # noqa: BLE001 - a failed refresh is shown, the page stays usable
            _log.debug("refreshing %s failed", tab, exc_info=True)
            self.alert.object, self.alert.alert_type, self.alert.visible = _one_line(exc), "danger", True
            return
        if self.alert.alert_type == "danger":
            self.alert.visible = False
        self.stale.discard(tab)
        self._fill_workflows()
        self.updated_at = now
        self.status.object = f"Updated {now:%H:%M:%S} UTC from {self.source.description}"

    def poll(self) -> None:
        """Refresh when the history changed (or while the run on screen goes on)."""
        if not self.auto.value:
            return
        try:
            version = self.source.stats("version")
        except Exception as exc:  # noqa: BLE001 - the server may be restarting: say so, try again later
            self.status.object = f"Cannot reach the history: {_one_line(exc)}"
            return
        changed = version != self.version
        self.version = version
        if changed:
            self.stale = set(TABS)
        if changed or (self.filters.tab == "run" and self.view("run").live):
            self.refresh()

    def _workflow_options(self, names: list[str]) -> dict[str, str]:
        chosen = {name for name in (*names, self.filters.workflow) if name}
        return {"all workflows": "", **{name: name for name in sorted(chosen)}}

    def _fill_workflows(self) -> None:
        """Offer the defined workflows in the filter, once their list (asked for at the start) arrived."""
        if self._names is None or not self._names.done():
            return
        try:
            names = self._names.result()
        except Exception:  # noqa: BLE001 - the filter keeps the workflows it has
            _log.debug("listing workflows failed", exc_info=True)
            names = []
        self._names = None
        self.workflow.options = self._workflow_options(names)


def _naive(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
