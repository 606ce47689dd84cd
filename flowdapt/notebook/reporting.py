"""Runs a kernel under a server runs itself are recorded in that server's history.

``%flowdapt run`` runs on the server, which records it. ``flowdapt.run_workflow`` in a cell runs in
the kernel (with the notebook's own callables and executors); inside Lab it would then be in no
history at all, since the kernel opens no store of its own while a server holds it. The
:class:`RunReporter` listens to the kernel's engine events and sends each run's record to the
server (``PUT runs/{uid}``) when it starts, at most every ``interval`` seconds while it goes on, and
when it ends, with the lines its stages printed (``POST runs/{uid}/logs``) and, once per workflow
version, the version's document (``PUT workflow-versions/{version}``, so the server can run it again).
Sending happens on a thread of its own, so a stage never waits for the network; the end of each cell
waits (a few seconds at most) until what it ran was sent. A server that cannot be reached costs a
warning, not the run.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable

from flowdapt.events import Event, RunEvent, RunFinished, RunStarted, StageLogs, subscribe
from flowdapt.history.models import LogLine
from flowdapt.resources.models import WorkflowRun

_log = logging.getLogger("flowdapt.notebook")


class RunReporter:
    """Event listener that sends the records of this process's runs to a server.

    Parameters
    ----------
    client : returns the :class:`~flowdapt.client.Client` to send with (made on first use)
    interval : seconds between two sends of a run that goes on
    """

    def __init__(self, client: Callable[[], Any], interval: float = 0.25) -> None:
        self._client = client
        self.interval = interval
        self._changed = threading.Condition()
        self._pending: dict[str, WorkflowRun] = {}  # runs whose record changed since it was last sent
        self._lines: dict[str, list[LogLine]] = {}  # lines of each run not sent yet
        self._versions: set[str] = set()  # workflow versions sent
        self._urgent = False  # a run started or ended: send without waiting for the interval
        self._sending = 0
        self._thread: threading.Thread | None = None
        self._warned = False

    def __call__(self, event: Event) -> None:
        if not isinstance(event, RunEvent):
            return
        run: WorkflowRun = event.run  # type: ignore[attr-defined]
        with self._changed:
            self._pending[run.uid] = run
            if type(event) is StageLogs:
                self._lines.setdefault(run.uid, []).extend(
                    LogLine(seq=seq, stage=event.stage.name, attempt=event.attempt,
                            time=datetime.fromtimestamp(line[0], timezone.utc), stream=line[1], level=line[2],
                            logger=line[3], message=line[4])
                    for seq, line in enumerate(event.lines, event.first))
            if type(event) is RunStarted or type(event) is RunFinished:
                self._urgent = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._send_loop, name="flowdapt-run-reporter", daemon=True)
                self._thread.start()
            self._changed.notify_all()

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every change seen so far has been sent (or ``timeout`` passed)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            self._urgent = True
            self._changed.notify_all()
            while self._pending or self._sending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._changed.wait(left)

    def _send_loop(self) -> None:
        while True:
            with self._changed:
                while not self._pending:
                    self._changed.wait()
                if not self._urgent:
                    self._changed.wait_for(lambda: self._urgent, timeout=self.interval)
                runs, self._pending, self._urgent = list(self._pending.values()), {}, False
                lines, self._lines = self._lines, {}
                self._sending = len(runs)
            for run in runs:
                self._send(run, lines.get(run.uid, ()))
            with self._changed:
                self._sending = 0
                self._changed.notify_all()

    def _send(self, run: WorkflowRun, lines: Any) -> None:
        try:
            client = self._client()
            version = run.workflow_version
            if version and version not in self._versions and run.definition is not None:
                client.record_workflow_version(version, run.definition.to_document())
                self._versions.add(version)
            client.record_run(run)
            if lines:
                client.record_logs(run.uid, list(lines))
        except Exception as exc:  # noqa: BLE001 - the run goes on; the history misses it
            if not self._warned:
                self._warned = True
                _log.warning("could not record run %s in the server's history: %s", run.name, exc)


_reporter: RunReporter | None = None


def report_runs_to_server(client: Callable[[], Any]) -> RunReporter:
    """Send this process's runs to the server ``client()`` talks to (once per process)."""
    global _reporter
    if _reporter is None:
        _reporter = RunReporter(client)
        subscribe(_reporter)
        atexit.register(_reporter.flush, 5.0)  # a kernel shut down right after a run still records it
    return _reporter


def flush_reported_runs() -> None:
    """Wait until the runs of this process are recorded on the server (a no-op when none are reported)."""
    if _reporter is not None:
        _reporter.flush()
