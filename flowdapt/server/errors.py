"""Errors of the server's services, and the one table that maps every error to an HTTP status."""

from __future__ import annotations

from pydantic import ValidationError

from flowdapt.errors import (
    ExecutorError,
    FlowdaptError,
    OperationError,
    ResourceConflictError,
    ResourceError,
    ResourceNotFoundError,
    UnknownNameError,
)
from flowdapt.history.errors import HistoryError
from flowdapt.notebook.paths import NotebookPathError


class ServiceUnavailableError(FlowdaptError):
    """The services are starting, stopping or draining; the request may succeed later."""


class RunStateError(FlowdaptError):
    """The run is not in a state that allows this (e.g. cancelling a run that already ended)."""


class RequestError(FlowdaptError):
    """A malformed request: ``status_code`` 400 (query, JSON) or 422 (a well-formed but invalid body)."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message, status_code)
        self.message = message
        self.status_code = status_code

    def __str__(self) -> str:
        return self.message


# First match wins: specific classes before their bases.
STATUS_BY_ERROR: tuple[tuple[type[BaseException], int], ...] = (
    (ResourceNotFoundError, 404),
    (ResourceConflictError, 409),
    (RunStateError, 409),
    (OperationError, 409),
    (ResourceError, 422),
    (NotebookPathError, 422),
    (ServiceUnavailableError, 503),
    (HistoryError, 503),
    (ExecutorError, 503),
    (UnknownNameError, 400),
)


class DatabaseUnavailableError(ServiceUnavailableError):
    """The history database cannot be reached now (restarting, failing over)."""


def service_error(exc: BaseException) -> BaseException:
    """``exc``, or what it means to a client: a lost database connection is a 503, not a bug."""
    from flowdapt.history.writer import disconnected

    if disconnected(exc):
        first = str(getattr(exc, "orig", exc) or exc).strip().splitlines()[0]
        return DatabaseUnavailableError(f"the history database is unreachable, try again shortly: {first}")
    return exc


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of a known error; ``None`` for a bug (answered as 500)."""
    exc = service_error(exc)
    if isinstance(exc, RequestError):
        return exc.status_code
    for kind, status in STATUS_BY_ERROR:
        if isinstance(exc, kind):
            return status
    return None


def describe_validation(exc: ValidationError, where: str) -> str:
    """One line naming the first invalid field of a request: ``query parameter 'limit': ...``."""
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        message = "required field is missing"
    elif error["type"] == "extra_forbidden":
        message = "unknown field"
    return f"{where} '{field}': {message}" if field else f"{where}: {message}"
