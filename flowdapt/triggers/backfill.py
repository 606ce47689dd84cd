"""Backfill: run a schedule trigger's action once for each of its due times in a past range.

Each time is claimed in the history before its action runs (:meth:`TriggerLedger.claim_backfill`),
in the same table the schedule claims its own times in, so no time runs twice: not when the same
backfill is started again, not when two backfills overlap, not when the schedule fired it itself.
Runs are tagged with the time they are for (``logical_time``, in the run and its context), and at
most ``concurrency`` of them go on at once (each time waits for its run to end before the next
starts in its place). Times are fired oldest first; times after now are left to the schedule.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

from flowdapt.errors import OperationError
from flowdapt.resources.models import TriggerRule, WorkflowRun
from flowdapt.triggers.actions import ActionContext, Submit, get_action
from flowdapt.triggers.schedule import due_times_before

MAX_TIMES = 1000  # due times one backfill fires at most
Wait = Callable[[WorkflowRun], Awaitable[Any]]


@dataclass
class Backfill:
    """A backfill of one trigger: the due times in its range, those that had fired already, what each did."""

    trigger: str
    start: datetime
    end: datetime
    concurrency: int
    times: list[datetime]
    already_fired: list[datetime]
    fired: list[dict[str, Any]] = field(default_factory=list)  # {scheduled_for, run_uid, error}, as they start
    done: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"trigger": self.trigger, "start": self.start.isoformat(), "end": self.end.isoformat(),
                "concurrency": self.concurrency, "times": [when.isoformat() for when in self.times],
                "already_fired": [when.isoformat() for when in self.already_fired], "fired": list(self.fired),
                "done": self.done}


def utc(value: datetime) -> datetime:
    """``value`` as aware UTC (a naive time is read as UTC)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def plan_backfill(trigger: TriggerRule, start: datetime, end: datetime, concurrency: int,
                  claimed: Callable[[datetime, datetime], set[datetime]], now: datetime | None = None) -> Backfill:
    """The due times of ``trigger`` in ``[start, end]`` (not after now), oldest first, and which of them
    ``claimed(start, end)`` says fired already. Raises :class:`OperationError` naming what is wrong."""
    if trigger.spec.type != "schedule":
        raise OperationError(f"trigger '{trigger.name}' is a {trigger.spec.type} trigger: only schedules have "
                             "times to backfill")
    if concurrency < 1:
        raise OperationError(f"concurrency must be at least 1, got {concurrency}")
    start, end = utc(start), utc(end)
    if start > end:
        raise OperationError(f"--from {start.isoformat()} is after --to {end.isoformat()}")
    now = now or datetime.now(timezone.utc)
    last = min(end, now)
    times = sorted(when.astimezone(timezone.utc) for when in due_times_before(
        list(trigger.spec.rule), last + timedelta(microseconds=1), start, trigger.spec.timezone, MAX_TIMES + 1))
    if len(times) > MAX_TIMES:
        raise OperationError(f"trigger '{trigger.name}' has more than {MAX_TIMES} due times between "
                             f"{start.isoformat()} and {last.isoformat()}: backfill a shorter range at a time")
    fired = claimed(start, last) if times else set()
    return Backfill(trigger.name, start, end, concurrency, times, [when for when in times if when in fired])


async def run_backfill(backfill: Backfill, trigger: TriggerRule, *, claim: Callable[[datetime], Awaitable[str | None]],
                       record: Callable[[str, str | None, str | None], Awaitable[None]], submit: Submit, wait: Wait,
                       announce: Callable[[dict[str, Any]], None] | None = None) -> Backfill:
    """Fire each due time of ``backfill`` not fired yet, at most ``backfill.concurrency`` runs at once.

    ``claim(time)`` claims a time (its firing id, or ``None`` when it fired meanwhile), ``record(firing,
    run_uid, error)`` records the firing's outcome, ``submit`` starts runs, ``wait(run)`` waits for one
    to end; ``announce`` is told of each firing as it starts.
    """
    action = trigger.spec.action
    lanes = asyncio.Semaphore(backfill.concurrency)
    skipped = set(backfill.already_fired)

    async def fire(when: datetime) -> None:
        async with lanes:
            firing = await claim(when)
            if firing is None:  # another backfill or the schedule got there first
                return
            started: list[WorkflowRun] = []

            async def submitting(*args: Any, **kwargs: Any) -> WorkflowRun:
                run = await submit(*args, **kwargs)
                started.append(run)
                return run

            run_uid, error = None, None
            try:
                run_uid = await get_action(action.target)(ActionContext(trigger, None, submitting, when),
                                                          action.parameters)
            except Exception as exc:  # noqa: BLE001 - recorded on the firing; the other times go on
                error = f"{type(exc).__name__}: {exc}"
            await record(firing, run_uid, error)
            outcome = {"scheduled_for": when.isoformat(), "run_uid": run_uid, "error": error}
            backfill.fired.append(outcome)
            if announce is not None:
                announce(outcome)
            for run in started:
                await wait(run)

    await asyncio.gather(*(fire(when) for when in backfill.times if when not in skipped))
    backfill.done = True
    return backfill
