"""Calling a stage's function inside a worker: the code every executor runs on its workers.

Nothing here raises: a failing call returns a :class:`TaskError` carrying the exception's type,
message and traceback, so errors cross thread, process and cluster boundaries unchanged.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
import traceback as tb
from dataclasses import dataclass
from typing import Any, Callable

import cloudpickle

from flowdapt.compute.context import RunContext, reset_run_context, set_run_context
from flowdapt.compute.logs import shipped
from flowdapt.compute.targets import Binding, callable_with_binding
from flowdapt.errors import StageInputError, StageTimeoutError
from flowdapt.settings import get_settings, set_settings


class TaskError:
    """A failure captured where it happened."""

    __slots__ = ("type", "message", "traceback")

    def __init__(self, type: str, message: str, traceback: str) -> None:
        self.type = type
        self.message = message
        self.traceback = traceback

    @classmethod
    def capture(cls, exc: BaseException) -> "TaskError":
        return cls(type(exc).__name__, str(exc), "".join(tb.format_exception(type(exc), exc, exc.__traceback__)))

    def __reduce__(self):
        return (TaskError, (self.type, self.message, self.traceback))

    def __repr__(self) -> str:
        return f"TaskError({self.type}: {self.message})"


@dataclass(slots=True)
class StageCall:
    """Everything a worker needs to call one stage (picklable; callables travel by cloudpickle)."""

    stage: str
    target: Any
    context: RunContext
    root: bool
    map_on: str | None = None
    timeout: float | None = None
    retries: int = 0
    retry_delay: float = 0.0
    allow_partial_failure: bool = True
    settings: Any = None  # the driver's Settings, so workers write artifacts where the driver reads them
    extras: Any = None  # a StageExtras (flowdapt.compute.outputs): keep, cache or reuse the output

    def to_wire(self) -> list[Any]:
        """The call as a list of plain values (str, bytes, numbers): its pickled state, and what Ray
        packs with msgpack (a tuple would go through Ray's slower pickler, see docs/performance.md).
        The target, the settings, the extras and the run's shared context are pickled once and cached."""
        target = _pickled(self.target).payload if callable(self.target) else self.target
        settings = _pickled(self.settings).payload if self.settings is not None else None
        extras = _pickled(self.extras).payload if self.extras is not None else None
        return [self.stage, target, _pickled_run_context(self.context), self.root, self.map_on, self.timeout,
                self.retries, self.retry_delay, self.allow_partial_failure, settings, self.context.attempt, extras]

    @classmethod
    def from_wire(cls, wire: list[Any]) -> "StageCall":
        """The call :meth:`to_wire` described (its context unpickled anew: stages may change it)."""
        call = cls.__new__(cls)
        call.__setstate__(wire)
        return call

    __getstate__ = to_wire

    def __setstate__(self, wire: list[Any]) -> None:
        (stage, target, context, root, map_on, timeout, retries, retry_delay, allow_partial_failure, settings,
         attempt, extras) = wire
        input, config, namespace, run, executor = cloudpickle.loads(context)
        self.stage, self.root, self.map_on, self.timeout = stage, root, map_on, timeout
        self.retries, self.retry_delay, self.allow_partial_failure = retries, retry_delay, allow_partial_failure
        self.target = _Pickled(target) if isinstance(target, bytes) else target
        self.context = RunContext(input, config, namespace, run, executor, stage, None, attempt)
        self.settings = None if settings is None else _Pickled(settings)
        self.extras = None if extras is None else _unpickle(_Pickled(extras))


class _Pickled:
    """Cloudpickled bytes of an object sent to workers again and again (a target, the settings)."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload


_pickled_cache: dict[int, tuple[Any, _Pickled]] = {}
_unpickled: dict[bytes, Any] = {}


_ITSELF = object()


def _pickled(obj: Any, value: Any = _ITSELF) -> _Pickled:
    """``value`` (by default ``obj`` itself) cloudpickled once per ``obj`` (the cache keeps ``obj`` alive,
    so ids stay unique)."""
    if isinstance(obj, _Pickled):  # a call pickled again without being run (e.g. by Dask's scheduler)
        return obj
    cached = _pickled_cache.get(id(obj))
    if cached is None or cached[0] is not obj:
        if len(_pickled_cache) > 4096:
            _pickled_cache.clear()
        payload = cloudpickle.dumps(obj if value is _ITSELF else value)
        cached = _pickled_cache[id(obj)] = (obj, _Pickled(payload))
    return cached[1]


def _pickled_run_context(context: RunContext) -> bytes:
    """The parts of ``context`` its run's stages share, pickled once per run (keyed by the run's info)."""
    run = context.run
    return _pickled(run, (context.input, context.config, context.namespace, run, context.executor)).payload


def _unpickle(value: Any) -> Any:
    if not isinstance(value, _Pickled):
        return value
    obj = _unpickled.get(value.payload)
    if obj is None:
        if len(_unpickled) > 4096:
            _unpickled.clear()
        obj = _unpickled[value.payload] = cloudpickle.loads(value.payload)
    return obj


def _function(call: StageCall) -> tuple[Callable[..., Any], Binding]:
    """The stage's function and how it takes arguments (after making the driver's settings current)."""
    settings = call.settings
    if settings is not None:
        if type(settings) is _Pickled:
            call.settings = settings = _unpickle(settings)
        if get_settings() is not settings:
            set_settings(settings)
    target = call.target
    if type(target) is _Pickled:
        call.target = target = _unpickle(target)
    return callable_with_binding(target)


# Outputs of these types are never awaited: a cheaper test than ``inspect.isawaitable`` on every call.
_NOT_AWAITABLE = frozenset({type(None), bool, int, float, complex, str, bytes, list, tuple, dict, set})


def awaited(value: Any, call: StageCall) -> Any:
    """``value``, or what it gives when awaited (an ``async def`` stage's coroutine)."""
    if type(value) not in _NOT_AWAITABLE and inspect.isawaitable(value):
        return _await(value, call)
    return value


def _await(awaitable: Any, call: StageCall) -> Any:
    if call.timeout is None:
        return asyncio.run(_as_coroutine(awaitable))
    try:
        return asyncio.run(asyncio.wait_for(_as_coroutine(awaitable), call.timeout))
    except asyncio.TimeoutError:
        raise StageTimeoutError(call.stage, call.timeout) from None


async def _as_coroutine(awaitable: Any) -> Any:
    return await awaitable


def stage_arguments(call: StageCall, binding: Binding, upstream: list[Any]) -> tuple[Any, dict[str, Any]]:
    """``(args, kwargs)`` of a simple stage's call: root stages get the input as keywords, others the
    upstream outputs positionally."""
    if call.root:
        return (), binding.root_kwargs(call.stage, call.context.input)
    args = binding.positional_args(upstream)
    if not args and upstream:
        raise StageInputError(call.stage, "its function takes no arguments but the stage has depends_on")
    return args, {}


def invoke(call: StageCall, upstream: list[Any]) -> Any:
    """Run a simple stage: root stages get the input as keywords, others the upstream outputs."""
    token = set_run_context(call.context)
    try:
        function, binding = _function(call)
        if call.extras is not None:
            return call.extras.call(call, function, binding, upstream)
        if call.root:  # stage_arguments() inlined: this is the hot path of every stage
            value = function(**binding.root_kwargs(call.stage, call.context.input))
        else:
            args = binding.positional_args(upstream)
            if not args and upstream:
                raise StageInputError(call.stage, "its function takes no arguments but the stage has depends_on")
            value = function(*args)
        if type(value) not in _NOT_AWAITABLE and inspect.isawaitable(value):
            value = _await(value, call)
        return value
    except BaseException as exc:  # noqa: BLE001 - every failure is reported, never raised across workers
        return TaskError.capture(exc)
    finally:
        reset_run_context(token)


@dataclass(slots=True)
class ChunkResult:
    """Outputs of a slice of a parameterized stage; failed positions hold ``None``."""

    start: int
    values: list[Any]
    failures: list[tuple[int, TaskError]]
    retries: int = 0
    logs: Any = None  # what the chunk's items printed and logged, from a worker (flowdapt.compute.logs.Shipped)
    cached: int = 0  # items whose output came from the result cache


def run_items(
    call: StageCall, items: list[Any], start: int, upstream_rest: list[Any], stop: threading.Event | None = None
) -> ChunkResult:
    """Run ``items`` (positions ``start``…) of a parameterized stage, one call per item.

    Each item is retried ``call.retries`` times; a failure is recorded per item. When partial
    failure is not allowed, the first failure stops the chunk (and sets ``stop`` for the others).
    """
    token = set_run_context(call.context)
    values: list[Any] = []
    failures: list[tuple[int, TaskError]] = []
    retried = 0
    try:
        try:
            function, binding = _function(call)
            rest = binding.positional_args([None, *upstream_rest])[1:]
            if binding.positional == 0 and not binding.var_positional:
                raise StageInputError(call.stage, "a parameterized stage's function must take the item as its first argument")
            kwargs = binding.root_kwargs(call.stage, call.context.input, (call.map_on, binding.first_param)) if call.root else {}
            if call.extras is not None and call.extras.cache:
                function = call.extras.caching(call, function)  # the items' loop stays as it is without a cache
        except BaseException as exc:  # noqa: BLE001
            error = TaskError.capture(exc)
            return ChunkResult(start, [None] * len(items), [(start + i, error) for i in range(len(items))],
                               logs=shipped(call.context))
        for offset, item in enumerate(items):
            if stop is not None and stop.is_set():
                break
            attempt = 0
            while True:
                try:
                    value = function(item, *rest, **kwargs)
                    if inspect.isawaitable(value):
                        value = _await(value, call)
                    values.append(value)
                    break
                except Exception as exc:
                    if attempt < call.retries:
                        attempt += 1
                        retried += 1
                        if call.retry_delay:
                            time.sleep(call.retry_delay)
                        continue
                    values.append(None)
                    failures.append((start + offset, TaskError.capture(exc)))
                    if not call.allow_partial_failure and stop is not None:
                        stop.set()
                    break
            if failures and not call.allow_partial_failure:
                break
        return ChunkResult(start, values, failures, retried, shipped(call.context), getattr(function, "hits", 0))
    finally:
        reset_run_context(token)


def invoke_and_ship(call: StageCall, upstream: list[Any]) -> Any:
    """:func:`invoke` in a worker process: the value, or :class:`Shipped` with what the stage printed
    and logged (and where its output came from) when there is any."""
    value = invoke(call, upstream)
    logs = shipped(call.context)
    return value if logs is None else Shipped(value, logs)


class Shipped:
    """A worker's value (or :class:`TaskError`) with its attempt's logs and notes."""

    __slots__ = ("value", "logs")

    def __init__(self, value: Any, logs: Any) -> None:
        self.value = value
        self.logs = logs

    def __reduce__(self):
        return (Shipped, (self.value, self.logs))
