"""The single writer: one thread that owns every write to the history database.

Rows queue up while a transaction is being written, so batches grow with the load: a 10k-item
fan-out costs a few large transactions, not thousands of small ones, and DuckDB's one-writer rule
holds. Within a batch only the newest row per primary key is written. Each batch is one
transaction, so a crash loses at most the rows not yet written, never half a batch.

A queued item is a row, or a reference to a live record (see :mod:`flowdapt.history.recorder`):
a batch takes what is queued, then reads each referenced record once; rows queued as values (the
snapshots of retried attempts) replace what a reference read for the same key.

Two threads make the writer: one takes and prepares a batch (reads live records, builds columns)
while the other commits the batch before it (Arrow conversion, then the database, which releases
the GIL), so preparing and committing overlap; batches commit in order. Between batches the
committing thread also applies retention and looks for cancel requests made by other processes
(``flowctl cancel``) for the runs this process is running.

On DuckDB the writer also chooses when the database checkpoints (moves the write-ahead log into
the database file, a fifth of the cost of writing rows): when it is idle, once
:data:`IDLE_CHECKPOINT_ROWS` rows were written since the last one, rather than in whichever commit
happens to push the log past DuckDB's 16 MiB default. Under sustained load DuckDB still checkpoints
by itself once the log reaches :data:`DUCKDB_CHECKPOINT_THRESHOLD`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import OperationalError

from flowdapt.history import orm
from flowdapt.history.errors import DatabaseUnreachableError
from flowdapt.history.bulk import insert_arrow, to_arrow, upsert_columns, warm_up_arrow
from flowdapt.history.recorder import LIVE, LiveRef, Values
from flowdapt.resources.models import WorkflowRun

_log = logging.getLogger("flowdapt.history")
_ORDER = (orm.runs, orm.stage_runs, orm.trigger_firings, orm.stage_logs, orm.workflow_versions)
# Rows another process may have written already (a workflow version its runs ran): always replaced.
_SHARED_KEYS = frozenset({orm.workflow_versions})
CANCEL_POLL_SECONDS = 0.5
PRUNE_EVERY_SECONDS = 60.0
IDLE_CHECKPOINT_ROWS = 20_000
DUCKDB_CHECKPOINT_THRESHOLD = "256MiB"
Snapshots = dict[Any, dict[Any, tuple[Any, ...]]]  # table -> primary key -> newest row queued as values
# On DuckDB a row written in an open state will be written again (replaced); any other key is new
# to the database, so it takes the cheaper plain insert. Trigger firings are written once.
_OPEN_STATES = frozenset({"pending", "running"})
RECONNECT_SECONDS = 300.0  # how long a batch waits for a database that went away before it is given up
CLOSING_RECONNECT_SECONDS = 10.0  # the same while the store closes


def disconnected(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection to the database was lost (a restart, a failover), so the same
    statement succeeds once the database is back."""
    return bool(getattr(exc, "connection_invalidated", False)) or (
        isinstance(exc, OperationalError) and any(word in str(exc).lower() for word in (
            "connection", "server closed", "terminating", "could not connect", "the database system is")))


