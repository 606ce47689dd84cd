"""Trigger bookkeeping that must be exactly once: last fire times, firing leases and the firing log.

A schedule fires a given time at most once, even across restarts and with two servers on one
database: :meth:`TriggerLedger.claim` advances the trigger's last fire time and inserts the firing
record in ONE transaction, and only if the time is newer than the last one and no other live server
holds the trigger's lease (the lease of a dead process on this host is void). The conditional
``UPDATE ... RETURNING`` is atomic on every backend
(PostgreSQL re-checks the row after a concurrent update, SQLite serialises writers, DuckDB aborts
one of two conflicting transactions), so exactly one claimant wins. The times due at one wake-up
are claimed together (:meth:`TriggerLedger.claim_schedules`): one transaction for all of them, so
200 schedules due in the same second cost one commit, not 200.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import NamedTuple, Sequence
from uuid import uuid4

from sqlalchemy import case, delete, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from flowdapt.history import orm
from flowdapt.history.bulk import naive_utc
from flowdapt.history.store import HistoryStore, owner_alive

_log = logging.getLogger("flowdapt.triggers")
_s = orm.trigger_state.c
_f = orm.trigger_firings.c


class ScheduleClaim(NamedTuple):
    """A schedule time a trigger is due to fire."""

    trigger_uid: str
    trigger_name: str
    action: str
    scheduled: datetime


class Outcome(NamedTuple):
    """What a firing's action did: the run it started, or why it failed."""

    firing_id: str
    run_uid: str | None
    error: str | None


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=timezone.utc)


