"""What stages print and log: stdout, stderr and ``logging`` records, captured per stage attempt.

Once per process (:func:`ensure_capture`), ``sys.stdout`` and ``sys.stderr`` are wrapped in
routers and a log-record factory is installed. A write or a record made while a stage runs (its
run context is current in that thread or task) goes to that attempt's capture; anything else goes
where it went before. Nothing happens per stage: a stage that prints nothing costs nothing.

Where the capture lives depends on where the stage runs. In the driver (local threads, and Dask
workers that are threads of the driver), the run's :class:`RunCapture` receives lines as they are
written, so they can be followed live. In other processes (local processes, Dask and Ray workers)
a :class:`AttemptLog` is made on the first write and shipped back with the attempt's outcome
(:func:`shipped`). Either way the runner takes the lines from its :class:`RunCapture` and emits
them as ``stage_logs`` events; the history and the UIs listen.

An attempt keeps at most ``logs.max_bytes`` of text (settings): the first three quarters of it as
lines arrive, then the last quarter (the lines just before a failure); what falls between is
counted and reported in a final line of stream ``flowdapt``, never dropped silently.
"""

from __future__ import annotations

import collections
import logging
import sys
import threading
import time
import weakref
from typing import Any, Callable, Iterable

from flowdapt.compute.context import RunContext, current_run_context

#: One captured line: (seconds since the epoch, stream, level, logger, message). ``stream`` is
#: ``stdout``, ``stderr``, ``log`` (a ``logging`` record, with its level and logger) or ``flowdapt``
#: (the count of lines over the cap).
LogLine = tuple[float, str, "str | None", "str | None", str]
#: What a worker ships back for one attempt: (lines, lines dropped, characters dropped, where its
#: output came from when it was not computed: see :mod:`flowdapt.compute.outputs`).
Shipped = tuple[list[LogLine], int, int, "str | None"]

TAIL_SHARE = 4  # the last 1/TAIL_SHARE of the cap keeps the latest lines
_MAX_PARTIAL = 64 * 1024  # a line without a newline is cut here


def _limit() -> int:
    from flowdapt.settings import get_settings

    logs = get_settings().logs
    return logs.max_bytes if logs.capture else 0


