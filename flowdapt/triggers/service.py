"""The trigger service: fires schedule triggers on time and condition triggers on matching events.

Schedules: one task sleeps until the earliest next fire time of all enabled schedule triggers
(or until a trigger changes), so a firing is late by the loop's wake-up time only; there is no
polling interval. CPU-bound stages on the local threads executor hold the GIL for the interpreter's
switch interval (5 ms) at a time, and the loop and the claiming thread each wait behind them: from
:data:`SHARPEN_LEAD` before a due time until its firings end, the switch interval is lowered to
:data:`FINE_SWITCH_INTERVAL` (then restored), so the wake-up is not delayed by tens of milliseconds;
CPU-bound threads lose a few per cent of their throughput meanwhile (all the time, for a schedule
that fires every second).

A trigger's *anchor* is its last fire time (from the database) or, if later, its last update: due
times are the cron times after the anchor up to now. With ``catchup: false`` (the default) all
missed times fire once, as the latest; with ``catchup: true`` each fires, up to
:data:`MAX_CATCHUP`. Every firing is claimed through :class:`~flowdapt.history.triggers.TriggerLedger`,
which stores the last fire time with the firing record in one transaction and honours leases, so a
time never fires twice: not after a restart, not with two servers on one database.

Service levels: a schedule firing that starts more than the trigger's ``sla`` seconds after its time
publishes ``com.event.trigger.schedule_late``; due times a schedule skips (``catchup: false`` after the
service was down or blocked) publish ``com.event.trigger.schedule_missed``, one per time. A ``notify``
condition trigger turns them into a webhook or an email. :meth:`TriggerService.backfill` fires a
schedule's past times (:mod:`flowdapt.triggers.backfill`).

Conditions: every event on the bus is evaluated against each enabled condition trigger; a match
runs the action at once and records the firing with its outcome afterwards. A condition trigger
never fires on an event its own firing caused: the service remembers which triggers led to each
run it started (the causes of the firing that started it, plus that trigger) and attaches them to
the run's events and to its firing events, so no chain of triggers can feed on itself, however
long (chains are also cut at :data:`MAX_CHAIN` triggers). A trigger that matches more than
``rate_limit`` times a minute is suppressed for the rest of that minute: the first dropped match
is recorded as a firing whose outcome says so, the others are only counted.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

from flowdapt.events.bus import BaseEventBus
from flowdapt.events.models import Event, RunFinished
from flowdapt.history.models import TriggerFiring
from flowdapt.history.recorder import TRIGGER_FIRED
from flowdapt.history.store import HistoryStore
from flowdapt.history.triggers import Outcome, ScheduleClaim, TriggerLedger
from flowdapt.resources.models import TriggerRule, WorkflowRun
from flowdapt.triggers.actions import ActionContext, Submit, get_action
from flowdapt.triggers.backfill import Backfill, Wait, plan_backfill, run_backfill
from flowdapt.triggers.batching import ThreadBatcher
from flowdapt.triggers.conditions import evaluate
from flowdapt.triggers.schedule import due_times_before

_log = logging.getLogger("flowdapt.triggers")
RUN_FINISHED = RunFinished.TYPE
RUN_EVENT_PREFIX = "com.event.workflow."
SCHEDULE_LATE = "com.event.trigger.schedule_late"  # a firing started later after its time than the trigger's sla
SCHEDULE_MISSED = "com.event.trigger.schedule_missed"  # a due time was skipped (catchup: false after a gap)
MAX_CATCHUP = 100
MAX_CHAIN = 16  # triggers one after another: a longer chain of firings is cut
MAX_REMEMBERED_RUNS = 10_000  # runs started by triggers whose causes are kept until they finish
RATE_WINDOW = 60.0  # seconds over which a condition trigger's firings are counted
# Seconds before a due time from which threads switch finely. Under CPU-bound stage threads every step of
# the event loop is slow at the default interval, the wake-up that starts fine switching included: it must
# come early enough for the loop to be quick again by the due time (docs/performance.md).
SHARPEN_LEAD = 1.0
FINE_SWITCH_INTERVAL = 0.0002  # seconds, for sys.setswitchinterval (the default is 0.005)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Schedule:
    """An enabled schedule trigger and the first time it is due (computed once per anchor: the loop asks
    every schedule at every wake-up, and a cron computation costs far more than the question)."""

    trigger: TriggerRule
    anchor: datetime
    _next_due: datetime | None = field(default=None, init=False, repr=False)

    @property
    def next_due(self) -> datetime:
        """The first cron time after the anchor (aware UTC)."""
        if self._next_due is None:
            self._next_due = min(_cron(expression, self.trigger.spec.timezone, self.anchor).get_next(datetime)
                                 for expression in self.trigger.spec.rule).astimezone(timezone.utc)
        return self._next_due

    def move_anchor(self, anchor: datetime) -> None:
        """Fired up to ``anchor``: the next due time is after it."""
        self.anchor = anchor
        self._next_due = None

    def due_times(self, now: datetime) -> list[datetime]:
        """The times to fire now, oldest first: the latest due one, or every one with catch-up."""
        spec = self.trigger.spec
        if not spec.catchup:
            latest = max(_cron(expression, spec.timezone, now + timedelta(microseconds=1)).get_prev(datetime)
                         for expression in spec.rule).astimezone(timezone.utc)
            return [latest] if latest > self.anchor else []
        times: set[datetime] = set()
        for expression in spec.rule:
            cron = _cron(expression, spec.timezone, self.anchor)
            while len(times) <= MAX_CATCHUP * len(spec.rule):
                when = cron.get_next(datetime).astimezone(timezone.utc)
                if when > now:
                    break
                times.add(when)
        return sorted(times)[-MAX_CATCHUP:]


class FineSwitching:
    """Lowers the interpreter's thread switch interval while held; the first hold saves it, the last restores it.

    The interval is process-wide, so every trigger service of a process shares :data:`FINE_SWITCHING`.
    """

    def __init__(self, interval: float = FINE_SWITCH_INTERVAL) -> None:
        self.interval = interval
        self._holds = 0
        self._saved = 0.0
        self._lock = threading.Lock()

    def hold(self) -> None:
        with self._lock:
            if self._holds == 0:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self._saved, self.interval))
            self._holds += 1

    def release(self) -> None:
        with self._lock:
            self._holds -= 1
            if self._holds == 0:
                sys.setswitchinterval(self._saved)


FINE_SWITCHING = FineSwitching()


def _cron(expression: str, zone: str, start: datetime) -> Any:
    from croniter import croniter

    return croniter(expression, start.astimezone(ZoneInfo(zone)))


class TriggerService:
    """Fires triggers and records each firing with its outcome.

    Parameters
    ----------
    store : the open history store (trigger definitions, last fire times, firing log)
    bus : events to evaluate condition triggers on; firings are published there too
    submit : starts a workflow run (the compute service's ``submit``)
    owner : who claims firings (``host:pid``)
    lease_seconds : how long a claim keeps another server from firing the same trigger
    refresh_seconds : how often to re-read trigger definitions changed by other processes
    rate_limit : firings a condition trigger may make per minute (0: no limit)
    wait : waits for a run to end (backfills hold at most their concurrency of runs)
    """

    def __init__(self, store: HistoryStore, bus: BaseEventBus, submit: Submit, *, owner: str,
                 lease_seconds: float = 30.0, refresh_seconds: float = 10.0, rate_limit: int = 60,
                 wait: Wait | None = None) -> None:
        self.store = store
        self.bus = bus
        self.submit = submit
        self.wait = wait  # the compute service's ``wait``: a backfill waits for its runs (its concurrency)
        self.ledger = TriggerLedger(store, owner, lease_seconds)
        # Times due together are claimed, and their outcomes recorded, in one transaction each.
        self._claims = ThreadBatcher(self.ledger.claim_schedules)
        self._outcomes = ThreadBatcher(self.ledger.record_outcomes)
        self.refresh_seconds = refresh_seconds
        self.schedules: dict[str, Schedule] = {}
        self.conditions: list[TriggerRule] = []
        self.fired = 0
        self._last_fire: dict[str, datetime] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._firings: set[asyncio.Task] = set()
        self._unsubscribe: Any = None
        self._switching = FINE_SWITCHING
        self.rate_limit = rate_limit
        self.suppressed = 0
        self._caused_by: dict[str, frozenset[str]] = {}  # run uid -> the triggers whose firings led to it
        self._recent: defaultdict[str, deque[float]] = defaultdict(deque)  # trigger uid -> its firing times
        self._suppressed_until: dict[str, float] = {}  # trigger uid -> end of the window it is suppressed in
        self.failed: dict[str, str] = {}  # trigger uid -> why its schedule stopped (until the trigger changes)

    async def start(self) -> None:
        """Load the triggers, start the schedule loop and listen for events."""
        await self._load()
        self._unsubscribe = self.bus.subscribe(self._on_event)
        self._task = asyncio.create_task(self._schedule_loop(), name="flowdapt-schedules")

    async def stop(self) -> None:
        """Stop firing, wait for firings under way, give up this server's leases."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._firings:
            await asyncio.gather(*self._firings, return_exceptions=True)
        await asyncio.to_thread(self.ledger.release)

    async def reload(self) -> None:
        """Re-read trigger definitions now (after one was created, changed or deleted) and reschedule; a
        schedule that failed is tried again."""
        self.failed.clear()
        await self._load()
        self._changed.set()  # wakes the schedule loop to sleep until the new earliest time

    def status(self, trigger: TriggerRule) -> dict[str, Any]:
        """``enabled``, ``last_fire_time`` and ``next_fire_time`` (schedules) of a trigger; ``error`` says why a
        schedule that failed stopped."""
        status = trigger_status(trigger, self._last_fire.get(trigger.uid))
        if trigger.uid in self.failed:
            status["error"] = self.failed[trigger.uid]
        return status

    async def firings(self, trigger: str, since: datetime | None, limit: int, offset: int) -> list[TriggerFiring]:
        """The firing log of trigger ``trigger`` (name), newest first."""
        return await asyncio.to_thread(self.store.trigger_firings, trigger=trigger, since=since,
                                       limit=limit, offset=offset)

    # -- schedules ---------------------------------------------------------------------------------------
    async def _load(self) -> None:
        triggers: list[TriggerRule] = await asyncio.to_thread(self.store.list, "trigger_rule")  # type: ignore[arg-type]
        self._last_fire = await asyncio.to_thread(self.ledger.last_fire_times)
        enabled = [trigger for trigger in triggers if trigger.spec.enabled]
        previous, self.schedules = self.schedules, {}
        for trigger in enabled:
            if trigger.spec.type == "schedule" and trigger.uid not in self.failed:
                anchor = _anchor(trigger, self._last_fire.get(trigger.uid))
                kept = previous.get(trigger.uid)
                if kept is not None and kept.trigger == trigger and kept.anchor >= anchor:
                    self.schedules[trigger.uid] = kept  # unchanged: its next due time is known
                    continue
                schedule = Schedule(trigger, anchor)
                try:
                    schedule.next_due  # noqa: B018 - a schedule that cannot say when it is due stops alone
                except Exception as exc:  # noqa: BLE001
                    self._schedule_failed(trigger, exc)
                else:
                    self.schedules[trigger.uid] = schedule
        self.conditions = [t for t in enabled if t.spec.type == "condition"]

    async def _schedule_loop(self) -> None:
        refresh_at = _utcnow() + timedelta(seconds=self.refresh_seconds)
        sharp = False  # holding fine switching for a due time that is near
        try:
            while True:
                now = _utcnow()
                due: dict[str, datetime] = {}
                for uid, schedule in list(self.schedules.items()):
                    try:
                        due[uid] = schedule.next_due
                        if due[uid] <= now:
                            self._fire_due(schedule, now)
                            due[uid] = schedule.next_due
                    except Exception as exc:  # noqa: BLE001 - one schedule must never stop the others
                        due.pop(uid, None)
                        self._schedule_failed(schedule.trigger, exc)
                if sharp:
                    self._switching.release()
                    sharp = False
                wake = refresh_at
                next_due = min(due.values(), default=None)
                if next_due is not None:
                    sharp = (next_due - _utcnow()).total_seconds() <= SHARPEN_LEAD
                    wake = min(wake, next_due if sharp else next_due - timedelta(seconds=SHARPEN_LEAD))
                    if sharp:
                        self._switching.hold()
                try:
                    await asyncio.wait_for(self._changed.wait(), timeout=max((wake - _utcnow()).total_seconds(), 0))
                except asyncio.TimeoutError:
                    pass
                self._changed.clear()
                if _utcnow() >= refresh_at:  # definitions changed by other processes sharing the database
                    refresh_at = _utcnow() + timedelta(seconds=self.refresh_seconds)
                    try:
                        await self._load()
                    except Exception:  # noqa: BLE001 - keep the schedules running on a database hiccup
                        _log.exception("could not reload triggers")
        finally:
            if sharp:
                self._switching.release()

    def _schedule_failed(self, trigger: TriggerRule, exc: Exception) -> None:
        """Stop one schedule that failed (until its trigger changes), log it and record it as a firing of
        that trigger; the other schedules go on."""
        error = f"schedule stopped: {type(exc).__name__}: {exc}"
        _log.error("trigger %s: %s", trigger.name, error, exc_info=exc)
        self.failed[trigger.uid] = error
        self.schedules.pop(trigger.uid, None)
        self._spawn(trigger, [None], None, suppressed=error)

    def _fire_due(self, schedule: Schedule, now: datetime) -> None:
        times = schedule.due_times(now)
        if not times:
            schedule.move_anchor(now)
            return
        if not schedule.trigger.spec.catchup and schedule.next_due < times[0]:
            self._missed(schedule.trigger, schedule.anchor, times[0])  # due times not made up: said, not silent
        schedule.move_anchor(times[-1])
        self._switching.hold()  # until the firing has claimed its times and started its action
        self._spawn(schedule.trigger, times, None).add_done_callback(lambda _: self._switching.release())

    def _missed(self, trigger: TriggerRule, after: datetime, before: datetime) -> None:
        """Publish a ``schedule_missed`` event for each due time of ``trigger`` strictly between two times
        (the newest :data:`MAX_CATCHUP`)."""
        spec = trigger.spec
        missed = due_times_before(list(spec.rule), before, after + timedelta(microseconds=1), spec.timezone,
                                  MAX_CATCHUP)
        for when in reversed(missed):
            self.bus.publish(Event(type=SCHEDULE_MISSED, source="triggers", channel="triggers", data={
                "trigger": trigger.name, "scheduled_for": when.astimezone(timezone.utc).isoformat(),
                "catchup": spec.catchup}))

    def _check_sla(self, trigger: TriggerRule, scheduled: datetime, fired_at: datetime) -> None:
        """Publish ``schedule_late`` when a firing started later after its time than the trigger's ``sla``."""
        late_by = (fired_at - scheduled).total_seconds()
        if trigger.spec.sla is not None and late_by > trigger.spec.sla:
            _log.warning("trigger %s fired %.1fs after its time %s (sla %gs)", trigger.name, late_by,
                         scheduled.isoformat(), trigger.spec.sla)
            self.bus.publish(Event(type=SCHEDULE_LATE, source="triggers", channel="triggers", data={
                "trigger": trigger.name, "scheduled_for": scheduled.isoformat(), "fired_at": fired_at.isoformat(),
                "late_by": round(late_by, 3), "sla": trigger.spec.sla}))

    # -- backfills ---------------------------------------------------------------------------------------
    async def backfill(self, trigger: TriggerRule, start: datetime, end: datetime, concurrency: int = 4,
                       wait: bool = False) -> Backfill:
        """Fire ``trigger``'s action for each of its due times in ``[start, end]`` that did not fire yet
        (see :mod:`flowdapt.triggers.backfill`); returns at once unless ``wait``, the rest going on here."""
        plan = await asyncio.to_thread(plan_backfill, trigger, start, end, concurrency,
                                       lambda first, last: self.ledger.claimed_times(trigger.uid, first, last))
        action = trigger.spec.action.target

        async def claim(when: datetime) -> str | None:
            return await asyncio.to_thread(self.ledger.claim_backfill, trigger.uid, trigger.name, action, when)

        async def record(firing: str, run_uid: str | None, error: str | None) -> None:
            await self._outcomes.submit(Outcome(firing, run_uid, error))

        def announce(outcome: dict[str, Any]) -> None:
            self.fired += 1
            self.bus.publish(Event(type=TRIGGER_FIRED, source="triggers", channel="triggers", data={
                "trigger": trigger.name, "action": action, "run_uid": outcome["run_uid"],
                "ok": outcome["error"] is None, "error": outcome["error"], "scheduled_for": outcome["scheduled_for"],
                "backfill": True, "caused_by": [trigger.name]}))

        async def wait_for(run: WorkflowRun) -> Any:
            return await self.wait(run) if self.wait is not None else run

        task = asyncio.ensure_future(run_backfill(plan, trigger, claim=claim, record=record,
                                                  submit=self._caused_submit(frozenset({trigger.name})),
                                                  wait=wait_for, announce=announce))
        self._firings.add(task)
        task.add_done_callback(self._firings.discard)
        if wait:
            return await task
        return plan

    # -- conditions --------------------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        causes = self._causes(event)
        if self.conditions:
            data = event.to_dict()
            for trigger in self.conditions:
                if trigger.name in causes:
                    continue  # its own firing led to this event
                try:
                    matched = evaluate(trigger.spec.rule, data)
                except Exception:  # noqa: BLE001 - a rule that cannot be evaluated on this event does not match
                    _log.debug("condition of trigger %s failed on %s", trigger.name, event.type, exc_info=True)
                    continue
                if matched:
                    self._fire_condition(trigger, event, causes)
        if event.type == RUN_FINISHED and isinstance(event.data, dict):
            self._caused_by.pop(event.data.get("uid"), None)

    def _causes(self, event: Event) -> frozenset[str]:
        """The triggers whose firings led to ``event`` (none for a user's event or a run started by hand)."""
        data = event.data if isinstance(event.data, dict) else {}
        if event.type == TRIGGER_FIRED:
            return frozenset(data.get("caused_by") or ())
        if event.type.startswith(RUN_EVENT_PREFIX):
            return self._caused_by.get(data.get("uid"), frozenset())
        return frozenset()

    def _fire_condition(self, trigger: TriggerRule, event: Event, causes: frozenset[str]) -> None:
        if len(causes) >= MAX_CHAIN:
            self._suppress(trigger, event, causes, f"a chain of {MAX_CHAIN} triggers firing one another was cut")
            return
        now = time.monotonic()
        if self.rate_limit:
            recent = self._recent[trigger.uid]
            while recent and recent[0] <= now - RATE_WINDOW:
                recent.popleft()
            if len(recent) >= self.rate_limit:
                if self._suppressed_until.get(trigger.uid, 0.0) <= now:  # recorded once per window
                    self._suppressed_until[trigger.uid] = recent[0] + RATE_WINDOW
                    self._suppress(trigger, event, causes, f"over the rate limit of {self.rate_limit} firings a "
                                                           "minute: matches are dropped until it is under again")
                else:
                    self.suppressed += 1
                return
            recent.append(now)
        self._spawn(trigger, [None], event, causes)

    def _suppress(self, trigger: TriggerRule, event: Event, causes: frozenset[str], reason: str) -> None:
        self.suppressed += 1
        _log.warning("trigger %s suppressed: %s", trigger.name, reason)
        self._spawn(trigger, [None], event, causes, suppressed=f"suppressed: {reason}")

    # -- firing ------------------------------------------------------------------------------------------
    def _spawn(self, trigger: TriggerRule, times: list[datetime | None], event: Event | None,
               causes: frozenset[str] = frozenset(), suppressed: str | None = None) -> asyncio.Future:
        task = asyncio.ensure_future(self._fire_in_order(trigger, times, event, causes, suppressed))
        self._firings.add(task)
        task.add_done_callback(self._firings.discard)
        return task

    async def _fire_in_order(self, trigger: TriggerRule, times: list[datetime | None], event: Event | None,
                             causes: frozenset[str], suppressed: str | None) -> None:
        # Catch-up times are claimed oldest first: a newer claim would make the older ones look fired.
        for scheduled in times:
            await self._fire(trigger, scheduled, event, causes | {trigger.name}, suppressed)

    async def _fire(self, trigger: TriggerRule, scheduled: datetime | None, event: Event | None,
                    causes: frozenset[str], suppressed: str | None) -> None:
        """Run the trigger's action (unless ``suppressed`` says why not) and record the firing; runs it starts
        are remembered as caused by ``causes``."""
        action = trigger.spec.action
        firing = None
        if scheduled is not None:  # schedules claim the time first: it must fire exactly once
            firing = await self._claims.submit(ScheduleClaim(trigger.uid, trigger.name, action.target, scheduled))
            if firing is None:
                return
            self._last_fire[trigger.uid] = scheduled
        fired_at = _utcnow()
        if scheduled is not None:
            self._check_sla(trigger, scheduled, fired_at)
        run_uid, error = None, suppressed
        if suppressed is None:
            self.fired += 1
            try:
                context = ActionContext(trigger, event, self._caused_submit(causes), scheduled)
                run_uid = await get_action(action.target)(context, action.parameters)
            except Exception as exc:  # noqa: BLE001 - the outcome is recorded on the firing
                error = f"{type(exc).__name__}: {exc}"
                _log.warning("trigger %s: action %s failed: %s", trigger.name, action.target, error)
        if firing is None:  # an event firing is recorded once, with its outcome, off the path to the run
            await asyncio.to_thread(self.ledger.claim, trigger.uid, trigger.name, action.target, None,
                                    fired_at=fired_at, run_uid=run_uid, error=error)
        else:
            await self._outcomes.submit(Outcome(firing, run_uid, error))
        self.bus.publish(Event(type=TRIGGER_FIRED, source="triggers", channel="triggers", data={
            "trigger": trigger.name, "action": action.target, "run_uid": run_uid, "ok": error is None,
            "error": error, "scheduled_for": scheduled and scheduled.isoformat(), "caused_by": sorted(causes)}))

    def _caused_submit(self, causes: frozenset[str]) -> Submit:
        """The compute service's ``submit``, remembering that the runs it starts were caused by ``causes``
        before they start (their first events may reach :meth:`_on_event` before ``submit`` returns)."""

        async def submit(*args: Any, **kwargs: Any) -> Any:
            uid = uuid4().hex
            if len(self._caused_by) >= MAX_REMEMBERED_RUNS:  # runs that never reported an end (cancelled queued)
                del self._caused_by[next(iter(self._caused_by))]
            self._caused_by[uid] = causes
            try:
                return await self.submit(*args, uid=uid, **kwargs)
            except BaseException:
                self._caused_by.pop(uid, None)
                raise

        return submit


def trigger_status(trigger: TriggerRule, last_fire: datetime | None) -> dict[str, Any]:
    """``enabled``, ``last_fire_time`` and ``next_fire_time`` (enabled schedules) of a trigger that last
    fired at ``last_fire``."""
    status: dict[str, Any] = {"enabled": trigger.spec.enabled, "last_fire_time": last_fire and last_fire.isoformat(),
                              "next_fire_time": None, "error": None}
    if trigger.spec.type == "schedule" and trigger.spec.enabled:
        try:
            status["next_fire_time"] = Schedule(trigger, _anchor(trigger, last_fire)).next_due.isoformat()
        except Exception as exc:  # noqa: BLE001 - a trigger stored by an older version: said, not a failure
            status["error"] = f"{type(exc).__name__}: {exc}"
    return status


def _anchor(trigger: TriggerRule, last_fire: datetime | None) -> datetime:
    updated = trigger.metadata.updated_at
    updated = updated if updated.tzinfo else updated.replace(tzinfo=timezone.utc)
    return max(last_fire, updated) if last_fire is not None else updated
