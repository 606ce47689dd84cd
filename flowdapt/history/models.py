"""Wire models of history query results (the tables live in :mod:`flowdapt.history.orm`)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator

from flowdapt.resources.models import Count, RunState, iso_time

RunSource = Literal["manual", "api", "trigger", "notebook"]
MAX_OFFSET = 10**12  # far beyond any history, well inside every database's 64-bit integers
FIRST_YEAR, LAST_YEAR = 1900, 8999  # as written: far inside what datetime and every database can hold
INSTANT_PATTERN = r"^(19[0-9]{2}|[2-8][0-9]{3})-"  # the same years, for the OpenAPI document


def checked_instant(value: datetime | None) -> datetime | None:
    """A time a query may filter on: written in the years 1900 to 8999 (naive times are UTC)."""
    if value is not None and not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"must be in the years {FIRST_YEAR} to {LAST_YEAR}")
    return value


_INSTANT_SCHEMA = {"type": "string", "format": "date-time", "pattern": INSTANT_PATTERN}
Instant = Annotated[datetime | None, BeforeValidator(iso_time), AfterValidator(checked_instant),
                    WithJsonSchema({"anyOf": [_INSTANT_SCHEMA, {"type": "null"}]})]
RequiredInstant = Annotated[datetime, BeforeValidator(iso_time), AfterValidator(checked_instant),
                            WithJsonSchema(_INSTANT_SCHEMA)]


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


class LogLine(BaseModel):
    """One line a stage attempt printed (``stdout``, ``stderr``) or logged (``log``, with level and logger);
    ``flowdapt`` lines count what went over the attempt's cap. ``seq`` numbers the lines of a run."""

    model_config = ConfigDict(strict=True)  # kernels report lines over REST: the types as the schema says

    seq: Count
    stage: str
    attempt: Count
    time: Annotated[datetime, BeforeValidator(iso_time), Field(strict=False)]
    stream: Literal["stdout", "stderr", "log", "flowdapt"]
    level: str | None = None
    logger: str | None = None
    message: str

    def render(self) -> str:
        """The line as ``flowctl logs`` prints it."""
        where = f"{self.stage}" + (f"#{self.attempt}" if self.attempt > 1 else "")
        label = self.level or ("ERR" if self.stream == "stderr" else "OUT")
        source = f" {self.logger}:" if self.logger else ""
        return f"{self.time:%H:%M:%S} {where} {label}{source} {self.message}"


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
    """Duration statistics of one stage of one workflow over its ended attempts (a box plot's numbers)."""

    workflow: str
    stage: str
    attempts: int
    failed: int
    mean_duration: float | None
    p50_duration: float | None
    p95_duration: float | None
    max_duration: float | None
    items_failed: int
    position: int | None = None  # where the stage stands in its workflow
    retried: int = 0  # attempts that were retries (attempt > 1)
    items_total: int = 0
    min_duration: float | None = None
    p05_duration: float | None = None
    p25_duration: float | None = None
    p75_duration: float | None = None


class TriggerFiring(BaseModel):
    """One time a trigger fired, and what came of it."""

    id: str
    trigger: str
    fired_at: datetime
    action: str
    run_uid: str | None = None
    ok: bool
    error: str | None = None
    scheduled_at: datetime | None = None  # the schedule time fired; None for condition triggers
    backfill: bool | None = None  # fired by a backfill


class DatabaseStatus(BaseModel):
    """What ``flowctl status`` reports about the history database."""

    url: str
    backend: Literal["duckdb", "sqlite", "postgresql"]
    schema_version: int | None
    runs: int
    running: int


# -- the dashboard's statistics (queries in :mod:`flowdapt.history.stats`) -------------------------------
def _utc(value: datetime | None) -> datetime | None:
    """A time without a zone is read as UTC (the history's zone)."""
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


class HistoryFilter(BaseModel):
    """Which runs a statistic covers: of a workflow, in a state, from a source, started in ``[since, until)``."""

    model_config = ConfigDict(extra="forbid")
    workflow: str | None = None
    state: RunState | None = None
    source: RunSource | None = None
    since: Instant = None
    until: Instant = None

    _zoned = field_validator("since", "until")(_utc)


class TimelineQuery(HistoryFilter):
    """Runs counted per hour or per day (UTC) of their start."""

    bucket: Literal["hour", "day"] = "day"


class TopQuery(HistoryFilter):
    """The most frequent of something (errors, failing items), at most ``limit``."""

    limit: int = Field(default=10, ge=1, le=1000)


class PunctualityQuery(BaseModel):
    """Trigger firings (fired in ``[since, until)``, of one trigger or all) and how punctual schedules were."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    trigger: str | None = None
    since: Instant = None
    until: Instant = None
    limit: int = Field(default=500, ge=1, le=10_000)
    late_after: float = Field(default=1.0, ge=0)

    _zoned = field_validator("since", "until")(_utc)


class RunBucket(BaseModel):
    """How many runs in one state started in one hour or day."""

    start: datetime
    state: str
    runs: int


class RunSummary(BaseModel):
    """Counts by state, success rate and duration percentiles of the runs a filter covers."""

    runs: int
    states: dict[str, int]
    ended: int
    finished: int
    failed: int
    success_rate: float | None  # finished / ended; None when none ended
    mean_duration: float | None
    p50_duration: float | None
    p95_duration: float | None


class WorkflowSummary(BaseModel):
    """One workflow's runs: counts, success rate, duration percentiles, latest start."""

    workflow: str
    runs: int
    ended: int
    finished: int
    failed: int
    active: int
    success_rate: float | None
    mean_duration: float | None
    p50_duration: float | None
    p95_duration: float | None
    last_started_at: datetime | None


class ErrorGroup(BaseModel):
    """Failed runs with the same error type and message, and the latest of them."""

    type: str | None
    message: str | None
    runs: int
    last_at: datetime | None
    last_run_uid: str
    last_run_name: str
    last_workflow: str
    stage: str | None


class ActiveRun(BaseModel):
    """A run that is queued or running now."""

    uid: str
    name: str
    workflow: str
    state: str
    source: str
    executor: str | None
    started_at: datetime | None


class ItemFailureCount(BaseModel):
    """How often one item (by index) of a parameterized stage failed, and its latest failure."""

    workflow: str
    stage: str
    item: int
    failures: int
    last_at: datetime | None
    last_run_uid: str
    type: str | None
    message: str | None


class FiringRecord(TriggerFiring):
    """A firing with its lateness (seconds after its schedule time; None for condition triggers)."""

    lateness: float | None = None
    late: bool = False


class MissedFiring(BaseModel):
    """A schedule time of an enabled schedule trigger that never fired."""

    trigger: str
    scheduled_at: datetime


class TriggerPunctuality(BaseModel):
    """One trigger's firings in the window: failures, lateness percentiles, late and missed times."""

    trigger: str
    firings: int
    failed: int
    late: int
    missed: int
    p50_lateness: float | None
    p95_lateness: float | None
    max_lateness: float | None
    last_fired_at: datetime | None


class PunctualityReport(BaseModel):
    """Per trigger punctuality, the newest firings and the missed schedule times (among the newest
    ``missed_checked`` due times of each enabled schedule trigger)."""

    late_after: float
    missed_checked: int
    triggers: list[TriggerPunctuality]
    firings: list[FiringRecord]
    missed: list[MissedFiring]


class HistoryVersion(BaseModel):
    """Changes whenever a run starts, ends or is deleted, or a trigger fires (the dashboard polls it)."""

    runs: int
    last_started_at: datetime | None
    last_finished_at: datetime | None
    firings: int
    last_fired_at: datetime | None
