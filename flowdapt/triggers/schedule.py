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


def due_times_before(expressions: list[str], end: datetime, start: datetime, timezone: str = "UTC",
                     limit: int = 1000) -> list[datetime]:
    """The times in ``[start, end)`` any of ``expressions`` matches (aware, in ``timezone``), newest
    first, at most ``limit`` of them: the newest ``limit`` when there are more."""
    from croniter import croniter

    zone = ZoneInfo(timezone)
    found: set[datetime] = set()
    for expression in expressions:
        cron = croniter(expression, end.astimezone(zone))
        for _ in range(limit):
            when = cron.get_prev(datetime)
            if when < start:
                break
            found.add(when)
    return sorted(found, reverse=True)[:limit]