class TriggerLedger:
    """Last fire times, leases and firing records of triggers in the history database.

    Parameters
    ----------
    store : the open history store
    owner : who claims firings (``host:pid`` of the server)
    lease_seconds : how long a claim keeps other servers from firing the same trigger
    """

    def __init__(self, store: HistoryStore, owner: str, lease_seconds: float = 30.0) -> None:
        self.store = store
        self.owner = owner
        self.lease_seconds = lease_seconds

    def last_fire_times(self) -> dict[str, datetime]:
        """The last fire time (aware UTC) of every trigger that has fired, by trigger uid."""
        with self.store.open_engine.connect() as conn:
            rows = conn.execute(select(_s.trigger_uid, _s.last_fire_time).where(_s.last_fire_time.is_not(None)))
            return {uid: _aware(when) for uid, when in rows}  # type: ignore[misc]

    def claim(self, trigger_uid: str, trigger_name: str, action: str, scheduled: datetime | None,
              *, fired_at: datetime | None = None, run_uid: str | None = None,
              error: str | None = None) -> str | None:
        """Record one firing; returns its id, or ``None`` if this time already fired or another server leads.

        ``scheduled`` is the schedule time being fired (``None`` for condition triggers, which only
        record the firing, with its outcome). The last fire time, the lease and the firing row
        commit together.
        """
        now = fired_at or datetime.now(timezone.utc)
        firing_id = uuid4().hex
        try:
            with self.store.open_engine.begin() as conn:
                if scheduled is not None:
                    if not self._advance(conn, trigger_uid, naive_utc(scheduled), naive_utc(now)):
                        return None
                    # A time a backfill fired already: the insert fails and the whole claim rolls back.
                    conn.execute(insert(orm.schedule_claims).values(
                        trigger_uid=trigger_uid, scheduled_at=naive_utc(scheduled), claimed_at=naive_utc(now)))
                conn.execute(insert(orm.trigger_firings).values(
                    id=firing_id, trigger=trigger_name, fired_at=naive_utc(now), action=action,
                    run_uid=run_uid, ok=error is None, error=error, scheduled_at=naive_utc(scheduled)))
        except (IntegrityError, DBAPIError) as exc:
            # Another server inserted the state row or updated it concurrently: it fires, not us.
            _log.debug("lost the claim on trigger %s: %s", trigger_name, exc)
            return None
        return firing_id

    def claim_schedules(self, claims: Sequence[ScheduleClaim]) -> list[str | None]:
        """:meth:`claim` for many schedule times at once, in one transaction: the firing id of each, or ``None``.

        A batch that cannot commit as a whole (a time a backfill fired, a conflict with another server,
        a trigger twice) is claimed one time at a time instead, so one claim never costs the others.
        """
        if len(claims) < 2 or len({claim.trigger_uid for claim in claims}) < len(claims):
            return [self.claim(*claim) for claim in claims]
        now = datetime.now(timezone.utc)
        try:
            with self.store.open_engine.begin() as conn:
                won = self._advance_many(conn, claims, naive_utc(now))
                ids = [uuid4().hex if claim.trigger_uid in won else None for claim in claims]
                fired = [(claim, firing_id) for claim, firing_id in zip(claims, ids) if firing_id is not None]
                if fired:
                    conn.execute(insert(orm.schedule_claims).values([
                        {"trigger_uid": claim.trigger_uid, "scheduled_at": naive_utc(claim.scheduled),
                         "claimed_at": naive_utc(now)} for claim, _ in fired]))
                    conn.execute(insert(orm.trigger_firings).values([
                        {"id": firing_id, "trigger": claim.trigger_name, "fired_at": naive_utc(now),
                         "action": claim.action, "run_uid": None, "ok": True, "error": None,
                         "scheduled_at": naive_utc(claim.scheduled)} for claim, firing_id in fired]))
        except (IntegrityError, DBAPIError) as exc:
            _log.debug("claiming %d schedule times together failed (%s): claiming them one by one", len(claims), exc)
            return [self.claim(*claim) for claim in claims]
        return ids

    def _advance_many(self, conn, claims: Sequence[ScheduleClaim], now: datetime) -> set[str]:
        """:meth:`_advance` for triggers claimed together; the uids of those whose time this server won."""
        uids = [claim.trigger_uid for claim in claims]
        owners = dict(conn.execute(select(_s.trigger_uid, _s.lease_owner).where(_s.trigger_uid.in_(uids))).all())
        missing = [uid for uid in uids if uid not in owners]
        if missing:
            conn.execute(insert(orm.trigger_state).values([{"trigger_uid": uid} for uid in missing]))
        for uid, owner in owners.items():
            if owner not in (None, self.owner) and not owner_alive(owner):
                conn.execute(update(orm.trigger_state).where(_s.trigger_uid == uid, _s.lease_owner == owner)
                             .values(lease_owner=None, lease_until=None))
        by_time: dict[datetime, list[str]] = {}
        for claim in claims:
            by_time.setdefault(naive_utc(claim.scheduled), []).append(claim.trigger_uid)
        won: set[str] = set()
        for scheduled, group in by_time.items():
            rows = conn.execute(
                update(orm.trigger_state)
                .where(_s.trigger_uid.in_(group),
                       or_(_s.last_fire_time.is_(None), _s.last_fire_time < scheduled),
                       or_(_s.lease_owner.is_(None), _s.lease_owner == self.owner, _s.lease_until < now))
                .values(last_fire_time=scheduled, lease_owner=self.owner,
                        lease_until=now + timedelta(seconds=self.lease_seconds))
                .returning(_s.trigger_uid))
            won.update(uid for (uid,) in rows)
        return won

    def _advance(self, conn, trigger_uid: str, scheduled: datetime, now: datetime) -> bool:
        state = conn.execute(select(_s.lease_owner).where(_s.trigger_uid == trigger_uid)).first()
        if state is None:
            conn.execute(insert(orm.trigger_state).values(trigger_uid=trigger_uid))
        elif state.lease_owner not in (None, self.owner) and not owner_alive(state.lease_owner):
            # The leaseholder crashed on this host (a restart after kill -9): its lease is void at once.
            conn.execute(update(orm.trigger_state)
                         .where(_s.trigger_uid == trigger_uid, _s.lease_owner == state.lease_owner)
                         .values(lease_owner=None, lease_until=None))
        won = conn.execute(
            update(orm.trigger_state)
            .where(_s.trigger_uid == trigger_uid,
                   or_(_s.last_fire_time.is_(None), _s.last_fire_time < scheduled),
                   or_(_s.lease_owner.is_(None), _s.lease_owner == self.owner, _s.lease_until < now))
            .values(last_fire_time=scheduled, lease_owner=self.owner,
                    lease_until=now + timedelta(seconds=self.lease_seconds))
            .returning(_s.trigger_uid)
        ).first()
        return won is not None

    def claim_backfill(self, trigger_uid: str, trigger_name: str, action: str, scheduled: datetime) -> str | None:
        """Record a backfill's firing of the schedule time ``scheduled``; returns its id, or ``None`` when that
        time fired already (by the schedule or a backfill, this one or another). The trigger's last fire
        time is left alone: a backfill fills in the past, the schedule goes on from where it is."""
        now = datetime.now(timezone.utc)
        firing_id = uuid4().hex
        try:
            with self.store.open_engine.begin() as conn:
                conn.execute(insert(orm.schedule_claims).values(
                    trigger_uid=trigger_uid, scheduled_at=naive_utc(scheduled), claimed_at=naive_utc(now)))
                conn.execute(insert(orm.trigger_firings).values(
                    id=firing_id, trigger=trigger_name, fired_at=naive_utc(now), action=action, run_uid=None, ok=True,
                    error=None, scheduled_at=naive_utc(scheduled), backfill=True))
        except (IntegrityError, DBAPIError) as exc:
            _log.debug("schedule time %s of trigger %s fired already: %s", scheduled, trigger_name, exc)
            return None
        return firing_id

    def claimed_times(self, trigger_uid: str, start: datetime, end: datetime) -> set[datetime]:
        """The schedule times of a trigger in ``[start, end]`` that fired already (aware UTC)."""
        c = orm.schedule_claims.c
        with self.store.open_engine.connect() as conn:
            rows = conn.execute(select(c.scheduled_at).where(c.trigger_uid == trigger_uid,
                                                             c.scheduled_at >= naive_utc(start),
                                                             c.scheduled_at <= naive_utc(end)))
            return {_aware(when) for (when,) in rows}  # type: ignore[misc]

    def record_outcome(self, firing_id: str, *, run_uid: str | None, error: str | None) -> None:
        """Complete a firing record with what the action did."""
        with self.store.open_engine.begin() as conn:
            conn.execute(update(orm.trigger_firings).where(_f.id == firing_id)
                         .values(run_uid=run_uid, ok=error is None, error=error))

    def record_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """:meth:`record_outcome` for many firings, in one statement. A firing is claimed as ``ok`` with no run:
        outcomes that say just that change nothing and are not written."""
        changed = [outcome for outcome in outcomes if outcome.run_uid is not None or outcome.error is not None]
        if not changed:
            return
        by_id = {outcome.firing_id: outcome for outcome in changed}
        with self.store.open_engine.begin() as conn:
            conn.execute(update(orm.trigger_firings).where(_f.id.in_(list(by_id))).values(
                run_uid=case({key: outcome.run_uid for key, outcome in by_id.items()}, value=_f.id),
                ok=case({key: outcome.error is None for key, outcome in by_id.items()}, value=_f.id),
                error=case({key: outcome.error for key, outcome in by_id.items()}, value=_f.id)))

    def release(self) -> None:
        """Give up every lease this owner holds (on shutdown), so another server can take over at once."""
        with self.store.open_engine.begin() as conn:
            conn.execute(update(orm.trigger_state).where(_s.lease_owner == self.owner)
                         .values(lease_owner=None, lease_until=None))

    def forget(self, trigger_uid: str) -> None:
        """Drop the state of a deleted trigger."""
        with self.store.open_engine.begin() as conn:
            conn.execute(delete(orm.trigger_state).where(_s.trigger_uid == trigger_uid))
