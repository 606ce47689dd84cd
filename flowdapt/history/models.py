"""Wire models of history query results (the tables live in :mod:`flowdapt.history.orm`)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field


MAX_OFFSET = 10**12  # far beyond any history, well inside every database's 64-bit integers
EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=timezone.utc), datetime(9000, 1, 1, tzinfo=timezone.utc)


def checked_instant(value: datetime | None) -> datetime | None:
    """A time a query may filter on: between the years 1900 and 9000 (naive times are UTC)."""
    if value is None:
        return None
    try:
        aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        inside = EARLIEST <= aware <= LATEST
    except OverflowError:
        inside = False
    if not inside:
        raise ValueError("must be between the years 1900 and 9000")
    return value


Instant = Annotated[datetime | None, AfterValidator(checked_instant)]


class RunQuery(BaseModel):
    """Filters and paging for listing runs (newest first)."""

    workflow: str | None = None
    state: str | None = None
    source: str | None = None
    since: Instant = None
    until: Instant = None
    limit: int = Field(default=50, ge=1, le=10_000)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)
    stages: bool = False  # with each run's stages (the latest attempt of each), as one run is shown


class StageAttempt(BaseModel):
    """One attempt of one stage of a run."""

    stage: str
    attempt: int
    type: str
    state: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = None
    error: dict[str, Any] | None = None
    items_total: int | None = None
    items_done: int | None = None
    items_failed: int | None = None


class DailyWorkflowStats(BaseModel):
    """One workflow on one day (UTC): how many runs ended, how many succeeded, how long they took."""

    workflow: str
    day: date
    runs: int
    finished: int
    failed: int
    success_rate: float
    mean_duration: float | None
    p50_duration: float | None
    p95_duration: float | None


class StageStats(BaseModel):
    """Duration statistics of one stage of one workflow over its attempts."""

    workflow: str
    stage: str
    attempts: int
    failed: int
    mean_duration: float | None
    p50_duration: float | None
    p95_duration: float | None
    max_duration: float | None
    items_failed: int


class TriggerFiring(BaseModel):
    """One time a trigger fired, and what came of it."""

    id: str
    trigger: str
    fired_at: datetime
    action: str
    run_uid: str | None = None
    ok: bool
    error: str | None = None


class DatabaseStatus(BaseModel):
    """What ``flowctl status`` reports about the history database."""

    url: str
    backend: Literal["duckdb", "sqlite", "postgresql"]
    schema_version: int | None
    runs: int
    running: int
