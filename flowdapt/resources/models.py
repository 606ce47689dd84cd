"""Pydantic models of flowdapt's resources, in Flowdapt's kind/metadata/spec envelope.

The models check a document's shape (types, names, sizes, which fields go together); what only the
engine or the trigger service knows (stage graph and types, importable targets, cron and condition
syntax, actions) is checked by the rules they register in :mod:`flowdapt.resources.checks`.
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone
from typing import Annotated, Any, Callable, ClassVar, Iterable, Literal, Union
from uuid import UUID, uuid4

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from flowdapt.resources.naming import run_name
from flowdapt.units import SIZE_PATTERN, parse_bytes, parse_duration

NAME_PATTERN = r"^[A-Za-z0-9_-]+$"
# Resource and stage names become parts of file names (output notebooks, stage modules), which most
# file systems cap at 255 bytes.
NAME_MAX_LENGTH = 128
SUPPORTED_VERSIONS = ("v1alpha1",)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso_time(value: Any) -> Any:
    """Times on the wire are ISO 8601 text (or datetimes in Python), never seconds since the epoch."""
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1)
                                           .isdigit()):
        raise ValueError("expected an ISO 8601 date-time such as 2026-01-31T12:00:00Z, not a number")
    return value


Timestamp = Annotated[datetime, BeforeValidator(iso_time), Field(strict=False)]
MAX_INT32 = 2**31 - 1
Count = Annotated[int, Field(ge=0, le=MAX_INT32)]  # what the history stores in 32-bit integer columns


class _Model(BaseModel):
    # Strict: a document's types are what its schema says (no "1" for 1, no false for 0); times and
    # uids are text in JSON and YAML, so those fields take text.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)


class Metadata(_Model):
    """Identity of a resource: ``name`` is unique per kind; ``uid`` never changes."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=NAME_PATTERN, max_length=NAME_MAX_LENGTH)
    uid: UUID = Field(default_factory=uuid4, strict=False)
    created_at: Timestamp = Field(default_factory=utcnow)
    updated_at: Timestamp = Field(default_factory=utcnow)
    annotations: Annotated[dict[str, str], WithJsonSchema({
        "type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]},
        "description": "text; numbers and booleans (as YAML writes them) are kept as their text"})] = Field(
        default_factory=dict)

    @field_validator("annotations", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(item, (str, int, float)):
                    raise ValueError(f"annotation '{key}' must be text, a number or a boolean, "
                                     f"got {type(item).__name__}")
            return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items()}
        return value