class AttemptLog:
    """The lines of one stage attempt, capped (see the module doc); thread-safe."""

    __slots__ = ("head", "head_size", "head_limit", "tail", "tail_size", "tail_limit", "dropped_lines",
                 "dropped_size", "partial", "lock", "taken", "cached_from", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit  # 0: capture is off (the log only carries notes such as ``cached_from``)
        self.head: list[LogLine] = []
        self.head_size = 0
        self.tail_limit = limit // TAIL_SHARE
        self.head_limit = limit - self.tail_limit
        self.tail: collections.deque[LogLine] = collections.deque()
        self.tail_size = 0
        self.dropped_lines = 0
        self.dropped_size = 0
        self.partial: dict[str, str] = {}
        self.lock = threading.Lock()
        self.taken = 0  # head lines handed on already (the driver streams them)
        self.cached_from: str | None = None

    # -- the capture protocol (also RunCapture's) -------------------------------------------------
    def write(self, context: RunContext, stream: str, text: str) -> None:
        with self.lock:
            self._write(stream, text)

    def record(self, context: RunContext, record: logging.LogRecord) -> None:
        line = (record.created, "log", record.levelname, record.name, _message(record))
        with self.lock:
            self.add(line)

    def cached(self, context: RunContext, source: str) -> None:
        """The attempt's output was not computed: it came from ``source`` (a cache entry, a kept output)."""
        self.cached_from = source

    # -- lines ----------------------------------------------------------------------------------------
    def _write(self, stream: str, text: str) -> None:
        now = time.time()
        pending = self.partial.pop(stream, "") + text
        *complete, rest = pending.split("\n")
        for line in complete:
            self.add((now, stream, None, None, _as_shown(line)))
        if rest:
            if "\r" in rest:  # a progress bar redrawing its line: keep what a terminal shows
                rest = rest[rest.rindex("\r") + 1:] or rest
            if len(rest) > _MAX_PARTIAL:
                self.add((now, stream, None, None, rest))
            else:
                self.partial[stream] = rest

    def add(self, line: LogLine) -> None:
        """Keep ``line`` in the head, else in the tail (pushing its oldest line out, counted)."""
        size = len(line[4]) + 1
        if self.head_size + size <= self.head_limit and not self.tail:
            self.head.append(line)
            self.head_size += size
            return
        self.tail.append(line)
        self.tail_size += size
        while self.tail_size > self.tail_limit and self.tail:
            dropped = self.tail.popleft()
            self.tail_size -= len(dropped[4]) + 1
            self.dropped_lines += 1
            self.dropped_size += len(dropped[4]) + 1

    def extend(self, shipped: Shipped) -> None:
        """Lines a worker captured for this attempt (already capped there)."""
        lines, dropped_lines, dropped_size, _ = shipped
        with self.lock:
            for line in lines:
                self.add(tuple(line))  # type: ignore[arg-type] - a list after msgpack (Dask events)
            self.dropped_lines += dropped_lines
            self.dropped_size += dropped_size

    def take(self) -> list[LogLine]:
        """The head lines not taken yet (the stream of a running attempt)."""
        with self.lock:
            lines = self.head[self.taken:]
            self.taken = len(self.head)
            return lines

    def finish(self) -> list[LogLine]:
        """Everything not taken yet, the attempt being over: partial lines, the count of dropped lines,
        the tail."""
        with self.lock:
            now = time.time()
            for stream, rest in self.partial.items():
                self.add((now, stream, None, None, _as_shown(rest)))
            self.partial.clear()
            lines = self.head[self.taken:]
            self.taken = len(self.head)
            if self.dropped_lines:
                lines.append((now, "flowdapt", "WARNING", None, dropped_note(self.dropped_lines, self.dropped_size)))
                self.dropped_lines = self.dropped_size = 0
            lines.extend(self.tail)
            self.tail.clear()
            self.tail_size = 0
            return lines

    def ship(self) -> Shipped:
        """What a worker sends back: every line (partial lines completed) and the counts of those dropped."""
        with self.lock:
            now = time.time()
            for stream, rest in self.partial.items():
                self.add((now, stream, None, None, _as_shown(rest)))
            self.partial.clear()
            return [*self.head, *self.tail], self.dropped_lines, self.dropped_size, self.cached_from


def dropped_note(lines: int, size: int) -> str:
    return (f"{lines} line{'s' if lines != 1 else ''} ({size:,} characters) left out: over the attempt's "
            "log cap (logs.max_bytes); the first and the last lines are kept")


def _as_shown(line: str) -> str:
    if "\r" in line:
        line = line.rstrip("\r")
        line = line[line.rfind("\r") + 1:]
    return line


_formatter = logging.Formatter("%(message)s")


def _message(record: logging.LogRecord) -> str:
    try:
        return _formatter.format(record)
    except Exception as exc:  # noqa: BLE001 - a record whose arguments do not format is kept, said so
        return f"{record.msg!r} (could not format it: {type(exc).__name__}: {exc})"


class RunCapture:
    """The driver's capture of one run: lines per attempt, written by stage threads of this process
    or shipped from workers, taken by the runner (which emits them as events).

    Parameters
    ----------
    run_uid : the run's uid (workers' lines are addressed by it, see :func:`deliver`)
    limit : characters kept per attempt (0: capture is off)
    on_lines : called (from the writing thread) when lines arrive and none were waiting
    """

    def __init__(self, run_uid: str, limit: int, on_lines: Callable[[], None]) -> None:
        self.run_uid = run_uid
        self.limit = limit
        self.on_lines = on_lines
        self.attempts: dict[tuple[str, int], AttemptLog] = {}
        self.cached_from: dict[tuple[str, int], str] = {}  # (stage, attempt) -> where its output came from
        self.waiting = False
        self.lock = threading.Lock()

    def _attempt(self, stage: str, attempt: int) -> AttemptLog:
        with self.lock:
            log = self.attempts.get((stage, attempt))
            if log is None:
                log = self.attempts[stage, attempt] = AttemptLog(self.limit)
            notify = not self.waiting
            self.waiting = True
        if notify:
            self.on_lines()
        return log

    def write(self, context: RunContext, stream: str, text: str) -> None:
        self._attempt(context.stage, context.attempt).write(context, stream, text)  # type: ignore[arg-type]

    def record(self, context: RunContext, record: logging.LogRecord) -> None:
        self._attempt(context.stage, context.attempt).record(context, record)  # type: ignore[arg-type]

    def cached(self, context: RunContext, source: str) -> None:
        self.cached_from[context.stage, context.attempt] = source  # type: ignore[index]

    def extend(self, stage: str, attempt: int, shipped: Shipped) -> None:
        """What a worker shipped for ``attempt`` of ``stage``."""
        if shipped[3] is not None:
            self.cached_from[stage, attempt] = shipped[3]
        if shipped[0] or shipped[1]:
            self._attempt(stage, attempt).extend(shipped)

    def take(self, over: Callable[[str, int], bool]) -> list[tuple[str, int, list[LogLine]]]:
        """``(stage, attempt, lines)`` not taken yet; attempts ``over(stage, attempt)`` says are over
        are finished (their partial lines and tail too) and forgotten."""
        with self.lock:
            self.waiting = False
            attempts = list(self.attempts.items())
        taken = []
        for (stage, attempt), log in attempts:
            if over(stage, attempt):
                lines = log.finish()
                with self.lock:
                    self.attempts.pop((stage, attempt), None)
            else:
                lines = log.take()
            if lines:
                taken.append((stage, attempt, lines))
        return taken


# -- where a write goes ------------------------------------------------------------------------------------
# A worker's captures of the attempts it runs, by ``id`` of their context (alive while the attempt runs):
# a stage call carries nothing for the capture, which costs nothing per stage that prints nothing.
_attempts: dict[int, AttemptLog] = {}


def capture_of(context: RunContext, always: bool = False) -> Any:
    """The capture a write made under ``context`` goes to: the run's, in the process that runs the run
    (found by its uid), else the attempt's own, made on first use; ``None`` when capture is off (unless
    ``always``: notes still travel)."""
    log = _attempts.get(id(context))
    if log is None:
        log = run_capture(context.run.uid)
        if log is not None:
            return log
        limit = _limit()
        if not limit and not always:
            return None
        if len(_attempts) > 4096:  # attempts whose captures were never shipped (a thread outliving its run)
            _attempts.clear()
        log = _attempts[id(context)] = AttemptLog(limit)
    return log


def shipped(context: RunContext) -> Shipped | None:
    """What a worker sends back for the attempt ``context`` ran: ``None`` when it wrote nothing, or when
    its lines went straight to the run's capture (a stage run in the driver's process)."""
    log = _attempts.pop(id(context), None)
    if log is None:
        return None
    lines = log.ship()
    return lines if lines[0] or lines[1] or lines[3] is not None else None


def write_text(stream: str, text: str) -> None:
    """Add ``text`` to the current attempt's ``stream`` as if the stage had written it (e.g. the
    outputs of a notebook stage's cells); outside a stage it is written to that stream."""
    context = current_run_context()
    log = capture_of(context) if context is not None and context.stage is not None else None
    if log is None or not log.limit:
        getattr(sys, stream).write(text)
    else:
        log.write(context, stream, text)


class StreamRouter:
    """``sys.stdout`` or ``sys.stderr``: a stage's writes go to its capture, others to ``stream``."""

    def __init__(self, name: str, stream: Any) -> None:
        self.name = name
        self.stream = stream

    def write(self, text: str) -> int:
        context = current_run_context()
        if context is not None and context.stage is not None:
            log = capture_of(context)
            if log is not None and log.limit:
                log.write(context, self.name, text)
                return len(text)
        return self.stream.write(text) if self.stream is not None else len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self.stream is not None:
            self.stream.flush()

    def isatty(self) -> bool:
        return self.stream is not None and self.stream.isatty()

    def __getattr__(self, name: str) -> Any:  # fileno, encoding, buffer, ...: the wrapped stream's
        return getattr(self.stream, name)


def _captured_record(record: logging.LogRecord) -> bool:
    """Whether a record was captured for a stage (so Python's last-resort handler does not print it too)."""
    return not getattr(record, "flowdapt_captured", False)


_previous_factory: Callable[..., logging.LogRecord] | None = None


def _record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _previous_factory(*args, **kwargs)  # type: ignore[misc]
    context = current_run_context()
    if context is not None and context.stage is not None and record.name is not None:
        log = capture_of(context)
        if log is not None and log.limit:
            log.record(context, record)
            record.flowdapt_captured = True
    return record


_install_lock = threading.Lock()


def ensure_capture() -> None:
    """Route this process's ``sys.stdout``/``sys.stderr`` and log records to stage captures (once; the
    streams are wrapped again when something replaced them since, e.g. a test's capture)."""
    global _previous_factory
    if isinstance(sys.stdout, StreamRouter) and isinstance(sys.stderr, StreamRouter) and _previous_factory:
        return
    with _install_lock:
        for name in ("stdout", "stderr"):
            if not isinstance(getattr(sys, name), StreamRouter):
                setattr(sys, name, StreamRouter(name, getattr(sys, name)))
        if _previous_factory is None:
            _previous_factory = logging.getLogRecordFactory()
            logging.setLogRecordFactory(_record_factory)
            if logging.lastResort is not None:
                logging.lastResort.addFilter(_captured_record)


def get_run_logger() -> logging.Logger:
    """A logger whose ``info`` records are kept with the stage's logs (``logging.getLogger(__name__)``
    works too, at the levels your logging configuration lets through: by default warnings and up)."""
    logger = logging.getLogger("flowdapt.stage")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    return logger


# -- lines shipped to a run by other channels (Dask's events) -----------------------------------------------
_live: dict[str, RunCapture] = {}
# Runs just ended, while their records are held: lines that come late still land.
_recent: collections.deque[weakref.ref[RunCapture]] = collections.deque(maxlen=64)


def register(capture: RunCapture) -> None:
    """Let :func:`deliver` find ``capture`` while its run goes on (and a little after)."""
    _live[capture.run_uid] = capture


def unregister(capture: RunCapture) -> None:
    if _live.pop(capture.run_uid, None) is not None:
        _recent.append(weakref.ref(capture))


def run_capture(run_uid: str) -> RunCapture | None:
    """The capture of a run this process runs (or ran a moment ago), if any."""
    capture = _live.get(run_uid)
    if capture is None and _recent:
        capture = next((each for each in map(weakref.ref.__call__, _recent)
                        if each is not None and each.run_uid == run_uid), None)
    return capture


def deliver(run_uid: str, stage: str, attempt: int, shipped: Shipped) -> bool:
    """Hand lines shipped by a worker to their run's capture; False if the run is unknown here."""
    capture = run_capture(run_uid)
    if capture is None:
        return False
    capture.extend(stage, attempt, shipped)
    return True
