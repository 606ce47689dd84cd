"""Stage outputs that outlive the call: kept for a later resume, cached by what made them, reused.

- **Kept** (``options.keep_output``): a finished stage's output is put in the object store under
  ``<run uid>/<stage>`` in the namespace :data:`OUTPUTS_NAMESPACE`, in cluster memory (``memory``)
  or as an artifact (``artifact``, ``true``), where a resumed run finds it (:mod:`flowdapt.compute.resume`).
- **Cached** (``options.cache``): the output is stored under a hash of the stage's code, the run's
  config and the stage's inputs (or of what the ``cache_key`` function returns), as an artifact in
  :data:`CACHE_NAMESPACE`; a later attempt whose hash matches, within ``cache_ttl``, returns it
  without calling the stage. For a parameterized stage each item is cached on its own.
- **Reused**: a resumed run loads a stage's output from the run it resumes instead of running it.

All of it happens on the worker that runs the stage (where its inputs and output live), through
:class:`StageExtras` carried by the stage call; where an output came from is noted in the attempt's
capture (``cached_from``), so the runner records the stage as ``cached``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from dataclasses import dataclass
from typing import Any, Callable

import cloudpickle

from flowdapt.compute import object_store
from flowdapt.compute.logs import capture_of
from flowdapt.resources.identity import ByIdentity

OUTPUTS_NAMESPACE = "flowdapt-outputs"
CACHE_NAMESPACE = "flowdapt-cache"


def output_key(run_uid: str, stage: str) -> str:
    """Where a run keeps a stage's output (in :data:`OUTPUTS_NAMESPACE`)."""
    return f"{run_uid}/{stage}"


def keep_strategy(option: Any) -> str | None:
    """The object-store strategy of a ``keep_output`` option (``None``: not kept)."""
    if option in (None, False):
        return None
    return "fallback" if option == "memory" else "artifact"


@dataclass(frozen=True, slots=True)
class MapOutput:
    """A parameterized stage's output as kept: every item's value by position, and the failed positions."""

    values: list[Any]
    failed: tuple[int, ...] = ()

    def output(self) -> list[Any]:
        """The stage's output: the values of the items that did not fail, in input order."""
        failed = set(self.failed)
        return [value for index, value in enumerate(self.values) if index not in failed] if failed else self.values


@dataclass(frozen=True, slots=True)
class StageExtras:
    """What a stage call does besides calling the stage: keep, cache or reuse its output.

    Attributes
    ----------
    workflow : the workflow's name (cache entries are filed under workflow and stage)
    keep : object-store strategy to keep the output with (``None``: not kept)
    cache : whether outputs are cached
    cache_ttl : seconds a cache entry is good for (``None``: until cleared)
    cache_key : import path of a function returning the cache key from the stage's arguments
    reuse : ``(run uid, strategy)`` of the kept output to return instead of calling the stage (strategy
        ``None``: nothing needs the output, which is then ``None``)
    items : ``(run uid, strategy)`` of a parameterized stage's kept output whose failed items run again
    """

    workflow: str
    keep: str | None = None
    cache: bool = False
    cache_ttl: float | None = None
    cache_key: str | None = None
    reuse: tuple[str, str | None] | None = None
    items: tuple[str, str] | None = None

    # -- simple stages (and reused stages of any type) ------------------------------------------------------
    def call(self, call: Any, function: Callable[..., Any], binding: Any, upstream: list[Any]) -> Any:
        """The stage's value for one call: loaded from a kept output, found in the cache, or computed."""
        from flowdapt.compute.invoke import awaited, stage_arguments

        context = call.context
        if self.reuse is not None:
            source, strategy = self.reuse
            value = None if strategy is None else load_kept(source, call.stage, strategy)
            _note_cached(context, f"run:{source}")
            return value.output() if isinstance(value, MapOutput) else value
        args, kwargs = stage_arguments(call, binding, upstream)
        key = self.cache_key_of(call, function, args, kwargs) if self.cache else None
        hit = _cached(key, self.cache_ttl) if key is not None else None
        if hit is not None:
            value = hit[0]
            _note_cached(context, f"cache:{hit[2]}")
        else:
            value = awaited(function(*args, **kwargs), call)
            if key is not None:
                _store(key, value, f"{context.run.uid}/{call.stage}")
        if self.keep is not None:
            object_store.put(output_key(context.run.uid, call.stage), value, namespace=OUTPUTS_NAMESPACE,
                             strategy=self.keep)  # type: ignore[arg-type]
        return value

    # -- items of parameterized stages --------------------------------------------------------------------
    def caching(self, call: Any, function: Callable[..., Any]) -> "CachingItems":
        """``function`` for the items of a parameterized stage, each item's output cached on its own."""
        return CachingItems(self, call, function)

    # -- keys -----------------------------------------------------------------------------------------------
    def cache_key_of(self, call: Any, function: Callable[..., Any], args: Any, kwargs: dict[str, Any]) -> str:
        digest = hashlib.sha256()
        if self.cache_key is not None:
            from flowdapt.compute.targets import resolve_target

            digest.update(str(resolve_target(self.cache_key)(*args, **kwargs)).encode())
        else:
            digest.update(code_fingerprint(function).encode())
            digest.update(json.dumps(call.context.config, sort_keys=True, default=repr).encode())
            digest.update(cloudpickle.dumps((tuple(args), sorted(kwargs.items())), protocol=5))
        return cache_path(self.workflow, call.stage, digest.hexdigest()[:32])


