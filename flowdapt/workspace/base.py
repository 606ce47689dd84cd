"""What ``flowctl`` and the ``%flowdapt`` magics act on: a backend with one method per operation."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any, Callable

from flowdapt.events import Event
from flowdapt.history.models import LogLine, RunQuery
from flowdapt.resources.models import Resource, WorkflowRun


class Backend(ABC):
    """The operations behind ``flowctl`` (and ``%flowdapt``), local or remote."""

    mode: str = ""

    @abstractmethod
    def apply(self, resources: list[Resource]) -> list[tuple[Resource, str]]:
        """Create or update all resources at once; (resource, created|updated|unchanged) each."""

    @abstractmethod
    def get(self, kind: str, identifier: str) -> Resource:
        """One resource by name or uid."""

    @abstractmethod
    def list(self, kind: str) -> list[Resource]:
        """Every resource of a kind."""

    @abstractmethod
    def delete(self, kind: str, identifiers: list[str]) -> list[Resource]:
        """Delete resources by name or uid, all or none."""

    @abstractmethod
    def list_runs(self, query: RunQuery) -> list[WorkflowRun]:
        """Runs newest first."""

    @abstractmethod
    def get_run(self, identifier: str) -> WorkflowRun:
        """One run with its stages."""

    @abstractmethod
    def run(self, workflow: str, input: dict[str, Any], *, wait: bool, executor: str | None,
            namespace: str | None, on_event: Callable[[Event], None] | None = None,
            source: str = "manual", uid: str | None = None) -> WorkflowRun:
        """Start a workflow by name or uid; with ``wait``, return once it has ended. ``on_event`` sees the
        events of a run in this process; ``uid`` is the run's when the caller chose it (local runs)."""

    @abstractmethod
    def cancel(self, identifier: str) -> WorkflowRun:
        """Ask a running run to stop."""

    @abstractmethod
    def set_trigger_enabled(self, identifier: str, enabled: bool) -> Resource:
        """Enable or disable a trigger."""

    @abstractmethod
    def trigger_status(self, identifier: str) -> dict[str, Any]:
        """``enabled``, ``last_fire_time``, ``next_fire_time`` of a trigger."""

    @abstractmethod
    def trigger_firings(self, identifier: str, limit: int) -> list[dict[str, Any]]:
        """The latest firings of a trigger, newest first."""

    @abstractmethod
    def follow(self, run: WorkflowRun, timeout: float) -> WorkflowRun:
        """``run`` as it is after at most ``timeout`` seconds, sooner if it ends (to wait interruptibly)."""

    @abstractmethod
    def status(self) -> dict[str, Any]:
        """What is configured and how much is stored."""

    def plugins(self) -> list[Any]:
        """The plugin packages installed where the workflows run (here, for the local backend)."""
        from flowdapt.plugins import installed_plugins

        return installed_plugins()

    @abstractmethod
    def logs(self, identifier: str, *, stage: str | None = None, attempt: int | None = None, after: int = -1,
             limit: int = 10_000) -> list[LogLine]:
        """What a run's stages printed and logged so far: the lines numbered after ``after``."""

    @abstractmethod
    def rerun(self, identifier: str, *, wait: bool, executor: str | None,
              on_event: Callable[[Event], None] | None = None, uid: str | None = None) -> WorkflowRun:
        """Run a run's workflow version again with its input (recorded as ``rerun_of``)."""

    @abstractmethod
    def resume(self, identifier: str, *, wait: bool, executor: str | None,
               on_event: Callable[[Event], None] | None = None, uid: str | None = None) -> WorkflowRun:
        """Resume a failed or cancelled run: stages it finished reused where their outputs were kept."""

    @abstractmethod
    def backfill(self, trigger: str, start: datetime, end: datetime, *, concurrency: int,
                 wait: bool) -> dict[str, Any]:
        """Fire a schedule's action once for each of its due times in ``[start, end]`` not fired yet."""

    @abstractmethod
    def clear_cache(self, workflow: str | None, stage: str | None) -> int:
        """Delete result-cache entries; how many."""

    def save_stage_module(self, module: str, source: str) -> None:
        """Store a ``%%flowdapt stage`` cell's module where this backend's runs import it."""
        from flowdapt.notebook.cell_stage import save_stage_module

        save_stage_module(module, source)

    def close(self) -> None:
        """Release what the backend holds (the local one writes out the history)."""
