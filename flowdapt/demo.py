"""``python -m flowdapt.demo``: run the example workflows of ``templates/`` headless and print the runs.

Loads and applies every resource in the templates folder, runs ``hello`` and the fan-out ``train``
workflow on the local executor, then every workflow a condition trigger starts in answer to a
finished run (``predict-after-train`` runs ``predict``). Prints a table of runs and one of stages;
exits 1 if a run did not finish.
"""

from __future__ import annotations

import argparse
import sys
from collections import deque
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import flowdapt
from flowdapt.compute.executors.local import LocalExecutor
from flowdapt.events.models import RunFinished
from flowdapt.resources.catalog import get_catalog, list_triggers
from flowdapt.resources.models import WorkflowRun
from flowdapt.triggers.conditions import evaluate

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
PLAN: tuple[tuple[str, dict[str, Any]], ...] = (("hello", {"name": "flowdapt"}), ("train", {"cities": 12}))
MAX_RUNS = 10  # a trigger that answers its own workflow's runs would otherwise loop forever


def triggered_by(run: WorkflowRun) -> list[tuple[str, str, dict[str, Any]]]:
    """(trigger, workflow, input) of each enabled condition trigger the run's finish event matches."""
    event = RunFinished(run=run).to_dict()
    started = []
    for trigger in list_triggers():
        spec = trigger.spec
        if spec.enabled and spec.type == "condition" and spec.action.target == "run_workflow" \
                and evaluate(spec.rule, event):
            parameters = spec.action.parameters
            started.append((trigger.name, parameters["workflow"], dict(parameters.get("input") or {})))
    return started


def summary(value: Any, width: int = 60) -> str:
    """A one-line, shortened ``repr`` of a run result."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.3f} s"


def run_table(runs: list[WorkflowRun]) -> Table:
    table = Table(title="Runs")
    for column in ("run", "workflow", "source", "state", "duration"):
        table.add_column(column, no_wrap=True)
    table.add_column("result", overflow="ellipsis", no_wrap=True)
    for run in runs:
        outcome = summary(run.result) if run.state == "finished" else str(run.error or "")
        style = "green" if run.state == "finished" else "red"
        table.add_row(run.name, run.workflow, run.source, f"[{style}]{run.state}[/]", seconds(run.duration), outcome)
    return table


def stage_table(runs: list[WorkflowRun]) -> Table:
    table = Table(title="Stages")
    for column in ("run", "stage", "type", "state", "attempts", "duration", "items"):
        table.add_column(column, no_wrap=True)
    for run in runs:
        for stage in run.stages:
            items = "" if stage.items_total is None else f"{stage.items_done}/{stage.items_total}"
            if stage.items_failed:
                items += f" ({stage.items_failed} failed)"
            table.add_row(run.name, stage.name, stage.type, stage.state, str(stage.attempts),
                          seconds(stage.duration), items)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowdapt.demo", description=__doc__.splitlines()[0])
    parser.add_argument("templates", nargs="?", type=Path, default=TEMPLATES, help="folder of resource files")
    parser.add_argument("--mode", choices=("threads", "processes"), default="threads",
                        help="local executor mode (default: threads)")
    args = parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 140)  # full run names in logs and pipes
    applied = get_catalog().apply(flowdapt.load(args.templates))
    console.print(f"applied {len(applied)} resources from {args.templates}: "
                  + ", ".join(f"{resource.kind}/{resource.name}" for resource, _ in applied))
    runs: list[WorkflowRun] = []
    pending = deque((workflow, input, "manual") for workflow, input in PLAN)
    with LocalExecutor(mode=args.mode) as executor:
        while pending and len(runs) < MAX_RUNS:
            workflow, input, source = pending.popleft()
            run = flowdapt.run_workflow(workflow, input, executor=executor, source=source)
            runs.append(run)
            for trigger, next_workflow, next_input in triggered_by(run):
                console.print(f"trigger [bold]{trigger}[/] matched {run.workflow} {run.state}: running {next_workflow}")
                pending.append((next_workflow, next_input, "trigger"))
    console.print(run_table(runs))
    console.print(stage_table(runs))
    failed = [run for run in runs if run.state != "finished"]
    for run in failed:
        console.print(f"[red]{run.name} ({run.workflow}) {run.state}:[/] {run.error}", highlight=False)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
