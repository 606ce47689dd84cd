"""Resolving stage targets to callables and binding the workflow's arguments to them."""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable

from flowdapt.errors import StageInputError

_resolved: dict[str, Callable[..., Any]] = {}


class TargetImportError(ImportError):
    """A target import path does not lead to a callable; the message says which part failed."""


def resolve_target(target: str | Callable[..., Any]) -> Callable[..., Any]:
    """Import ``pkg.mod.func`` (or ``pkg.mod.Class.method``) and return the callable; cached."""
    if callable(target):
        return target
    cached = _resolved.get(target)
    if cached is not None:
        return cached
    function = _import_path(target)
    _resolved[target] = function
    return function


def _import_path(path: str) -> Callable[..., Any]:
    parts = path.split(".")
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        raise TargetImportError(f"'{path}' is not an import path of the form package.module.function")
    module = None
    error: BaseException | None = None
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # Only "this very module is missing" means: try a shorter module path.
            if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                error = exc
                continue
            raise TargetImportError(f"importing module '{module_name}' failed: {exc}") from exc
        except Exception as exc:
            raise TargetImportError(f"importing module '{module_name}' failed: {type(exc).__name__}: {exc}") from exc
        obj: Any = module
        for attribute in parts[split:]:
            if not hasattr(obj, attribute):
                raise TargetImportError(f"module '{module_name}' has no attribute '{'.'.join(parts[split:])}'")
            obj = getattr(obj, attribute)
        if not callable(obj):
            raise TargetImportError(f"'{path}' is a {type(obj).__name__}, not a callable")
        return obj
    raise TargetImportError(f"no module named '{getattr(error, 'name', None) or parts[0]}'")


@dataclass(frozen=True, slots=True)
class Binding:
    """How a function accepts arguments, computed once per function."""

    positional: int
    var_positional: bool
    keywords: frozenset[str] | None  # None: accepts **kwargs
    required_keywords: tuple[str, ...]
    first_param: str | None
    is_async: bool

    def root_kwargs(self, stage: str, data: dict[str, Any], skip: tuple[str | None, ...] = ()) -> dict[str, Any]:
        """Input for a root stage: the run input filtered to the signature, minus ``skip`` names."""
        if self.keywords is None:
            kwargs = dict(data)
        else:
            kwargs = {key: value for key, value in data.items() if key in self.keywords}
        for name in skip:
            kwargs.pop(name, None)
        missing = [name for name in self.required_keywords if name not in kwargs and name not in skip]
        if missing:
            given = ", ".join(sorted(data)) or "nothing"
            raise StageInputError(stage, f"missing input {', '.join(repr(m) for m in missing)} (run input has: {given})")
        return kwargs

    def positional_args(self, args: list[Any]) -> list[Any]:
        """Upstream outputs for a dependent stage: extra ones dropped unless ``*args``."""
        return args if self.var_positional else args[: self.positional]


_bindings: dict[Any, Binding] = {}
_callables: dict[Any, tuple[Callable[..., Any], Binding]] = {}


def callable_with_binding(target: str | Callable[..., Any]) -> tuple[Callable[..., Any], Binding]:
    """:func:`resolve_target` and :func:`binding_for` in one cached look-up (once per stage call)."""
    try:
        return _callables[target]
    except (KeyError, TypeError):
        pass
    function = resolve_target(target)
    entry = (function, binding_for(function))
    try:
        if len(_callables) > 4096:
            _callables.clear()
        _callables[target] = entry
    except TypeError:  # unhashable callable
        pass
    return entry


def binding_for(function: Callable[..., Any]) -> Binding:
    """The :class:`Binding` of ``function`` (cached)."""
    try:
        return _bindings[function]
    except (KeyError, TypeError):
        pass
    signature = inspect.signature(function)
    positional = 0
    var_positional = False
    keywords: set[str] | None = set()
    required: list[str] = []
    first: str | None = None
    for parameter in signature.parameters.values():
        kind = parameter.kind
        if kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            positional += 1
            first = first or parameter.name
        if kind == parameter.VAR_POSITIONAL:
            var_positional = True
        elif kind == parameter.VAR_KEYWORD:
            keywords = None
        elif kind != parameter.POSITIONAL_ONLY and keywords is not None:
            keywords.add(parameter.name)
        if parameter.default is parameter.empty and kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            required.append(parameter.name)
    is_async = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(getattr(function, "__call__", None))
    binding = Binding(
        positional, var_positional, frozenset(keywords) if keywords is not None else None, tuple(required), first, is_async
    )
    try:
        _bindings[function] = binding
    except TypeError:  # unhashable callable
        pass
    return binding
