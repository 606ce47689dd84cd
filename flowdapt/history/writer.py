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
from typing import Any, Callable, Iterable, Mapping, Sequence

from sqlalchemy import Engine, delete, select

from flowdapt.history import orm
from flowdapt.history.bulk import upsert_columns
from flowdapt.resources.models import WorkflowRun

_log = logging.getLogger("flowdapt.history")
_ORDER = (orm.runs, orm.stage_runs, orm.trigger_firings)
CANCEL_POLL_SECONDS = 0.5
PRUNE_EVERY_SECONDS = 60.0
Batch = dict[Any, dict[Any, tuple[Any, ...]]]  # table -> primary key -> newest row (values in column order)
# On DuckDB a row written in an open state will be written again (replaced); any other key is new
# to the database, so it takes the cheaper plain insert. Trigger firings are written once.
_OPEN_STATES = frozenset({"pending", "running"})
_STATE_INDEX = {table: list(table.columns.keys()).index("state") for table in (orm.runs, orm.stage_runs)}


def batch_columns(table: Any, rows: Iterable[tuple[Any, ...]]) -> dict[str, Sequence[Any]]:
    """Rows (values in column order) as columns; ``duration`` is computed from the start and finish times."""
    names = [column.name for column in table.columns]
    columns: dict[str, Sequence[Any]] = dict(zip(names, zip(*rows))) or dict.fromkeys(names, ())
    if "duration" in columns:
        columns["duration"] = [(finished - started).total_seconds() if started and finished else None
                               for started, finished in zip(columns["started_at"], columns["finished_at"])]
    return columns


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
        # The recorder's path: (table, values in column order), unchecked, with no Python frame per event.
        self.put_values: Callable[[tuple[Any, tuple[Any, ...]]], None] = self._queue.put
        self._live: dict[str, WorkflowRun] = {}
        # Only DuckDB's replacing insert costs much more than a plain one (about twice per row); SQLite
        # and PostgreSQL keep one ON CONFLICT statement per table rather than two round trips.
        self._plain_inserts = engine.dialect.name == "duckdb"
        self._open: set[Any] = set()  # keys last written in an open state (see _OPEN_STATES)
        self._thread = threading.Thread(target=self._loop, name="flowdapt-history-writer", daemon=True)
        self._closed = False
        self._next_prune = 0.0
        self._next_cancel_poll = 0.0

    def start(self) -> None:
        self._thread.start()

    def put(self, item: tuple[Any, Mapping[str, Any] | tuple[Any, ...]]) -> None:
        """Queue one ``(table, row)`` for writing; the row by column name, or its values in column order."""
        table, row = item
        if isinstance(row, Mapping):
            row = orm.row_values(table, row)
        self._queue.put((table, row))

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

    def _drain(self, first: tuple[Any, Any]) -> tuple[Batch, list[threading.Event], bool]:
        batch: Batch = {table: {} for table in _ORDER}
        waiters: list[threading.Event] = []
        get = self._queue.get_nowait
        item: tuple[Any, Any] | None = first
        while item is not None:
            table, row = item
            if table is None:
                if row is None:
                    return batch, waiters, True
                waiters.append(row)
            else:
                batch[table][row[0]] = row  # the primary key is the first column
            try:
                item = get()
            except queue.Empty:
                item = None
        return batch, waiters, False

    def _write(self, batch: Batch) -> None:
        count = sum(len(rows) for rows in batch.values())
        if not count:
            return
        try:
            try:
                self._commit(batch, self._open if self._plain_inserts else None)
            except Exception:  # noqa: BLE001 - a key this process did not write before (e.g. another process's run)
                if not self._plain_inserts:
                    raise
                _log.debug("plain insert of a history batch failed; writing it again replacing by key", exc_info=True)
                self._commit(batch, None)
        except Exception:  # noqa: BLE001 - history must never break a run; the next start repairs state
            _log.exception("could not write %d history rows", count)
            return
        self.rows_written += count
        if not self._plain_inserts:
            return
        for table, state in _STATE_INDEX.items():
            for key, row in batch[table].items():
                if row[state] in _OPEN_STATES:
                    self._open.add(key)
                else:
                    self._open.discard(key)

    def _commit(self, batch: Batch, open_keys: set[Any] | None) -> None:
        """One transaction: keys in ``open_keys`` replace their rows, the others are inserted (``None``: all replace)."""
        with self.engine.begin() as conn:
            for table in _ORDER:
                rows = batch[table]
                if not rows:
                    continue
                if open_keys is None:
                    upsert_columns(conn, table, batch_columns(table, rows.values()))
                    continue
                seen = rows.keys() & open_keys
                upsert_columns(conn, table, batch_columns(table, (rows[key] for key in seen)))
                fresh = (row for key, row in rows.items() if key not in seen) if seen else rows.values()
                upsert_columns(conn, table, batch_columns(table, fresh), replace=False)

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