class CachingItems:
    """A parameterized stage's function that returns an item's cached output when there is one (counted
    in ``hits``) and caches the outputs it computes."""

    def __init__(self, extras: StageExtras, call: Any, function: Callable[..., Any]) -> None:
        self.extras, self.call, self.function = extras, call, function
        self.hits = 0

    def __call__(self, item: Any, *rest: Any, **kwargs: Any) -> Any:
        from flowdapt.compute.invoke import awaited

        call = self.call
        key = self.extras.cache_key_of(call, self.function, (item, *rest), kwargs)
        hit = _cached(key, self.extras.cache_ttl)
        if hit is not None:
            self.hits += 1
            return hit[0]
        value = awaited(self.function(item, *rest, **kwargs), call)
        _store(key, value, f"{call.context.run.uid}/{call.stage}")
        return value


def load_kept(run_uid: str, stage: str, strategy: str, executor: str | None = None) -> Any:
    """The output ``run_uid`` kept for ``stage`` (a :class:`MapOutput` for parameterized stages)."""
    return object_store.get(output_key(run_uid, stage), namespace=OUTPUTS_NAMESPACE, strategy=strategy,  # type: ignore[arg-type]
                            executor=executor)


def kept_exists(run_uid: str, stage: str, strategy: str, executor: str) -> bool:
    """Whether ``run_uid`` still has ``stage``'s kept output (asked from the driver, for ``executor``)."""
    try:
        return object_store.exists(output_key(run_uid, stage), namespace=OUTPUTS_NAMESPACE,
                                   strategy=strategy, executor=executor)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - a cluster that cannot be asked has nothing to reuse
        return False


_extras: ByIdentity[dict[str, StageExtras]] = ByIdentity(kept=64)


def stage_extras(graph: Any) -> dict[str, StageExtras]:
    """The extras of the stages of ``graph`` that keep or cache their output (computed once per graph)."""
    found = _extras.get(graph)
    if found is None:
        found = {}
        for name, stage in graph.stages.items():
            options = stage.options
            if options.cache or options.keep_output:
                found[name] = StageExtras(graph.workflow, keep_strategy(options.keep_output), options.cache,
                                          options.cache_ttl, options.cache_key)
        _extras.put(graph, found)
    return found


def cache_path(workflow: str, stage: str, digest: str) -> str:
    """The object-store key of a cache entry."""
    return f"{workflow}/{stage}/{digest}"


def _note_cached(context: Any, source: str) -> None:
    capture = capture_of(context, always=True)
    capture.cached(context, source)


def _cached(key: str, ttl: float | None) -> tuple[Any, float, str] | None:
    """``(value, stored at, source)`` of a cache entry younger than ``ttl``, or ``None``."""
    try:
        value, stored_at, source = object_store.get(key, namespace=CACHE_NAMESPACE, strategy="artifact")
    except KeyError:
        return None
    if ttl is not None and time.time() - stored_at > ttl:
        return None
    return value, stored_at, source


def _store(key: str, value: Any, source: str) -> None:
    object_store.put(key, (value, time.time(), source), namespace=CACHE_NAMESPACE, strategy="artifact")


_fingerprints: dict[Any, str] = {}


