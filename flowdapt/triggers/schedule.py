"""Cron parsing for schedule triggers (croniter: 5 fields, or 6 with seconds last)."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def validate_cron(expression: str) -> None:
    """Raise ``ValueError`` if ``expression`` is not a cron croniter can read."""
    if not isinstance(expression, str) or len(expression.split()) not in (5, 6):
        raise ValueError(f"malformed cron '{expression}' (expected 5 fields, or 6 with seconds last)")
    if not _readable(expression):
        raise ValueError(f"malformed cron '{expression}'")


@functools.lru_cache(maxsize=4096)
def _readable(expression: str) -> bool:
    # Remembered: croniter's check is costly and a service reloading its triggers checks the same crons again.
    from croniter import croniter

    return croniter.is_valid(expression)


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
        raise ValueError(f"unknown time zone '{name}'") from None


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


@functools.lru_cache(maxsize=1024)
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
    from bisect import bisect_left, bisect_right
    from datetime import timedelta, timezone as tz

    minutes, hours, days, months, weekdays = (values or list(_FULL[index]) if index != 2 and index != 4 else values
                                              for index, values in enumerate(fields[:5]))
    seconds = (fields[5] or list(_FULL[5])) if len(fields) == 6 else [0]
    clock = _clock(tuple(hours), tuple(minutes), tuple(seconds))
    end_local, start_local = end.astimezone(zone), start.astimezone(zone)
    day, first = end_local.date(), start_local.date()
    found: list[datetime] = []
    while day >= first and len(found) < limit:
        if day.month in months and _day_matches(day, days, weekdays):
            # Only the part of the day inside the window (a `* * * * * *` day has 86,400 times); on a day
            # with a DST change wall-clock times are not in instant order, so all of them are checked.
            low, high = 0, len(clock)
            if not _offset_changes(day, zone):
                if day == first:
                    low = bisect_left(clock, _wall_seconds(start_local))
                if day == end_local.date():
                    high = bisect_right(clock, _wall_seconds(end_local))
            for value in reversed(clock[low:high]):
                hour, minute, second = value // 3600, value // 60 % 60, value % 60
                # fold=1: a wall-clock time a DST change repeats is due at its second occurrence (as croniter has it)
                local = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=zone, fold=1)
                if not start <= local < end or local.astimezone(tz.utc).astimezone(zone).hour != hour:
                    continue  # outside the window, or a wall-clock time a DST change skips
                found.append(local)
                if len(found) == limit:
                    break
        day -= timedelta(days=1)
    return found


@functools.lru_cache(maxsize=256)
def _clock(hours: tuple[int, ...], minutes: tuple[int, ...], seconds: tuple[int, ...]) -> list[int]:
    """The times of day (seconds since midnight, ascending) that the clock fields match."""
    return sorted(hour * 3600 + minute * 60 + second for hour in hours for minute in minutes for second in seconds)


def _wall_seconds(moment: datetime) -> int:
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def _offset_changes(day: Any, zone: ZoneInfo) -> bool:
    """Whether the zone's UTC offset changes during ``day`` (a DST change)."""
    return (datetime(day.year, day.month, day.day, tzinfo=zone).utcoffset()
            != datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=zone).utcoffset())


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
