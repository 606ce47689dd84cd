"""Trigger bookkeeping that must be exactly once: last fire times, firing leases and the firing log.

A schedule fires a given time at most once, even across restarts and with two servers on one
database: :meth:`TriggerLedger.claim` advances the trigger's last fire time and inserts the firing
record in ONE transaction, and only if the time is newer than the last one and no other live server
holds the trigger's lease (the lease of a dead process on this host is void). The conditional
``UPDATE ... RETURNING`` is atomic on every backend
(PostgreSQL re-checks the row after a concurrent update, SQLite serialises writers, DuckDB aborts
one of two conflicting transactions), so exactly one claimant wins.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from uuid import uuid4

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from flowdapt.history import orm
from flowdapt.history.bulk import naive_utc
from flowdapt.history.store import HistoryStore, owner_alive

_log = logging.getLogger("flowdapt.triggers")
_s = orm.trigger_state.c
_f = orm.trigger_firings.c


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
        with self.store._engine.connect() as conn:
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
            with self.store._engine.begin() as conn:
                if scheduled is not None and not self._advance(conn, trigger_uid, naive_utc(scheduled), naive_utc(now)):
                    return None
                conn.execute(insert(orm.trigger_firings).values(
                    id=firing_id, trigger=trigger_name, fired_at=naive_utc(now), action=action,
                    run_uid=run_uid, ok=error is None, error=error, scheduled_at=naive_utc(scheduled)))
        except (IntegrityError, DBAPIError) as exc:
            # Another server inserted the state row or updated it concurrently: it fires, not us.
            _log.debug("lost the claim on trigger %s: %s", trigger_name, exc)
            return None
        return firing_id

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

    def record_outcome(self, firing_id: str, *, run_uid: str | None, error: str | None) -> None:
        """Complete a firing record with what the action did."""
        with self.store._engine.begin() as conn:
            conn.execute(update(orm.trigger_firings).where(_f.id == firing_id)
                         .values(run_uid=run_uid, ok=error is None, error=error))

    def release(self) -> None:
        """Give up every lease this owner holds (on shutdown), so another server can take over at once."""
        with self.store._engine.begin() as conn:
            conn.execute(update(orm.trigger_state).where(_s.lease_owner == self.owner)
                         .values(lease_owner=None, lease_until=None))

    def forget(self, trigger_uid: str) -> None:
        """Drop the state of a deleted trigger."""
        with self.store._engine.begin() as conn:
            conn.execute(delete(orm.trigger_state).where(_s.trigger_uid == trigger_uid))
