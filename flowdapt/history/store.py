"""The history store: resources, runs, stage attempts and trigger firings in one SQL database.

``HistoryStore(url).open()`` connects, checks the schema version, marks runs left in flight by a
crashed process as ``interrupted``, starts the single writer and subscribes to the engine's events.
It is also a resource catalog (``set_catalog(store)``), so names resolve against the database.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timezone
from typing import Any, Iterable

from sqlalchemy import Engine, case, create_engine, delete, func, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from flowdapt import events
from flowdapt.history import migrations, orm, queries, sql_catalog
from flowdapt.history.backends import HISTORY_BACKENDS
from flowdapt.history.errors import DatabaseLockedError, HistoryError
from flowdapt.history.models import (
    DailyWorkflowStats,
    DatabaseStatus,
    LogLine,
    RunQuery,
    StageAttempt,
    StageStats,
    TriggerFiring,
)
from flowdapt.history.recorder import HistoryRecorder
from flowdapt.history.writer import HistoryWriter, prune
from flowdapt.resources.models import Resource, WorkflowRun
from flowdapt.settings import Settings

INTERRUPTED = {"type": "Interrupted",
               "message": "the process running this workflow stopped before the run ended"}


def this_owner() -> str:
    """``host:pid`` of this process, as recorded on the runs it executes."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str | None) -> bool:
    """Whether the process that recorded a run may still be running it (other hosts: assume so)."""
    host, _, pid = (owner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return bool(owner) and host != socket.gethostname()
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def make_engine(url: str) -> Engine:
    """A SQLAlchemy engine for a history URL (``duckdb:///``, ``sqlite:///``, ``postgresql[+psycopg]://``)."""
    parsed = make_url(url)
    backend = HISTORY_BACKENDS.get(parsed.get_backend_name())
    parsed = backend.url(parsed)
    if _database_file(parsed) is not None:
        os.makedirs(os.path.dirname(os.path.abspath(parsed.database)), mode=0o700, exist_ok=True)
    engine = create_engine(parsed, **backend.engine_options(parsed))
    backend.connected(engine)
    return engine


def _database_file(url: Any) -> str | None:
    """The file of a DuckDB or SQLite URL (``None`` for a server or an in-memory database)."""
    if url.get_backend_name() in ("duckdb", "sqlite") and url.database not in (None, "", ":memory:"):
        return url.database
    return None


def _owner_only(url: str) -> None:
    """Make a database file readable by its owner only: it holds run inputs, results and tracebacks."""
    path = _database_file(make_url(url))
    if path is not None:
        for name in (path, f"{path}.wal", f"{path}-wal", f"{path}-shm"):
            if os.path.exists(name):
                os.chmod(name, 0o600)


def recording(engine: Engine, *, retention_seconds: float | None = None) -> tuple[HistoryWriter, HistoryRecorder]:
    """A history writer (not started) and the event listener that feeds it, wired together."""
    writer = HistoryWriter(engine, retention_seconds=retention_seconds)
    recorder = HistoryRecorder(writer.put_values, this_owner(), on_run=writer.track, queued=writer.queued_records)
    writer.live_rows = recorder.live_rows
    return writer, recorder


class HistoryStore:
    """Run history and resource catalog over one SQL database.

    Parameters
    ----------
    url : SQLAlchemy URL of the database
    retention_seconds : keep finished runs this long; ``None`` forever; ``0`` records no runs at all
    listen : subscribe to the engine's events in this process (off for read-only tools)
    """

    def __init__(self, url: str, *, retention_seconds: float | None = None, listen: bool = True) -> None:
        self.url = url
        self.retention_seconds = retention_seconds
        self.listen = listen
        self.engine: Engine | None = None
        self.writer: HistoryWriter | None = None
        self._recorder: HistoryRecorder | None = None
        self._unsubscribe: Any = None

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> "HistoryStore":
        """The store configured by ``database.url`` and ``run_retention``."""
        return cls(settings.database_url(), retention_seconds=settings.retention_seconds(), **kwargs)

    # -- lifecycle ---------------------------------------------------------------------------------------
    def open(self) -> "HistoryStore":
        """Connect, check the schema, recover crashed runs, start recording; returns ``self``."""
        self.engine = make_engine(self.url)
        try:
            with self.engine.begin() as conn:
                migrations.ensure_current(conn)
                self._mark_interrupted(conn)
                if self.retention_seconds:
                    prune(conn, self.retention_seconds)
        except (OperationalError, DBAPIError) as exc:
            self.engine.dispose()
            raise _explain(self.url, exc) from None
        except BaseException:
            self.engine.dispose()
            raise
        _owner_only(self.url)
        if self.listen:
            self.writer, self._recorder = recording(self.engine, retention_seconds=self.retention_seconds or None)
            self.writer.start()
            if self.retention_seconds != 0:
                self._unsubscribe = events.subscribe(self._recorder)
        return self

    def close(self) -> None:
        """Write what is queued, stop recording and disconnect."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            self._recorder = None
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None

    def __enter__(self) -> "HistoryStore":
        return self.open() if self.engine is None else self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def record_run(self, run: WorkflowRun) -> None:
        """Queue ``run``'s row as it stands, for a run no event describes yet (such as a queued one)."""
        if self._recorder is not None and self.retention_seconds != 0:
            self._recorder.queue_live(run, run)

    def record_reported_run(self, run: WorkflowRun) -> None:
        """Queue the rows of a run that another process runs and reports (a kernel under a server):
        the run's row and the current attempt of every stage that started."""
        if self._recorder is not None and self.retention_seconds != 0:
            self._recorder.snapshot(run)

    def flush(self) -> None:
        """Block until every event seen so far is written."""
        if self.writer is not None:
            self.writer.flush()

    @property
    def open_engine(self) -> Engine:
        """The engine of the open store (:class:`HistoryError` when it is closed)."""
        if self.engine is None:
            raise HistoryError("the history store is not open")
        return self.engine

    def _mark_interrupted(self, conn: Any) -> None:
        r = orm.runs.c
        stale = [uid for uid, owner in conn.execute(select(r.uid, r.owner).where(r.state.in_(("pending", "running"))))
                 if not owner_alive(owner)]
        if not stale:
            return
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        conn.execute(update(orm.runs).where(r.uid.in_(stale))
                     .values(state="interrupted", finished_at=now, error=INTERRUPTED))
        s = orm.stage_runs.c
        conn.execute(update(orm.stage_runs).where(s.run_uid.in_(stale), s.state.in_(("pending", "running")))
                     .values(state="cancelled", finished_at=now))

    # -- resources (the Catalog protocol) ------------------------------------------------------------------
    def get(self, kind: str, identifier: str) -> Resource:
        """The resource of ``kind`` with this name or uid."""
        with self.open_engine.connect() as conn:
            return sql_catalog.get_resource(conn, kind, identifier)

    def list(self, kind: str) -> list[Resource]:
        """Every resource of ``kind``, by name."""
        with self.open_engine.connect() as conn:
            return sql_catalog.list_resources(conn, kind)

    def apply(self, resources: Iterable[Resource]) -> list[tuple[Resource, str]]:
        """Create or update all resources in one transaction (all or nothing)."""
        with self.open_engine.begin() as conn:
            return sql_catalog.apply_resources(conn, resources)

    def delete(self, kind: str, identifier: str) -> Resource:
        """Delete a resource by name or uid and return it."""
        with self.open_engine.begin() as conn:
            return sql_catalog.delete_resource(conn, kind, identifier)

    # -- runs ---------------------------------------------------------------------------------------------
    def list_runs(self, query: RunQuery | None = None, **filters: Any) -> list[WorkflowRun]:
        """Runs newest first, filtered by workflow/state/source/since/until, paged by limit/offset."""
        with self.open_engine.connect() as conn:
            return queries.list_runs(conn, query or RunQuery(**filters))

    def latest_runs(self) -> list[WorkflowRun]:
        """The newest run of each workflow, without stages."""
        with self.open_engine.connect() as conn:
            return queries.latest_runs(conn)

    def get_run(self, identifier: str) -> WorkflowRun:
        """One run by uid or name, with its stages."""
        with self.open_engine.connect() as conn:
            return queries.get_run(conn, identifier)

    def stage_attempts(self, identifier: str) -> list[StageAttempt]:
        """Every stage attempt of one run."""
        with self.open_engine.connect() as conn:
            return queries.stage_attempts(conn, identifier)

    def delete_run(self, identifier: str) -> WorkflowRun:
        """Delete a finished run and its stage records; returns it."""
        with self.open_engine.begin() as conn:
            run = queries.get_run(conn, identifier)
            conn.execute(delete(orm.stage_runs).where(orm.stage_runs.c.run_uid == run.uid))
            conn.execute(delete(orm.stage_logs).where(orm.stage_logs.c.run_uid == run.uid))
            conn.execute(delete(orm.cancel_requests).where(orm.cancel_requests.c.run_uid == run.uid))
            conn.execute(delete(orm.runs).where(orm.runs.c.uid == run.uid))
        return run

    def request_cancel(self, identifier: str) -> WorkflowRun:
        """Ask the process running this run to cancel it (it checks twice a second)."""
        with self.open_engine.begin() as conn:
            run = queries.get_run(conn, identifier)
            if not run.done:
                exists = conn.execute(select(orm.cancel_requests.c.run_uid)
                                      .where(orm.cancel_requests.c.run_uid == run.uid)).first()
                if exists is None:
                    conn.execute(insert(orm.cancel_requests).values(
                        run_uid=run.uid, requested_at=datetime.now(timezone.utc).replace(tzinfo=None)))
        return run

    def run_logs(self, identifier: str, **filters: Any) -> list[LogLine]:
        """The lines a run's stages printed and logged (``stage``, ``attempt``, ``after``, ``limit``)."""
        with self.open_engine.connect() as conn:
            return queries.run_logs(conn, identifier, **filters)

    def workflow_document(self, version: str) -> dict[str, Any] | None:
        """The workflow document of a version a recorded run ran."""
        with self.open_engine.connect() as conn:
            return queries.workflow_document(conn, version)

    def record_logs(self, run_uid: str, lines: list[LogLine]) -> None:
        """Queue lines of a run that another process runs and reports (a kernel under a server)."""
        if self._recorder is not None and self.retention_seconds != 0:
            for line in lines:
                self._recorder.log_lines(run_uid, line.stage, line.attempt, line.seq,
                                         [(line.time.timestamp(), line.stream, line.level, line.logger, line.message)])

    def record_workflow_version(self, version: str, document: dict[str, Any]) -> None:
        """Queue the document of a workflow version (a kernel's run reported to a server ran it)."""
        if self._recorder is not None and self.retention_seconds != 0:
            self._recorder.workflow_version(version, document)

    def daily_workflow_stats(self, **filters: Any) -> list[DailyWorkflowStats]:
        """Per-workflow success rate and duration percentiles per UTC day."""
        with self.open_engine.connect() as conn:
            return queries.daily_workflow_stats(conn, **filters)

    def stage_stats(self, **filters: Any) -> list[StageStats]:
        """Per-stage duration statistics."""
        with self.open_engine.connect() as conn:
            return queries.stage_stats(conn, **filters)

    def trigger_firings(self, **filters: Any) -> list[TriggerFiring]:
        """The trigger firing log, newest first."""
        with self.open_engine.connect() as conn:
            return queries.trigger_firings(conn, **filters)

    def status(self) -> DatabaseStatus:
        """Backend, schema version and run counts."""
        r = orm.runs.c
        with self.open_engine.connect() as conn:
            total, running = conn.execute(select(
                func.count(), func.coalesce(func.sum(case((r.state.in_(("pending", "running")), 1), else_=0)), 0),
            )).one()
            version = migrations.current_version(conn)
        return DatabaseStatus(url=safe_url(self.url), backend=self.open_engine.dialect.name, schema_version=version,
                              runs=total, running=running)


def safe_url(url: str) -> str:
    """The URL with any password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def _explain(url: str, exc: Exception) -> HistoryError:
    text = str(getattr(exc, "orig", exc) or exc).strip().splitlines()[0]
    if "lock" in text.lower():
        return DatabaseLockedError(
            f"history database {safe_url(url)} is in use by another process ({text}); DuckDB allows one "
            f"process at a time: run `flowdapt serve` and use flowctl through it, or use SQLite/PostgreSQL")
    return HistoryError(f"cannot open history database {safe_url(url)}: {text}")


def open_store(settings: Settings, **kwargs: Any) -> HistoryStore:
    """Open the store the settings configure."""
    return HistoryStore.from_settings(settings, **kwargs).open()

