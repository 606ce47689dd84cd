"""Where the dashboard reads run history: a flowdapt server's REST API, or else the local store.

Both sources answer the same questions with the same models: the statistics of
:mod:`flowdapt.history.stats` (``stats(view, **params)``), pages of runs, one run with its stage
attempts, and the workflow names. :func:`connect_source` picks the server when one is named or
running (so the dashboard never opens a DuckDB file a server holds) and the store otherwise.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from flowdapt.history.models import StageAttempt
from flowdapt.resources.models import WorkflowRun
from flowdapt.settings import Settings


class HistorySource(ABC):
    """What the dashboard reads; ``description`` says where from (shown in the page)."""

    description: str = ""

    @abstractmethod
    def stats(self, view: str, **params: Any) -> Any:
        """The statistic ``view`` (see :data:`flowdapt.history.stats.VIEWS`) for ``params``."""

    @abstractmethod
    def list_runs(self, **filters: Any) -> list[WorkflowRun]:
        """Runs newest first (``workflow state source since until limit offset``)."""

    @abstractmethod
    def get_run(self, identifier: str) -> WorkflowRun:
        """One run by uid or name, with the record of each stage's latest attempt."""

    @abstractmethod
    def stage_attempts(self, identifier: str) -> list[StageAttempt]:
        """Every attempt of every stage of one run."""

    @abstractmethod
    def workflows(self) -> list[str]:
        """The names of the defined workflows."""

    def close(self) -> None:
        """Release the connection or store."""


class ServerSource(HistorySource):
    """A flowdapt server, through :class:`flowdapt.client.Client`."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.description = f"server {client.url}"

    def stats(self, view: str, **params: Any) -> Any:
        return self.client.stats(view, **params)

    def list_runs(self, **filters: Any) -> list[WorkflowRun]:
        return self.client.list_runs(**filters)

    def get_run(self, identifier: str) -> WorkflowRun:
        return self.client.get_run(identifier)

    def stage_attempts(self, identifier: str) -> list[StageAttempt]:
        return [StageAttempt.model_validate(item) for item in self.client.stages(identifier)]

    def workflows(self) -> list[str]:
        return [workflow.name for workflow in self.client.list("workflow")]

    def close(self) -> None:
        self.client.close()


class StoreSource(HistorySource):
    """A history store opened in this process (no server running), read with the server's own queries.

    Parameters
    ----------
    store : an open :class:`~flowdapt.history.store.HistoryStore`
    owned : close the store with the source (the dashboard opened it)
    """

    def __init__(self, store: Any, *, owned: bool = False) -> None:
        from flowdapt.history.stats import HistoryStats
        from flowdapt.history.store import safe_url

        self.store = store
        self.owned = owned
        self.history = HistoryStats(store)
        self.description = f"local history {safe_url(store.url)}"

    def stats(self, view: str, **params: Any) -> Any:
        self.store.flush()  # runs of this process (a notebook's) are counted once recorded
        return self.history.answer(view, **params)

    def list_runs(self, **filters: Any) -> list[WorkflowRun]:
        return self.store.list_runs(**filters)

    def get_run(self, identifier: str) -> WorkflowRun:
        return self.store.get_run(identifier)

    def stage_attempts(self, identifier: str) -> list[StageAttempt]:
        return self.store.stage_attempts(identifier)

    def workflows(self) -> list[str]:
        return [workflow.name for workflow in self.store.list("workflow")]

    def close(self) -> None:
        if self.owned:
            self.store.close()


def connect_source(settings: Settings, server: str | None = None, token: str | None = None) -> HistorySource:
    """The server's history when one is named (``server``, ``FLOWDAPT_URL``) or running for the app dir,
    else the local store of ``settings`` (opened read-only: it records no runs itself)."""
    from flowdapt.workspace import server_url

    url = server_url(server, settings)
    if url is not None:
        from flowdapt.client import Client

        return ServerSource(Client(url, token, app_dir=settings.app_dir))
    from flowdapt.history import open_store

    return StoreSource(open_store(settings, listen=False), owned=True)


def as_source(source: Any) -> HistorySource:
    """A :class:`HistorySource` for a source, a :class:`~flowdapt.client.Client` or an open history store."""
    if isinstance(source, HistorySource):
        return source
    from flowdapt.client import Client

    if isinstance(source, Client):
        return ServerSource(source)
    if hasattr(source, "engine") and hasattr(source, "list_runs"):
        return StoreSource(source)
    raise TypeError(f"expected a flowdapt Client, a HistoryStore or a HistorySource, got {type(source).__name__}")
