"""Cron parsing for schedule triggers (croniter: 5 fields, or 6 with seconds last)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
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


def due_times_before(expressions: list[str], end: datetime, start: datetime, timezone: str = "UTC",
                     limit: int = 1000) -> list[datetime]:
    """The times in ``[start, end)`` any of ``expressions`` matches (aware, in ``timezone``), newest
    first, at most ``limit`` of them: the newest ``limit`` when there are more.

    Plain cron fields (numbers, ranges, lists, steps, names) are expanded day by day: the cost is the
    number of times found plus one check per day, not one croniter step per time. Expressions with
    ``L``, ``W`` or ``#`` are stepped through with croniter. As with croniter, a wall-clock time a DST
    change repeats counts once (its second occurrence); one it skips does not count (croniter fires it
    at the change).
    """
    zone = ZoneInfo(timezone)
    found: set[datetime] = set()
    for expression in expressions:
        fields = _plain_fields(expression)
        if fields is None:
            found.update(_stepped(expression, end, start, zone, limit))
        else:
            found.update(_expanded(fields, end, start, zone, limit))
    return sorted(found, reverse=True)[:limit]


_SPECIAL = set("#LlWw")
_FULL = (range(60), range(24), range(1, 32), range(1, 13), range(7), range(60))  # min hour dom month dow sec


def _plain_fields(expression: str) -> list[list[int] | None] | None:
    """croniter's expansion of each field (``None`` for ``*``), or ``None`` if a field is special."""
    from croniter import croniter

    if _SPECIAL & set(expression):
        return None
    expanded = croniter(expression).expanded
    return [None if values == ["*"] else sorted({int(value) % 7 if index == 4 else int(value) for value in values})
            for index, values in enumerate(expanded)]


def _expanded(fields: list[list[int] | None], end: datetime, start: datetime, zone: ZoneInfo,
              limit: int) -> list[datetime]:
    from datetime import timedelta, timezone as tz

    minutes, hours, days, months, weekdays = (values or list(_FULL[index]) if index != 2 and index != 4 else values
                                              for index, values in enumerate(fields[:5]))
    seconds = (fields[5] or list(_FULL[5])) if len(fields) == 6 else [0]
    clock = [(hour, minute, second) for hour in reversed(hours) for minute in reversed(minutes)
             for second in reversed(seconds)]
    day, first = end.astimezone(zone).date(), start.astimezone(zone).date()
    found: list[datetime] = []
    while day >= first and len(found) < limit:
        if day.month in months and _day_matches(day, days, weekdays):
            for hour, minute, second in clock:
                # fold=1: a wall-clock time a DST change repeats is due at its second occurrence (as croniter has it)
                local = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=zone, fold=1)
                if not start <= local < end or local.astimezone(tz.utc).astimezone(zone).hour != hour:
                    continue  # outside the window, or a wall-clock time a DST change skips
                found.append(local)
                if len(found) == limit:
                    break
        day -= timedelta(days=1)
    return found


def _day_matches(day: Any, days: list[int] | None, weekdays: list[int] | None) -> bool:
    """Cron's day rule: with both day-of-month and day-of-week restricted, either matches (croniter's default)."""
    by_date = days is None or day.day in days
    by_weekday = weekdays is None or (day.weekday() + 1) % 7 in weekdays
    if days is not None and weekdays is not None:
        return by_date or by_weekday
    return by_date and by_weekday


def _stepped(expression: str, end: datetime, start: datetime, zone: ZoneInfo, limit: int) -> list[datetime]:
    from croniter import croniter

    cron, found = croniter(expression, end.astimezone(zone)), []
    for _ in range(limit):
        when = cron.get_prev(datetime)
        if when < start:
            break
        found.append(when)
    return found