def batch_columns(table: Any, rows: Iterable[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """Rows (values in column order) as columns; ``duration`` is computed from the start and finish times."""
    names = [column.name for column in table.columns]
    columns: dict[str, list[Any]] = {name: list(values) for name, values in zip(names, zip(*rows))}
    if not columns:
        return {name: [] for name in names}
    if "duration" in columns:
        add_duration(columns)
    return columns


def add_duration(columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Fill ``duration`` (seconds) from ``started_at`` and ``finished_at``."""
    columns["duration"] = [(finished - started).total_seconds() if started and finished else None
                           for started, finished in zip(columns["started_at"], columns["finished_at"])]
    return columns


def _key(table: Any) -> str:
    return table.columns[0].name  # every history table has its primary key first


@dataclass
class TableRows:
    """One table's rows of a batch, one per primary key, ready for the database."""

    keys: list[Any]
    states: list[Any] | None  # the ``state`` column of runs and stage runs
    data: Any  # the rows column by column, or on DuckDB an Arrow table (converted before the transaction)

    def where(self, mask: list[bool], wanted: bool) -> Any:
        """``data`` of the rows whose ``mask`` flag is ``wanted``."""
        if isinstance(self.data, dict):
            return {name: [value for value, flag in zip(values, mask) if flag is wanted]
                    for name, values in self.data.items()}
        import pyarrow as pa

        return self.data.filter(pa.array(mask if wanted else [not flag for flag in mask]))

    def row(self, index: int) -> "TableRows":
        """The row at ``index`` alone."""
        states = None if self.states is None else [self.states[index]]
        if isinstance(self.data, dict):
            return TableRows([self.keys[index]], states, {name: values[index:index + 1]
                                                          for name, values in self.data.items()})
        return TableRows([self.keys[index]], states, self.data.slice(index, 1))


Batch = dict[Any, TableRows]


def prune(conn: Any, retention_seconds: float) -> int:
    """Delete runs (with their stage rows and logs) and trigger firings older than the retention; returns
    runs deleted."""
    cutoff = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=retention_seconds)
    old = select(orm.runs.c.uid).where(orm.runs.c.finished_at < cutoff).scalar_subquery()
    conn.execute(delete(orm.stage_runs).where(orm.stage_runs.c.run_uid.in_(old)))
    conn.execute(delete(orm.stage_logs).where(orm.stage_logs.c.run_uid.in_(old)))
    conn.execute(delete(orm.cancel_requests).where(orm.cancel_requests.c.run_uid.in_(old)))
    deleted = conn.execute(delete(orm.runs).where(orm.runs.c.finished_at < cutoff)).rowcount
    conn.execute(delete(orm.trigger_firings).where(orm.trigger_firings.c.fired_at < cutoff))
    return deleted or 0


def _stage_batch(live: dict[str, list[Any]] | None, snapshots: dict[Any, tuple[Any, ...]]) -> dict[str, list[Any]]:
    """Stage rows read from live records, replaced by the snapshots queued for the same keys."""
    if live is None:
        return batch_columns(orm.stage_runs, snapshots.values())
    add_duration(live)
    if not snapshots:
        return live
    keep = [key not in snapshots for key in live["id"]]
    taken = batch_columns(orm.stage_runs, snapshots.values())
    return {name: [value for value, kept in zip(values, keep) if kept] + taken[name] for name, values in live.items()}


class HistoryWriter:
    """Batches rows from :meth:`put` into transactions on a background thread.

    Parameters
    ----------
    engine : the database
    retention_seconds : keep finished runs this long (``None``: forever)
    linger : seconds to wait after the first row reaches an idle writer for more to arrive (none by
        default: under load batches grow anyway while the batch before them commits)
    live_rows : reads the rows of queued live-record references (the recorder's ``live_rows``)
    max_batch : queued items taken into one batch at most (so the next one is prepared while it commits)
    """

    def __init__(self, engine: Engine, *, retention_seconds: float | None = None, linger: float = 0.0,
                 live_rows: Callable[[Iterable[LiveRef]], tuple[list[Values], dict[str, list[Any]]]] | None = None,
                 max_batch: int = 20_000) -> None:
        self.engine = engine
        self.retention_seconds = retention_seconds
        self.linger = linger
        self.live_rows = live_rows
        self.max_batch = max_batch
        self.rows_written = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.queued_records: set[int] = set()  # the recorder's ``queued``: emptied when a batch is taken
        # The recorder's path: a row or a live reference, unchecked, with no Python frame per event.
        self.put_values: Callable[[Any], None] = self._queue.put
        self._live: dict[str, WorkflowRun] = {}
        # Only DuckDB's replacing insert costs much more than a plain one (about twice per row); SQLite
        # and PostgreSQL keep one ON CONFLICT statement per table rather than two round trips.
        self._plain_inserts = engine.dialect.name == "duckdb"
        self._arrow = engine.dialect.name == "duckdb"  # batches become Arrow tables while the one before commits
        self._checkpoints = engine.dialect.name == "duckdb"  # see the module doc
        self._rows_since_checkpoint = 0
        self._open: set[Any] = set()  # keys last written in an open state (see _OPEN_STATES)
        self._prepared: queue.Queue = queue.Queue(maxsize=2)  # (batch, waiters, stop), in commit order
        self._threads = (threading.Thread(target=self._prepare_loop, name="flowdapt-history-batches", daemon=True),
                         threading.Thread(target=self._commit_loop, name="flowdapt-history-writer", daemon=True))
        self._closed = False
        self.unreachable_since: float | None = None  # monotonic time the database went away, while it is away
        self._next_prune = 0.0
        self._next_cancel_poll = 0.0

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

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
        """Block until every row queued so far is written; while the database is unreachable, raise
        :class:`DatabaseUnreachableError` at once rather than wait for it."""
        done = threading.Event()
        self._queue.put((None, done))
        while not done.wait(0.05 if timeout is None else min(timeout, 0.05)):
            if self.unreachable_since is not None:
                raise DatabaseUnreachableError(
                    f"the history database has been unreachable for {time.monotonic() - self.unreachable_since:.0f}s;"
                    " what runs record waits for it")
            if timeout is not None:
                timeout -= 0.05
                if timeout <= 0:
                    raise TimeoutError("the history writer did not catch up")

    def close(self) -> None:
        """Write what is queued and stop the threads."""
        if self._closed:
            return
        self._closed = True
        self._queue.put((None, None))
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=60)

    # -- the writer threads -------------------------------------------------------------------------------
    def _prepare_loop(self) -> None:
        if self._arrow:
            warm_up_arrow()  # on this thread as the writer starts, rather than by the first batch
        while True:
            first = self._queue.get()
            if self.linger and first[0] is not None:
                time.sleep(self.linger)
            prepared = self._drain(first)
            self._prepared.put(prepared)
            if prepared[2]:
                return

    def _commit_loop(self) -> None:
        if self._checkpoints:
            self._housekeeping_step(self._set_checkpoint_threshold)
        while True:
            try:
                batch, waiters, stop = self._prepared.get(timeout=CANCEL_POLL_SECONDS)
            except queue.Empty:
                self._housekeeping()
                continue
            self._write(batch)
            for waiter in waiters:
                waiter.set()
            if stop:
                return
            self._housekeeping()

    def _drain(self, first: tuple[Any, ...]) -> tuple[Batch, list[threading.Event], bool]:
        """What is queued now, as the newest row per key."""
        live: dict[int, LiveRef] = {}  # id(record) -> reference: each record is read once
        values: Snapshots = {table: {} for table in _ORDER}
        waiters: list[threading.Event] = []
        stop = False
        get = self._queue.get_nowait
        item = first
        taken = 0
        while True:
            head = item[0]
            if head is LIVE:
                live[id(item[1])] = item
            elif head is not None:
                values[head][item[1][0]] = item[1]  # the primary key is the first column
            elif item[1] is None:
                stop = True
                break
            else:
                waiters.append(item[1])
            taken += 1
            if taken >= self.max_batch:
                break
            try:
                item = get()
            except queue.Empty:
                break
        self.queued_records.clear()  # before reading: a change from now on queues its record again
        try:
            return self._columns(live, values), waiters, stop
        except Exception:  # noqa: BLE001 - history must never break a run; the next start repairs state
            _log.exception("could not prepare a batch of %d history rows", taken)
            return {table: TableRows([], None, batch_columns(table, ())) for table in _ORDER}, waiters, stop

    def _columns(self, live: dict[int, LiveRef], values: Snapshots) -> Batch:
        run_rows: list[Values] = []
        stage_columns = None
        if live and self.live_rows is not None:
            run_rows, stage_columns = self.live_rows(live.values())
        runs = {row[0]: row for row in run_rows}
        runs.update(values[orm.runs])
        columns = {orm.runs: batch_columns(orm.runs, runs.values()),
                   orm.stage_runs: _stage_batch(stage_columns, values[orm.stage_runs]),
                   **{table: batch_columns(table, values[table].values()) for table in _ORDER[2:]}}
        return {table: TableRows(rows[_key(table)], rows.get("state"),
                                 to_arrow(table, rows) if self._arrow and rows[_key(table)] else rows)
                for table, rows in columns.items()}

    def _write(self, batch: Batch) -> None:
        count = sum(len(rows.keys) for rows in batch.values())
        if not count:
            return
        deadline = time.monotonic() + RECONNECT_SECONDS
        delay = 0.1
        while True:
            try:
                try:
                    self._commit(batch, self._open if self._plain_inserts else None)
                except Exception as exc:  # noqa: BLE001 - a key this process did not write before (another's run)
                    if not self._plain_inserts or disconnected(exc):
                        raise
                    _log.debug("plain insert of a history batch failed; writing it again replacing by key",
                               exc_info=True)
                    self._commit(batch, None)
                break
            except Exception as exc:  # noqa: BLE001 - history must never break a run; the next start repairs state
                if self._closed:  # shutting down: wait a little, not the whole reconnection time
                    deadline = min(deadline, time.monotonic() + CLOSING_RECONNECT_SECONDS)
                if disconnected(exc) and time.monotonic() < deadline:
                    # The database went away (restarted, failed over): keep the batch until it is back.
                    if self.unreachable_since is None:
                        self.unreachable_since = time.monotonic()
                    _log.warning("history database unreachable, writing %d rows again in %.1fs: %s", count, delay,
                                 str(exc).splitlines()[0])
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                _log.exception("could not write %d history rows together: writing them one by one", count)
                self.unreachable_since = None
                count = self._write_one_by_one(batch)
                break
        self.unreachable_since = None
        self.rows_written += count
        self._rows_since_checkpoint += count
        if not self._plain_inserts:
            return
        for table in (orm.runs, orm.stage_runs):
            rows = batch[table]
            if rows.keys:
                self._open.difference_update(rows.keys)
                self._open.update(key for key, state in zip(rows.keys, rows.states) if state in _OPEN_STATES)

    def _write_one_by_one(self, batch: Batch) -> int:
        """Commit each row of a batch that failed as a whole on its own, so a row the database refuses costs
        itself, not the rows batched with it; returns how many were written."""
        empty = {table: TableRows([], None, batch_columns(table, ())) for table in _ORDER}
        written = 0
        for table in _ORDER:
            rows = batch[table]
            for index, key in enumerate(rows.keys):
                try:
                    self._commit({**empty, table: rows.row(index)}, None)
                    written += 1
                except Exception as exc:  # noqa: BLE001 - the row is left out, the others are kept
                    _log.error("history: left out a %s row the database refused (%r): %s", table.name, key,
                               str(exc).splitlines()[0])
        return written

    def _commit(self, batch: Batch, open_keys: set[Any] | None) -> None:
        """One transaction: keys in ``open_keys`` replace their rows, the others are inserted (``None``: all replace)."""
        with self.engine.begin() as conn:
            for table in _ORDER:
                rows = batch[table]
                if not rows.keys:
                    continue
                if open_keys is None or table in _SHARED_KEYS:
                    self._insert(conn, table, rows.data, replace=True)
                elif open_keys.isdisjoint(rows.keys):
                    self._insert(conn, table, rows.data, replace=False)
                else:
                    mask = [key in open_keys for key in rows.keys]
                    self._insert(conn, table, rows.where(mask, True), replace=True)
                    self._insert(conn, table, rows.where(mask, False), replace=False)

    @staticmethod
    def _insert(conn: Any, table: Any, data: Any, replace: bool) -> None:
        if isinstance(data, dict):
            upsert_columns(conn, table, data, replace=replace)
        else:
            insert_arrow(conn, table, data, replace=replace)

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if self._live and now >= self._next_cancel_poll:
            self._next_cancel_poll = now + CANCEL_POLL_SECONDS
            self._housekeeping_step(self._honour_cancel_requests)
        if self.retention_seconds is not None and now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY_SECONDS
            self._housekeeping_step(self._prune)
        if (self._checkpoints and self._rows_since_checkpoint >= IDLE_CHECKPOINT_ROWS
                and self._prepared.empty() and self._queue.empty()):
            self._rows_since_checkpoint = 0
            self._housekeeping_step(self._checkpoint)

    @staticmethod
    def _housekeeping_step(step: Callable[[], None]) -> None:
        try:
            step()
        except Exception:  # noqa: BLE001 - retried on the next round
            _log.exception("history housekeeping failed")

    def _prune(self) -> None:
        assert self.retention_seconds is not None
        with self.engine.begin() as conn:
            prune(conn, self.retention_seconds)

    def _set_checkpoint_threshold(self) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql(f"SET checkpoint_threshold = '{DUCKDB_CHECKPOINT_THRESHOLD}'")

    def _checkpoint(self) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("CHECKPOINT")

    def _honour_cancel_requests(self) -> None:
        live = dict(self._live)
        with self.engine.connect() as conn:
            wanted = conn.execute(select(orm.cancel_requests.c.run_uid)
                                  .where(orm.cancel_requests.c.run_uid.in_(list(live)))).scalars().all()
        for uid in wanted:
            live[uid].cancel()

