"""Calls of a blocking function, gathered into batches that run on a thread.

Many firings claim their times at once (200 schedules due in the same second): each claim alone
would be a database transaction of its own, one after the other. A :class:`ThreadBatcher` hands the
function every item submitted in the same loop turn, or while the previous batch ran, in one call.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Generic, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class ThreadBatcher(Generic[T, R]):
    """``await submit(item)`` runs ``function(items)`` on a thread with the other items submitted meanwhile
    and returns the result for ``item``. ``function`` returns one result per item, in order (or ``None``
    for no results); when it raises, every submitter of that batch gets the exception."""

    def __init__(self, function: Callable[[Sequence[T]], Sequence[R] | None]) -> None:
        self.function = function
        self._pending: list[tuple[T, asyncio.Future[Any]]] = []
        self._draining: asyncio.Task | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._draining is None:
            self._draining = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                await asyncio.sleep(0)  # the firings started in this loop turn join the batch
                batch, self._pending = self._pending, []
                try:
                    results = await asyncio.to_thread(self.function, [item for item, _ in batch])
                except BaseException as exc:  # noqa: BLE001 - handed to the submitters
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for index, (_, future) in enumerate(batch):
                    if not future.done():
                        future.set_result(None if results is None else results[index])
        finally:
            self._draining = None
