"""The single writer: one thread that owns every write to the history database.

Rows queue up while a transaction is being written, so batches grow with the load: a 10k-item
fan-out costs a few large transactions, not thousands of small ones, and DuckDB's one-writer rule
holds. Within a batch only the newest row per primary key is written. Each batch is one
transaction, so a crash loses at most the rows not yet written, never half a batch.

Between batches the writer also applies retention and looks for cancel requests made by other
processes (``flowctl cancel``) for the runs this process is running.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine, delete, select

from flowdapt.history import orm
from flowdapt.history.bulk import naive_utc, upsert
from flowdapt.resources.models import WorkflowRun

_log = logging.getLogger("flowdapt.history")
_TIMESTAMPS = ("started_at", "finished_at", "fired_at")
_ORDER = (orm.runs, orm.stage_runs, orm.trigger_firings)
CANCEL_POLL_SECONDS = 0.5
PRUNE_EVERY_SECONDS = 60.0


def normalize(row: dict[str, Any]) -> dict[str, Any]:
    """A row as stored: naive UTC timestamps, duration in seconds, errors as plain data."""
    for key in _TIMESTAMPS:
        if key in row:
            row[key] = naive_utc(row[key])
    if "duration" in row and row["started_at"] and row["finished_at"]:
        row["duration"] = (row["finished_at"] - row["started_at"]).total_seconds()
    error = row.get("error")
    if error is not None and hasattr(error, "model_dump"):
        row["error"] = error.model_dump()
    failures = row.get("item_failures")
    if failures:
        row["item_failures"] = [item.model_dump() if hasattr(item, "model_dump") else item for item in failures]
    return row


def prune(conn: Any, retention_seconds: float) -> int:
    """Delete runs (with their stage rows) and trigger firings older than the retention; returns runs deleted."""
    cutoff = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=retention_seconds)
    old = select(orm.runs.c.uid).where(orm.runs.c.finished_at < cutoff).scalar_subquery()
    conn.execute(delete(orm.stage_runs).where(orm.stage_runs.c.run_uid.in_(old)))
    conn.execute(delete(orm.cancel_requests).where(orm.cancel_requests.c.run_uid.in_(old)))
    deleted = conn.execute(delete(orm.runs).where(orm.runs.c.finished_at < cutoff)).rowcount
    conn.execute(delete(orm.trigger_firings).where(orm.trigger_firings.c.fired_at < cutoff))
    return deleted or 0


class HistoryWriter:
    """Batches rows from :meth:`put` into transactions on a background thread.

    Parameters
    ----------
    engine : the database
    retention_seconds : keep finished runs this long (``None``: forever)
    linger : seconds to wait after the first row of a batch for more to arrive
    """

    def __init__(self, engine: Engine, *, retention_seconds: float | None = None, linger: float = 0.005) -> None:
        self.engine = engine
        self.retention_seconds = retention_seconds
        self.linger = linger
        self.rows_written = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._live: dict[str, WorkflowRun] = {}
        self._thread = threading.Thread(target=self._loop, name="flowdapt-history-writer", daemon=True)
        self._closed = False
        self._next_prune = 0.0
        self._next_cancel_poll = 0.0

    def start(self) -> None:
        self._thread.start()

    def put(self, item: tuple[Any, dict[str, Any]]) -> None:
        """Queue one ``(table, row)`` for writing."""
        self._queue.put(item)

    def track(self, run: WorkflowRun) -> None:
        """Follow a live run, so cancel requests for it are honoured (called on its start and finish)."""
        if run.done:
            self._live.pop(run.uid, None)
        else:
            self._live[run.uid] = run

    def flush(self, timeout: float | None = 30.0) -> None:
        """Block until every row queued so far is written."""
        done = threading.Event()
        self._queue.put((None, done))
        if not done.wait(timeout):
            raise TimeoutError("the history writer did not catch up")

    def close(self) -> None:
        """Write what is queued and stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put((None, None))
        self._thread.join(timeout=60)

    # -- the writer thread --------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=CANCEL_POLL_SECONDS)
            except queue.Empty:
                self._housekeeping()
                continue
            if self.linger and first[0] is not None:
                time.sleep(self.linger)
            batch, waiters, stop = self._drain(first)
            self._write(batch)
            for waiter in waiters:
                waiter.set()
            if stop:
                return
            self._housekeeping()

    def _drain(self, first: tuple[Any, Any]) -> tuple[dict[Any, dict[Any, dict[str, Any]]], list[threading.Event], bool]:
        batch: dict[Any, dict[Any, dict[str, Any]]] = {table: {} for table in _ORDER}
        waiters: list[threading.Event] = []
        item: tuple[Any, Any] | None = first
        while item is not None:
            table, row = item
            if table is None:
                if row is None:
                    return batch, waiters, True
                waiters.append(row)
            else:
                batch[table][row[_key(table)]] = row
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                item = None
        return batch, waiters, False

    def _write(self, batch: dict[Any, dict[Any, dict[str, Any]]]) -> None:
        rows = {table: [normalize(row) for row in by_key.values()] for table, by_key in batch.items() if by_key}
        if not rows:
            return
        try:
            with self.engine.begin() as conn:
                for table in _ORDER:
                    upsert(conn, table, rows.get(table, ()))
        except Exception:  # noqa: BLE001 - history must never break a run; the next start repairs state
            _log.exception("could not write %d history rows", sum(len(r) for r in rows.values()))
            return
        self.rows_written += sum(len(r) for r in rows.values())

    def _housekeeping(self) -> None:
        now = time.monotonic()
        try:
            if self._live and now >= self._next_cancel_poll:
                self._next_cancel_poll = now + CANCEL_POLL_SECONDS
                self._honour_cancel_requests()
            if self.retention_seconds is not None and now >= self._next_prune:
                self._next_prune = now + PRUNE_EVERY_SECONDS
                with self.engine.begin() as conn:
                    prune(conn, self.retention_seconds)
        except Exception:  # noqa: BLE001 - retried on the next round
            _log.exception("history housekeeping failed")

    def _honour_cancel_requests(self) -> None:
        live = dict(self._live)
        with self.engine.connect() as conn:
            wanted = conn.execute(select(orm.cancel_requests.c.run_uid)
                                  .where(orm.cancel_requests.c.run_uid.in_(list(live)))).scalars().all()
        for uid in wanted:
            live[uid].cancel()


def _key(table: Any) -> str:
    return "uid" if table is orm.runs else "id"

