"""The models on the REST API's wire that are the server's own: request bodies and query strings.

Handlers (:mod:`flowdapt.server.handlers`) validate requests with them and the OpenAPI document
(:mod:`flowdapt.server.openapi`) is generated from them, so the two cannot disagree. Resources, runs
and history rows have their models where they live (:mod:`flowdapt.resources.models`,
:mod:`flowdapt.history.models`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from flowdapt.events.models import ENGINE_TYPE_PREFIXES
from flowdapt.history.models import MAX_OFFSET, Instant, RequiredInstant, RunQuery
from flowdapt.resources.models import RunState, TriggerRule


class Page(BaseModel):
    """Paging of list routes."""

    model_config = ConfigDict(extra="forbid")
    limit: int = Field(default=100, ge=1, le=10_000)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


class RunOptions(BaseModel):
    """Query of ``POST workflows/{id}/run``."""

    model_config = ConfigDict(extra="forbid")
    wait: bool = True
    namespace: str | None = None
    executor: str | None = None
    source: Literal["api", "manual", "notebook"] = "api"  # what a client may say it is; never "trigger"


class RunsQuery(RunQuery):
    """Query of ``GET runs``: the history's filters, with states and sources checked."""

    model_config = ConfigDict(extra="forbid")
    state: RunState | None = None
    source: Literal["manual", "api", "trigger", "notebook"] | None = None


class FiringsQuery(Page):
    since: Instant = None


class EventIn(BaseModel):
    """Body of ``POST events``: a user event (the engine's own types are refused: they drive runs)."""

    model_config = ConfigDict(extra="forbid")
    type: str = Field(min_length=1, max_length=256)
    data: Any = None
    source: str = Field(default="user", max_length=256)
    channel: str = Field(default="events", max_length=256)

    @field_validator("type")
    @classmethod
    def _not_the_engines(cls, value: str) -> str:
        if value.startswith(ENGINE_TYPE_PREFIXES):
            raise ValueError(f"'{value}' is an engine event type ({', '.join(ENGINE_TYPE_PREFIXES)}...): "
                             "only the engine publishes those; give your event a type of its own")
        return value


class StageModuleIn(BaseModel):
    """Body of ``PUT stage-modules/{module}``: a ``%%flowdapt stage`` cell's source."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1)


class RunAgainOptions(BaseModel):
    """Query of ``POST runs/{id}/rerun`` and ``runs/{id}/resume``."""

    model_config = ConfigDict(extra="forbid")
    wait: bool = True
    executor: str | None = None  # default: the executor the run ran on
    source: Literal["api", "manual", "notebook"] = "api"


class LogsQuery(BaseModel):
    """Query of ``GET runs/{id}/logs``: lines numbered after ``after``; ``follow`` streams until the run ends."""

    model_config = ConfigDict(extra="forbid")
    stage: str | None = None
    attempt: int | None = Field(default=None, ge=1)
    after: int = Field(default=-1, ge=-1)
    limit: int = Field(default=10_000, ge=1, le=100_000)
    follow: bool = False


class BackfillIn(BaseModel):
    """Body of ``POST triggers/{id}/backfill``: the range of schedule times (naive times are UTC)."""

    model_config = ConfigDict(extra="forbid")
    start: RequiredInstant = Field(description="first schedule time to fire (inclusive)")
    end: RequiredInstant = Field(description="last schedule time to fire (inclusive; times after now are left out)")
    concurrency: int = Field(default=4, ge=1, le=64, description="runs of the backfill going on at once")
    wait: bool = Field(default=False, description="answer once every run has ended")


class CacheQuery(BaseModel):
    """Query of ``DELETE cache``: the entries of one workflow (and stage), or all."""

    model_config = ConfigDict(extra="forbid")
    workflow: str | None = None
    stage: str | None = None


class NotebookIn(BaseModel):
    """Body of ``POST notebooks/workflow``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    notebook: str = Field(min_length=1, description="path under the workbench root, ending in .ipynb")
    kernel_name: str | None = None
    cell_timeout: float | None = Field(default=None, gt=0)


class DrainOptions(BaseModel):
    """Query of ``POST drain``: wait at most ``timeout`` seconds."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    timeout: float | None = Field(default=None, ge=0)


# -- answers -------------------------------------------------------------------------------------------
# What the routes write that is not a resource, run or history row; handlers answer through these
# models (``FlowdaptHandler.answer``), so the OpenAPI document's response schemas are the bodies.


class ApiInfo(BaseModel):
    """``GET /``."""

    app: Literal["flowdapt"] = "flowdapt"
    version: str
    api_version: Literal["v1"] = "v1"


class Dashboard(BaseModel):
    """A cluster executor's dashboard; ``url`` is relative to the base URL when ``proxied``."""

    kind: str
    url: str
    proxied: bool
    target: str


class ServerStatus(ApiInfo):
    """``GET status``: what the server runs and what is stored."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["server"] = "server"
    app_dir: str
    database: str = Field(description="the history database's URL, password hidden")
    backend: str
    schema_version: int
    executor: str
    namespace: str
    runs: int
    running: int
    queued: int
    draining: bool
    workflows: int
    configs: int
    trigger_rules: int
    schedules: int
    conditions: int
    trigger_firings: int
    trigger_suppressed: int
    dashboards: list[Dashboard]


class DrainState(BaseModel):
    """``POST drain`` and ``DELETE drain``; ``drained`` (POST only) says whether every run ended in time."""

    draining: bool
    drained: bool | None = None
    running: int
    queued: int


class TriggerStatus(BaseModel):
    """A trigger's read-only state as served; ``error`` says why a schedule stopped."""

    enabled: bool
    last_fire_time: datetime | None
    next_fire_time: datetime | None
    error: str | None = None


class ServedTriggerRule(TriggerRule):
    """A trigger rule as served: the resource and its read-only ``status``."""

    status: TriggerStatus


class PublishedEvent(BaseModel):
    """``POST events``: the event as published (``time`` in seconds since the epoch)."""

    id: str
    time: float
    type: str
    source: str
    channel: str
    data: Any


class SavedStageModule(BaseModel):
    """``PUT stage-modules/{module}``."""

    module: str
    path: str


class CacheCleared(BaseModel):
    """``DELETE cache``."""

    deleted: int = Field(ge=0)


class LogsRecorded(BaseModel):
    """``POST runs/{id}/logs``."""

    recorded: int = Field(ge=0)


class WorkflowVersionRecorded(BaseModel):
    """``PUT workflow-versions/{version}``."""

    version: str


DateTimeText = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]  # as isoformat() writes it


class BackfillFiring(BaseModel):
    """One due time a backfill fired: its run, or why it could not start one."""

    scheduled_for: DateTimeText
    run_uid: str | None
    error: str | None


class BackfillAnswer(BaseModel):
    """``POST triggers/{id}/backfill``: the plan, and what fired so far (all of it with ``wait``)."""

    trigger: str
    start: DateTimeText
    end: DateTimeText
    concurrency: int
    times: list[DateTimeText] = Field(description="the due times in the range, oldest first")
    already_fired: list[DateTimeText] = Field(description="those that had fired before: left alone")
    fired: list[BackfillFiring]
    done: bool
