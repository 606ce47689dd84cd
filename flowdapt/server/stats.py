"""The run-history statistics for the REST API (``stats/{view}``), read in worker threads."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from flowdapt.history.stats import HistoryStats
from flowdapt.history.store import HistoryStore


class StatsService:
    """Answers the :data:`~flowdapt.history.stats.VIEWS` of the history store.

    Parameters
    ----------
    store : the open history store
    """

    def __init__(self, store: HistoryStore) -> None:
        self.store = store
        self.stats = HistoryStats(store)

    async def answer(self, view: str, query: BaseModel) -> Any:
        """The answer of ``view`` for ``query``, with every run event seen so far written first."""

        def read() -> Any:
            self.store.flush()  # read your writes: a run that just ended is counted
            return self.stats.answer(view, query)

        return await asyncio.to_thread(read)