class StageResources(BaseModel):
    """What one call of a stage needs: ``cpus``, ``gpus``, ``memory`` (bytes) and custom labels."""

    model_config = ConfigDict(extra="allow", strict=True,
                              json_schema_extra={"additionalProperties": {"type": "number", "minimum": 0}})

    cpus: float | None = Field(default=None, ge=0)
    gpus: float | None = Field(default=None, ge=0)
    memory: Annotated[int | None, WithJsonSchema({"anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": SIZE_PATTERN},
        {"type": "null"}], "description": "bytes, or a size such as 512MB, 8GB, 1GiB"})] = None

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        return None if value is None else parse_bytes(value)

    @model_validator(mode="after")
    def _custom_labels_are_numbers(self) -> "StageResources":
        for key, value in (self.model_extra or {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"custom resource '{key}' must be a non-negative number, got {value!r}")
            self.model_extra[key] = float(value)
        return self

    def as_dict(self) -> dict[str, float]:
        """Requested amounts only (unset ones left out); computed once, do not mutate."""
        return self._requested

    @functools.cached_property
    def _requested(self) -> dict[str, float]:
        out = {k: v for k, v in (("cpus", self.cpus), ("gpus", self.gpus), ("memory", self.memory)) if v is not None}
        out.update(self.model_extra or {})
        return out


class StageOptions(BaseModel):
    """Per-stage options. Unknown keys are kept for stage types that need them (e.g. notebooks)."""

    model_config = ConfigDict(extra="allow", strict=True)

    map_on: str | None = None
    allow_partial_failure: bool = True
    retries: int = Field(default=0, ge=0)
    retry_delay: float = Field(default=0.0, ge=0)
    timeout: float | None = Field(default=None, gt=0)
    cache: bool = False
    cache_ttl: float | None = None
    cache_key: str | None = None
    keep_output: Union[bool, Literal["memory", "artifact"]] = False

    @field_validator("cache_ttl", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @field_validator("cache_key")
    @classmethod
    def _import_path(cls, value: str | None) -> str | None:
        if value is not None and (value.count(".") < 1 or not all(part.isidentifier() for part in value.split("."))):
            raise ValueError(f"'{value}' is not an import path of a function (package.module.function)")
        return value


class WorkflowStage(_Model):
    """One node of a workflow: a Python callable (import path) or a notebook."""

    name: str = Field(pattern=NAME_PATTERN, max_length=NAME_MAX_LENGTH)
    target: Union[str, Callable[..., Any]]
    type: str = "simple"
    depends_on: list[str] = Field(default_factory=list)
    options: StageOptions = Field(default_factory=StageOptions)
    resources: StageResources = Field(default_factory=StageResources)
    description: str = ""
    version: str = ""
    priority: int | None = None

    @field_validator("depends_on", mode="before")
    @classmethod
    def _one_dependency(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("target")
    @classmethod
    def _target_not_empty(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty")
        return value


class WorkflowSpec(_Model):
    stages: list[WorkflowStage] = Field(min_length=1)


class ConfigSelector(_Model):
    kind: str | None = None
    type: Literal["name", "annotation"] = "name"
    value: Union[str, dict[str, str], None] = None

    @field_validator("value", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        return Metadata._stringify(value)

    @model_validator(mode="after")
    def _value_matches_type(self) -> "ConfigSelector":
        if self.type == "annotation" and not isinstance(self.value, dict):
            raise ValueError("an annotation selector needs value: {key: value}")
        if self.type == "name" and not isinstance(self.value, str):
            raise ValueError("a name selector needs value: <resource name>")
        return self


_SELECTOR_SCHEMA = {"oneOf": [
    {"type": "object", "additionalProperties": False, "required": ["value"], "properties": {
        "kind": {"type": ["string", "null"]}, "type": {"const": "name", "default": "name"},
        "value": {"type": "string", "description": "a resource name"}}},
    {"type": "object", "additionalProperties": False, "required": ["type", "value"], "properties": {
        "kind": {"type": ["string", "null"]}, "type": {"const": "annotation"},
        "value": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]},
                  "description": "annotations"}}},
    {"type": "null"}]}


class ConfigSpec(_Model):
    selector: Annotated[ConfigSelector | None, WithJsonSchema(_SELECTOR_SCHEMA)] = None
    data: dict[str, Any]


class TriggerAction(_Model):
    """What a trigger does: a registered action (``run_workflow``, ``run_notebook``, ``notify``, plugins' ones)
    or an import path ``pkg.mod.func``."""

    target: str
    parameters: dict[str, Any] = Field(default_factory=dict, alias="params")

    @model_validator(mode="after")
    def _known_target(self) -> "TriggerAction":
        if self.target == "run_workflow" and not self.parameters.get("workflow"):
            raise ValueError("run_workflow needs parameters.workflow")
        if self.target == "run_notebook" and not self.parameters.get("notebook"):
            raise ValueError("run_notebook needs parameters.notebook")
        return self


class TriggerRuleSpec(_Model):
    type: Literal["schedule", "condition"] = "condition"
    rule: Union[list[str], dict[str, Any]]
    action: TriggerAction
    timezone: str = "UTC"
    catchup: bool = False
    enabled: bool = True
    sla: float | None = None  # schedules: seconds after its time by which a firing must have started

    @field_validator("sla", mode="before")
    @classmethod
    def _sla_duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @model_validator(mode="after")
    def _rule_matches_type(self) -> "TriggerRuleSpec":
        if self.type == "schedule":
            if isinstance(self.rule, str):
                self.rule = [self.rule]
            if not isinstance(self.rule, list) or not self.rule:
                raise ValueError("rule: a schedule needs a list of cron strings")
        else:
            if not isinstance(self.rule, dict) or not self.rule:
                raise ValueError("rule: a condition needs a non-empty mapping such as {eq: [{var: type}, ...]}")
        return self

    @field_validator("rule", mode="before")
    @classmethod
    def _single_cron(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class Resource(_Model):
    """The envelope every resource shares."""

    kind: str
    version: Annotated[str | None, WithJsonSchema({"anyOf": [{"enum": list(SUPPORTED_VERSIONS)}, {"type": "null"}]})] = None
    metadata: Metadata
    spec: Any

    KIND: ClassVar[str] = ""

    @field_validator("version")
    @classmethod
    def _supported_version(cls, value: str | None) -> str | None:
        if value is not None and value not in SUPPORTED_VERSIONS:
            raise ValueError(f"unsupported version '{value}' (supported: {', '.join(SUPPORTED_VERSIONS)})")
        return value

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def uid(self) -> str:
        return str(self.metadata.uid)

    def to_document(self) -> dict[str, Any]:
        """The JSON-safe document stored and served (callable targets are written by import path)."""
        return self.model_dump(mode="json", exclude_none=True, fallback=_describe_callable)


def _describe_callable(value: Any) -> Any:
    if callable(value):
        return f"{value.__module__}.{value.__qualname__}"
    raise TypeError(f"cannot serialise {type(value).__name__}")


class Workflow(Resource):
    KIND: ClassVar[str] = "workflow"
    kind: Literal["workflow"] = "workflow"
    spec: WorkflowSpec


class Config(Resource):
    KIND: ClassVar[str] = "config"
    kind: Literal["config"] = "config"
    spec: ConfigSpec


class TriggerRule(Resource):
    KIND: ClassVar[str] = "trigger_rule"
    kind: Literal["trigger_rule"] = "trigger_rule"
    spec: TriggerRuleSpec


RESOURCE_KINDS: dict[str, type[Resource]] = {cls.KIND: cls for cls in (Workflow, Config, TriggerRule)}

RunState = Literal["pending", "running", "finished", "failed", "cancelled", "interrupted"]
StageState = Literal["pending", "running", "finished", "cached", "failed", "cancelled", "skipped"]
TERMINAL_STATES = frozenset({"finished", "failed", "cancelled", "interrupted"})


class ErrorInfo(BaseModel):
    """An exception as recorded: its type, its own message and the traceback."""

    type: str
    message: str
    traceback: str = ""
    stage: str | None = None

    @classmethod
    def from_exception(cls, exc: BaseException, stage: str | None = None, traceback: str | None = None) -> "ErrorInfo":
        import traceback as tb

        text = traceback if traceback is not None else "".join(tb.format_exception(type(exc), exc, exc.__traceback__))
        return cls(type=type(exc).__name__, message=str(exc), traceback=text, stage=stage)

    def __str__(self) -> str:
        where = f" in stage '{self.stage}'" if self.stage else ""
        return f"{self.type}{where}: {self.message}"


class ItemFailure(BaseModel):
    """One failed item of a parameterized stage."""

    index: Count
    type: str
    message: str
    traceback: str = ""


class StageRun(BaseModel):
    """The record of one stage within a run."""

    name: str
    type: str = "simple"
    state: StageState = "pending"
    attempts: Count = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: ErrorInfo | None = None
    items_total: Count | None = None
    items_done: Count = 0
    items_failed: Count = 0
    item_failures: list[ItemFailure] = Field(default_factory=list)
    output_notebook: str | None = None
    cached_from: str | None = None  # state cached: the run (uid) or cache entry its output came from

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish, when both are known."""
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    # The engine's two transitions of a record on every stage, one call each.
    def attempt_started(self, attempt: int, at: datetime | None) -> None:
        """``attempt`` runs (``pending``, or waiting for a retry, -> ``running``); ``at``, the stage's
        start, is given on the first attempt."""
        self.attempts = attempt
        self.state = "running"
        if at is not None:
            self.started_at = at

    def succeeded(self, at: datetime, cached_from: str | None = None) -> None:
        """``running`` -> ``finished``, or ``cached`` where ``cached_from`` says where the output came
        from; an earlier attempt's error is cleared."""
        if cached_from is None:
            self.state = "finished"
        else:
            self.state = "cached"
            self.cached_from = cached_from
        self.error = None
        self.finished_at = at

    @classmethod
    def pending(cls, stages: Iterable[tuple[str, str]]) -> list["StageRun"]:
        """New pending records of ``(name, type)`` pairs."""
        return [cls(name=name, type=type) for name, type in stages]


class WorkflowRun(BaseModel):
    """One execution of a workflow (kind ``workflow_run``, read-only).

    Returned by :func:`flowdapt.run_workflow`; while the run goes on, :meth:`wait` and
    :meth:`cancel` control it.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    kind: Literal["workflow_run"] = "workflow_run"
    uid: str = Field(default_factory=lambda: uuid4().hex)
    name: str = ""
    workflow: str
    source: Literal["manual", "api", "trigger", "notebook"] = "manual"
    state: RunState = "pending"
    executor: str = "local"
    namespace: str = "default"
    input: dict[str, Any] = Field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: Any = None
    error: ErrorInfo | None = None
    stages: list[StageRun] = Field(default_factory=list)
    workflow_version: str | None = None  # a hash of the workflow's spec as it ran (its document is in the history)
    logical_time: datetime | None = None  # the schedule time a scheduled or backfilled run is for
    rerun_of: str | None = None  # uid of the run this one runs again (same input, same workflow version)
    resumed_from: str | None = None  # uid of the failed or cancelled run this one resumes

    _control: Any = PrivateAttr(default=None)
    _definition: Any = PrivateAttr(default=None)  # the Workflow it runs (in the process that runs it)

    def model_post_init(self, __context: Any) -> None:
        if not self.name:
            self.name = run_name(self.uid)

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def duration(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    def stage(self, name: str) -> StageRun:
        """The record of stage ``name``."""
        for record in self.stages:
            if record.name == name:
                return record
        raise KeyError(f"run '{self.name}' has no stage '{name}'")

    def attach(self, control: Any, definition: Workflow) -> None:
        """Bind this record to its execution in this process (the engine calls it once, before the run
        starts): :meth:`wait` and :meth:`cancel` act on ``control`` (the engine's ``RunControl``: its
        ``wait(timeout)`` and ``cancel()``), ``definition`` is the workflow run."""
        self._control = control
        self._definition = definition

    @property
    def in_this_process(self) -> bool:
        """Whether this process executes the run (its events reach this process's listeners); False for
        a record read from the history or a server."""
        return self._control is not None

    @property
    def definition(self) -> Workflow | None:
        """The workflow this run executes, in the process that executes it (see :meth:`attach`)."""
        return self._definition

    def wait(self, timeout: float | None = None) -> "WorkflowRun":
        """Block until the run reaches a terminal state (or ``timeout`` seconds pass)."""
        if self._control is not None:
            self._control.wait(timeout)
        return self

    def cancel(self) -> None:
        """Ask the run to stop: running stages are cancelled, pending ones skipped."""
        if self._control is not None:
            self._control.cancel()

    def to_document(self) -> dict[str, Any]:
        return self.model_dump(mode="json", fallback=repr)

    def __repr__(self) -> str:
        return f"<WorkflowRun {self.name} workflow={self.workflow} state={self.state}>"
