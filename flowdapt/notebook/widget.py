"""A live ipywidgets view of a workflow run, and how runs display in Jupyter.

:class:`RunView` renders a :class:`~flowdapt.resources.models.WorkflowRun` record: the run's state
and elapsed time, one row per stage (state, elapsed time, a progress bar for stages that map over
items), the result or the error with its failing stage, and the lines its stages printed and logged
(the latest :data:`LOG_LINES_SHOWN`, under a "logs" section). It is fed by engine events (throttled)
and by :meth:`RunView.follow`, which re-reads the record (and, for runs of a server, its new log
lines) until the run ends. Events arrive on runner and worker threads; ipywidgets sends the changes
to the frontend from any thread.
"""

from __future__ import annotations

import html
import threading
import time
from collections import deque
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

import ipywidgets as widgets

from flowdapt.events import Event, ItemsProgress, RunEvent, StageLogs
from flowdapt.history.models import LogLine
from flowdapt.resources.models import StageRun, WorkflowRun

_COLORS = {"pending": "#888", "running": "#1f6feb", "finished": "#1a7f37", "cached": "#1a7f37", "failed": "#cf222e",
           "cancelled": "#9a6700", "skipped": "#888", "interrupted": "#9a6700"}
LOG_LINES_SHOWN = 200
_LOG_STYLE = "max-height:16em;overflow:auto;margin:0;font-size:var(--jp-code-font-size,12px)"


def _elapsed(started: datetime | None, finished: datetime | None) -> str:
    if started is None:
        return ""
    end = finished or datetime.now(timezone.utc)
    return f"{(end - started).total_seconds():.1f}s"


def _badge(state: str) -> str:
    return f'<span style="color:{_COLORS.get(state, "#888")};font-weight:bold">{state}</span>'


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_summary(run: WorkflowRun) -> str:
    """The run as plain text: a header line and one line per stage (used outside Jupyter)."""
    lines = [f"{run.workflow} {run.name}: {run.state} {_elapsed(run.started_at, run.finished_at)}".rstrip()]
    for stage in run.stages:
        items = f" {stage.items_done}/{stage.items_total}" if stage.items_total is not None else ""
        lines.append(f"  {stage.name}: {stage.state}{items} {_elapsed(stage.started_at, stage.finished_at)}".rstrip())
    if run.error is not None:
        lines.append(f"  error: {run.error}")
    elif run.state == "finished":
        lines.append(f"  result: {_short(run.result)}")
    return "\n".join(lines)


class StageRow(widgets.HBox):
    """One stage: a label with state and elapsed time, and a progress bar for mapped items."""

    def __init__(self, stage: StageRun) -> None:
        self.label = widgets.HTML(layout=widgets.Layout(width="60%"))
        self.bar = widgets.IntProgress(min=0, max=1, value=0, layout=widgets.Layout(width="35%", visibility="hidden"))
        super().__init__([self.label, self.bar])
        self.name = stage.name

    def show(self, stage: StageRun) -> None:
        items = ""
        if stage.items_total is not None:
            self.bar.max = max(stage.items_total, 1)
            self.bar.value = stage.items_done + stage.items_failed
            self.bar.bar_style = "danger" if stage.items_failed else ("success" if stage.state == "finished" else "")
            self.bar.layout.visibility = "visible"
            failed = f", {stage.items_failed} failed" if stage.items_failed else ""
            items = f" · {stage.items_done}/{stage.items_total} items{failed}"
        elapsed = _elapsed(stage.started_at, stage.finished_at)
        link = f' · <code>{html.escape(stage.output_notebook)}</code>' if stage.output_notebook else ""
        self.label.value = (f"<code>{html.escape(stage.name)}</code> {_badge(stage.state)}{items}"
                            f"{' · ' + elapsed if elapsed else ''}{link}")


