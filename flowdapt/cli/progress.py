"""A live progress bar for ``flowctl run`` on a terminal (rich)."""

from __future__ import annotations

from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from flowdapt.events import Event, ItemsProgress, RunStarted, StageFailed, StageFinished, StageStarted


class RunProgress:
    """Event listener that shows stages done and, for parameterized stages, items done."""

    def __init__(self, workflow: str, stages: int) -> None:
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), transient=True)
        self.overall = self.progress.add_task(f"{workflow}", total=stages)
        self.items: dict[str, Any] = {}

    def __enter__(self) -> "RunProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.progress.update(self.overall, description=f"{event.run.workflow} ({event.run.name})")
        elif isinstance(event, ItemsProgress) and event.stage.items_total:
            name = event.stage.name
            if name not in self.items:
                self.items[name] = self.progress.add_task(f"  {name}", total=event.stage.items_total)
            self.progress.update(self.items[name], completed=event.stage.items_done + event.stage.items_failed)
        elif isinstance(event, (StageFinished, StageFailed)):
            done = sum(1 for stage in event.run.stages if stage.state in ("finished", "failed", "cancelled"))
            self.progress.update(self.overall, completed=done)
        elif isinstance(event, StageStarted):
            self.progress.update(self.overall, description=f"{event.run.workflow}: {event.stage.name}")
