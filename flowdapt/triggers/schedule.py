"""Cron parsing for schedule triggers (croniter: 5 fields, or 6 with seconds last)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def validate_cron(expression: str) -> None:
    """Raise ``ValueError`` if ``expression`` is not a cron croniter can read."""
    from croniter import croniter

    if not isinstance(expression, str) or len(expression.split()) not in (5, 6):
        raise ValueError(f"rule: malformed cron '{expression}' (expected 5 fields, or 6 with seconds last)")
    if not croniter.is_valid(expression):
        raise ValueError(f"rule: malformed cron '{expression}'")


def check_fires(expression: str) -> None:
    """Raise ``ValueError`` if no date matches ``expression`` (``0 0 30 2 *``): checked when a trigger is
    applied, not when a stored one is read, so a trigger stored before this check still reads."""
    from croniter import CroniterBadDateError, croniter

    try:
        croniter(expression, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"cron '{expression}' never fires: no date matches it") from None


def validate_timezone(name: str) -> None:
    """Raise ``ValueError`` if ``name`` is not an IANA time zone."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone: unknown time zone '{name}'") from None


def next_fire_time(expression: str, after: datetime, timezone: str = "UTC") -> datetime:
    """The first time strictly after ``after`` that ``expression`` matches, in ``timezone``."""
    from croniter import croniter

    local = after.astimezone(ZoneInfo(timezone))
    return croniter(expression, local).get_next(datetime)