class RunView(widgets.VBox):
    """The view of one run; call :meth:`show` with the record, or feed it events with :meth:`on_event`.

    Parameters
    ----------
    run : the run to show at once (optional)
    min_interval : progress events closer than this (seconds) are not rendered one by one
    """

    def __init__(self, run: WorkflowRun | None = None, min_interval: float = 0.1) -> None:
        self.status = widgets.HTML()
        self.outcome = widgets.HTML()
        self.rows: dict[str, StageRow] = {}
        self._stages_box = widgets.VBox()
        self.log_text = widgets.HTML()
        self.logs = widgets.Accordion([self.log_text], layout=widgets.Layout(display="none"))
        self.log_lines: deque[str] = deque(maxlen=LOG_LINES_SHOWN)
        self.log_count = 0
        super().__init__([self.status, self._stages_box, self.outcome, self.logs])
        self.uid: str | None = None
        self.min_interval = min_interval
        self._last = 0.0
        self._lock = threading.Lock()
        if run is not None:
            self.show(run)

    def show(self, run: WorkflowRun) -> None:
        """Render ``run`` as it stands now."""
        with self._lock:
            self._render(run)

    def _render(self, run: WorkflowRun) -> None:
        self.uid = run.uid
        if [stage.name for stage in run.stages] != list(self.rows):
            self.rows = {stage.name: StageRow(stage) for stage in run.stages}
            self._stages_box.children = tuple(self.rows.values())
        for stage in run.stages:
            self.rows[stage.name].show(stage)
        self.status.value = (f"<b>{html.escape(run.workflow)}</b> <code>{html.escape(run.name)}</code> "
                             f"{_badge(run.state)} {_elapsed(run.started_at, run.finished_at)}")
        if run.error is not None:
            where = f" in stage <code>{html.escape(run.error.stage)}</code>" if run.error.stage else ""
            self.outcome.value = (f"<span style='color:{_COLORS['failed']}'>error{where}: "
                                  f"{html.escape(run.error.type)}: {html.escape(run.error.message)}</span>")
        elif run.state == "finished":
            self.outcome.value = f"result: <code>{html.escape(_short(run.result))}</code>"
        else:
            self.outcome.value = ""

    def show_logs(self, lines: Iterable[LogLine]) -> None:
        """Add captured lines to the logs section (which shows once there are some)."""
        with self._lock:
            before = self.log_count
            for line in lines:
                self.log_lines.append(line.render())
                self.log_count += 1
            if self.log_count == before:
                return
            shown = "" if self.log_count <= LOG_LINES_SHOWN else f", the last {LOG_LINES_SHOWN}"
            self.logs.set_title(0, f"logs · {self.log_count} line{'s' if self.log_count != 1 else ''}{shown}")
            self.log_text.value = f"<pre style='{_LOG_STYLE}'>{html.escape(chr(10).join(self.log_lines))}</pre>"
            self.logs.layout.display = ""

    def on_event(self, event: Event) -> None:
        """Event listener: re-render on run and stage events; progress events are throttled."""
        if not isinstance(event, RunEvent) or (self.uid is not None and event.run.uid != self.uid):
            return
        if isinstance(event, StageLogs):
            self.show_logs(LogLine(seq=seq, stage=event.stage.name, attempt=event.attempt,
                                   time=datetime.fromtimestamp(line[0], timezone.utc), stream=line[1],
                                   level=line[2], logger=line[3], message=line[4])
                           for seq, line in enumerate(event.lines, event.first))
            return
        now = time.monotonic()
        if isinstance(event, ItemsProgress) and now - self._last < self.min_interval:
            return
        self._last = now
        self.show(event.run)

    def follow(self, current: Callable[[], WorkflowRun], interval: float = 0.25,
               logs: Callable[[int], list[LogLine]] | None = None,
               on_end: Callable[[], None] | None = None) -> threading.Thread:
        """Re-render ``current()`` every ``interval`` seconds in a thread until the run has ended (then call
        ``on_end``); ``logs(after)`` gives the lines numbered after ``after`` (a run of a server, whose
        events do not reach this process)."""

        def loop() -> None:
            try:
                watch()
            finally:
                if on_end is not None:
                    on_end()

        def watch() -> None:
            after = -1
            while True:
                run = current()
                self.show(run)
                if logs is not None:
                    try:
                        lines = logs(after)
                    except Exception:  # noqa: BLE001 - the view goes on without the lines it could not read
                        lines = []
                    if lines:
                        after = lines[-1].seq
                        self.show_logs(lines)
                if run.done:
                    run.wait(1.0)  # a run of this process: until its last events (its last lines) are out
                    return
                time.sleep(interval)

        thread = threading.Thread(target=loop, name="flowdapt-run-view", daemon=True)
        thread.start()
        return thread

    def __repr__(self) -> str:
        return f"RunView({self.uid})"
