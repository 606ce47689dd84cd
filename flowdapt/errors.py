"""Exceptions raised by flowdapt. Every error is a :class:`FlowdaptError`.

Errors carry their data as attributes, pass every argument to ``super()`` so they
pickle across process pools, and render as one line that names what is wrong.
"""

from __future__ import annotations


class FlowdaptError(Exception):
    """Root of every flowdapt error."""


class ResourceError(FlowdaptError):
    """A resource document is malformed or invalid.

    The message names the file, the resource, the stage and the field where known,
    e.g. ``flows.yaml: workflow/train: stage 'fit': depends_on: unknown stage 'prep'``.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        kind: str | None = None,
        resource: str | None = None,
        stage: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message, file, kind, resource, stage, field)
        self.message = message
        self.file = file
        self.kind = kind
        self.resource = resource
        self.stage = stage
        self.field = field

    def __reduce__(self):
        return (_rebuild_resource_error, (self.message, self.file, self.kind, self.resource, self.stage, self.field))

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file)
        if self.resource or self.kind:
            parts.append(f"{self.kind or 'resource'}/{self.resource or '?'}")
        if self.stage:
            parts.append(f"stage '{self.stage}'")
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)


def _rebuild_resource_error(message, file, kind, resource, stage, field) -> ResourceError:
    return ResourceError(message, file=file, kind=kind, resource=resource, stage=stage, field=field)


class ResourceNotFoundError(FlowdaptError, KeyError):
    """No resource of this kind has the given name or uid."""

    def __init__(self, kind: str, identifier: str) -> None:
        super().__init__(kind, identifier)
        self.kind = kind
        self.identifier = identifier

    def __str__(self) -> str:
        return f"{self.kind} '{self.identifier}' not found"


class ResourceConflictError(FlowdaptError):
    """A resource with this name already exists."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(kind, name)
        self.kind = kind
        self.name = name

    def __str__(self) -> str:
        return f"{self.kind} '{self.name}' already exists"


class UnknownNameError(FlowdaptError, KeyError):
    """A registry lookup failed; the message lists the names that are known."""

    def __init__(self, what: str, name: str, known: list[str]) -> None:
        super().__init__(what, name, known)
        self.what = what
        self.name = name
        self.known = known

    def __str__(self) -> str:
        return f"unknown {self.what} '{self.name}' (known: {', '.join(sorted(self.known)) or 'none'})"


class ExecutorError(FlowdaptError):
    """An executor could not start, lost its cluster, or cannot place a stage."""


class StageTimeoutError(FlowdaptError, TimeoutError):
    """A stage ran longer than its ``options.timeout``."""

    def __init__(self, stage: str, timeout: float) -> None:
        super().__init__(stage, timeout)
        self.stage = stage
        self.timeout = timeout

    def __str__(self) -> str:
        return f"stage '{self.stage}' timed out after {self.timeout:g}s"


class RunCancelledError(FlowdaptError):
    """The run was cancelled before this stage could finish."""


class StageInputError(FlowdaptError, TypeError):
    """A stage's function cannot accept the arguments the workflow gives it."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(stage, message)
        self.stage = stage
        self.message = message

    def __str__(self) -> str:
        return f"stage '{self.stage}': {self.message}"


class OperationError(FlowdaptError):
    """An operation does not apply to what it names as things stand (resuming a run that finished,
    running again a workflow version the history does not hold)."""
