"""Stage functions of the example plugin."""

from __future__ import annotations

import os


def cities() -> list[str]:
    """The cities to forecast."""
    return ["lisbon", "oslo", "quito"]


def forecast(city: str) -> dict:
    """A (very) simple forecast for one city."""
    return {"city": city, "temperature": 3 * len(city)}


def summary(forecasts: list[dict]) -> dict:
    """Forecasts by city."""
    return {item["city"]: item["temperature"] for item in forecasts}


def where_loaded() -> dict:
    """Where this module was imported from, and by which process (to see the code reach a worker)."""
    return {"file": os.path.abspath(__file__), "pid": os.getpid()}
