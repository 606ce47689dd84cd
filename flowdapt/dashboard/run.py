"""One run: its state and error, a Gantt timeline of its stage attempts (retries side by side), its
stages with their output notebooks, and a link to the run's view in Lab. A run that has not ended is
refreshed at every poll."""

from __future__ import annotations

import html
from typing import Any, Callable

import panel as pn

from flowdapt.dashboard.charts import STATE_COLORS, GanttChart
from flowdapt.dashboard.parts import Context, Links, link_formatter, seconds, show_rows, table, when

PROMPT = ("### Pick a run\nClick a run in the *Overview* or *Runs* tab, or enter a run's uid or name above "
          "(`?run=<uid>` in the address opens it directly).")


class RunView:
    """The run view; ``navigate(run=...)`` is called when a run is entered."""

    title = "Run"

    def __init__(self, navigate: Callable[..., None], links: Links) -> None:
        self.links = links
        self.live = False
        self.entry = pn.widgets.TextInput(placeholder="run uid or name", width=320, label="Run")
        self.entry.param.watch(lambda event: event.new and navigate(run=event.new.strip(), tab="run"), "value")
        self.heading = pn.pane.HTML(PROMPT, sizing_mode="stretch_width")
        self.gantt = GanttChart()
        columns = {"stage": "Stage", "type": "Type", "state": "State", "attempts": "Attempts", "started": "Started (UTC)",
                   "duration": "Duration", "items": "Items (failed)"}
        formatters = {}
        if links.root:
            columns["notebook"] = "Output notebook"
            formatters["notebook"] = link_formatter("notebook_url")
        self.stages = table("run-stages", columns, hidden=("notebook_url",), formatters=formatters, max_height=240)
        self.panel = pn.Column(self.entry, self.heading, pn.pane.Bokeh(self.gantt.figure, sizing_mode="stretch_width"),
                               "#### Stages", self.stages, sizing_mode="stretch_width")

    @staticmethod
    def queries(context: Context) -> dict[str, Callable[[], Any]]:
        """The run (by uid or name) and every attempt of its stages, read together."""
        identifier, source = context.filters.run, context.source
        if not identifier:
            return {}
        return {"run": lambda: source.get_run(identifier), "attempts": lambda: source.stage_attempts(identifier)}

    def show(self, context: Context, found: dict[str, Any]) -> None:
        """Show what :meth:`queries` read."""
        if not found:
            self.live = False
            self.heading.object = PROMPT
            return
        if self.entry.value != context.filters.run:
            self.entry.value = context.filters.run
        run, attempts = found["run"], found["attempts"]
        self.live = not run.done
        self.heading.object = self._heading(run)
        self.gantt.update(attempts, [stage.name for stage in run.stages], context.now)
        show_rows(self.stages, [self._stage_row(run, stage) for stage in run.stages])

    def _heading(self, run: Any) -> str:
        color = STATE_COLORS.get(run.state, "#757575")
        lab = self.links.lab_run(run.uid)
        parts = [f'<h3 style="margin:0">{html.escape(run.name)} '
                 f'<span style="background:{color};color:#fff;border-radius:4px;padding:1px 8px;font-size:13px" '
                 f'data-run-state="{html.escape(run.state)}">{html.escape(run.state)}</span></h3>',
                 f'<div>workflow <b>{html.escape(run.workflow)}</b> · source {html.escape(run.source)} · executor '
                 f'{html.escape(str(run.executor))} · started {when(run.started_at) or "not yet"} UTC · duration '
                 f'{seconds(run.duration)} · uid <code>{html.escape(run.uid)}</code>'
                 + (f' · <a href="{html.escape(lab)}" target="_blank" data-link="lab">open in Lab</a>' if lab else "")
                 + "</div>"]
        if run.error is not None:
            parts.append(f'<div style="color:#c62828;margin-top:6px"><b>{html.escape(run.error.type)}</b>: '
                         f'{html.escape(run.error.message)}'
                         + (f" (stage {html.escape(run.error.stage)})" if run.error.stage else "") + "</div>"
                         + (f"<details><summary>traceback</summary><pre>{html.escape(run.error.traceback)}</pre>"
                            "</details>" if run.error.traceback else ""))
        return "".join(parts)

    def _stage_row(self, run: Any, stage: Any) -> dict[str, Any]:
        notebook = self.links.notebook(run.uid, stage.name) if stage.type == "notebook" or stage.output_notebook else None
        items = (f"{stage.items_done}/{stage.items_total} ({stage.items_failed})" if stage.items_total is not None
                 else "")
        return {"stage": stage.name, "type": stage.type, "state": stage.state, "attempts": stage.attempts,
                "started": when(stage.started_at), "duration": seconds(stage.duration), "items": items,
                "notebook": "open" if notebook else "", "notebook_url": notebook}
