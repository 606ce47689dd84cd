"""Sizes and durations as people write them in YAML and settings: ``"8GB"``, ``"1GiB"``, ``"1d12h"``, ``"90s"``."""

from __future__ import annotations

import re

SIZE_PATTERN = r"^[ \t\n\r]*([0-9]+(?:\.[0-9]+)?)[ \t\n\r]*([KkMmGgTtPp]?)([iI]?)[bB]?[ \t\n\r]*$"
_SIZE = re.compile(SIZE_PATTERN)
_SCALE = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5}


def parse_bytes(value: str | int | float) -> int:
    """Parse a size such as ``"8GB"`` (8·10⁹), ``"1GiB"`` (2³⁰), ``"100M"`` or ``512`` into bytes."""
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"invalid size {value!r}: must not be negative")
        return int(value)
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"invalid size {value!r} (expected e.g. '512MB', '8GB', '1GiB' or a number of bytes)")
    number, unit, binary = match.groups()
    base = 1024 if binary else 1000
    return int(float(number) * base ** _SCALE[unit.upper()])


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([wdhms])")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_retention(value: int | float | str) -> float | None:
    """Seconds to keep runs for: ``None`` keeps them forever (``-1``), ``0`` does not persist them.

    Accepts a number of seconds or a duration such as ``"7d"``, ``"12h"``, ``"1d12h"``, ``"90s"``.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid retention {value!r}")
    if isinstance(value, (int, float)):
        return None if value < 0 else float(value)
    text = str(value).strip().lower()
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return parse_retention(float(text))
    if not text or _DURATION.sub("", text).strip():
        raise ValueError(f"invalid retention '{value}' (use -1 to keep forever, 0, seconds, or e.g. '7d', '12h')")
    return float(sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION.findall(text)))


def parse_duration(value: int | float | str) -> float:
    """Seconds of a duration: a positive number of seconds, or e.g. ``"1d"``, ``"12h"``, ``"1d12h"``, ``"90s"``."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        elif not text or _DURATION.sub("", text).strip():
            raise ValueError(f"invalid duration '{value}' (use seconds, or e.g. '1d', '12h', '30m', '1d12h')")
        else:
            seconds = float(sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION.findall(text)))
    if seconds <= 0:
        raise ValueError(f"invalid duration {value!r}: must be positive")
    return seconds