def code_fingerprint(function: Any) -> str:
    """A hash of what a stage runs: a function's source (else its bytecode), a notebook's file."""
    try:
        return _fingerprints[function]
    except (KeyError, TypeError):
        pass
    path = getattr(function, "path", None)
    if isinstance(path, str):  # a notebook stage: the notebook and its fixed options
        with open(path, "rb") as handle:
            material = handle.read() + repr((getattr(function, "parameters", None),
                                             getattr(function, "kernel_name", None))).encode()
    else:
        target = inspect.unwrap(function)
        try:
            material = inspect.getsource(target).encode()
        except (OSError, TypeError):
            code = getattr(target, "__code__", None)
            material = code.co_code + repr(code.co_consts).encode() if code is not None else repr(target).encode()
    fingerprint = hashlib.sha256(material).hexdigest()
    try:
        if len(_fingerprints) > 4096:
            _fingerprints.clear()
        _fingerprints[function] = fingerprint
    except TypeError:
        pass
    return fingerprint


def clear_cache(workflow: str | None = None, stage: str | None = None) -> int:
    """Delete cache entries (of one workflow, one of its stages, or all); returns how many."""
    store = object_store.artifact_store()
    prefix = "" if workflow is None else f"{workflow}/" if stage is None else f"{workflow}/{stage}/"
    return store.delete_prefix(prefix, CACHE_NAMESPACE)


def map_with_outputs(executor: Any, stage: Any, call: Any, items: Any, rest: list[Any], on_progress: Any,
                     on_done: Any) -> Any:
    """Start a parameterized stage whose output is kept, or whose failed items alone run again
    (``extras.items``: the rest of its output comes from the run it resumes)."""
    from dataclasses import replace

    extras: StageExtras = call.extras
    resources = stage.resources.as_dict()
    previous: MapOutput | None = None
    positions: list[int] = []
    if extras.items is not None:
        source, strategy = extras.items
        previous = load_kept(source, call.stage, strategy, executor=executor.kind)
        items = list(executor.resolve([items])[0])  # a cluster's handle fetched: the failed items are picked here
        positions = list(previous.failed)
        items = [items[index] for index in positions]
        already = len(previous.values) - len(positions)
        total = len(previous.values)
        progress = on_progress

        def on_progress(done: int, failed: int, _total: int) -> None:  # noqa: F811 - counts over every item
            progress(already + done, failed, total)

        call = replace(call, extras=replace(extras, items=None))

    def done(outcome: Any) -> None:
        if previous is not None:
            outcome = _merged(outcome, previous, positions)
        if extras.keep is not None and outcome.error is None:
            try:
                object_store.put(output_key(call.context.run.uid, call.stage), _map_output(outcome),
                                 namespace=OUTPUTS_NAMESPACE, strategy=extras.keep,  # type: ignore[arg-type]
                                 executor=executor.kind)
            except Exception as exc:  # noqa: BLE001 - the stage failed to keep its output: say so, as for simple stages
                from flowdapt.compute.invoke import TaskError

                outcome.error, outcome.value = TaskError.capture(exc), None
        on_done(outcome)

    return executor.map(call, items, rest, resources, on_progress, done)


def _map_output(outcome: Any) -> MapOutput:
    """A finished map's outcome as kept: values by position (``None`` where an item failed)."""
    failed = sorted(index for index, _ in outcome.item_failures)
    failed_set = set(failed)
    values = iter(outcome.value)
    return MapOutput([None if index in failed_set else next(values) for index in range(outcome.items_total or 0)],
                     tuple(failed))


def _merged(outcome: Any, previous: MapOutput, positions: list[int]) -> Any:
    """The outcome of re-running the items at ``positions`` merged into ``previous``: the whole stage's."""
    from flowdapt.compute.executors.base import Outcome

    failures = [(positions[index], error) for index, error in outcome.item_failures]
    total = len(previous.values)
    if outcome.error is not None and not outcome.item_failures:  # cancelled, or failed as a whole
        return Outcome(error=outcome.error, items_total=total, logs=outcome.logs)
    failed = {index for index, _ in failures}
    values = list(previous.values)
    fresh = iter(outcome.value or ())
    for position in positions:
        values[position] = None if position in failed else next(fresh)
    return Outcome(value=None if outcome.error is not None else [value for index, value in enumerate(values)
                                                                if index not in failed],
                   error=outcome.error, item_failures=failures, items_total=total, item_retries=outcome.item_retries,
                   logs=outcome.logs, items_cached=outcome.items_cached)
