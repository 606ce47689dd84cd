"""The run input a workflow accepts: what its root stages take, by name, JSON type and default.

Root stages receive the run input as keyword arguments filtered to their signature, so the input a
workflow accepts is the union of its root stages' parameters. Each stage type says what its stages
take (:meth:`~flowdapt.compute.stages.StageType.inputs`): functions from their signature, notebooks
from their ``parameters`` cell. JupyterLab's Run form shows one field per :class:`InputField`, and a
JSON editor for the rest when :attr:`WorkflowInputs.open` (a ``**kwargs`` or an unknown stage).
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from typing import Any, Callable, Literal, Union

from pydantic import BaseModel, Field

JsonType = Literal["string", "integer", "number", "boolean", "array", "object"]
_BY_CLASS: dict[Any, JsonType] = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array",
                                  tuple: "array", set: "array", dict: "object"}
_BY_NAME: dict[str, JsonType] = {"str": "string", "int": "integer", "float": "number", "bool": "boolean",
                                 "list": "array", "tuple": "array", "set": "array", "dict": "object",
                                 "sequence": "array", "mapping": "object"}


class InputField(BaseModel):
    """One named input of a workflow."""

    name: str
    type: JsonType | None = Field(default=None, description="JSON type; null when not known")
    annotation: str | None = Field(default=None, description="the type as written in the stage")
    required: bool = False
    default: Any = Field(default=None, description="the default value, when it is JSON")
    enum: list[Any] | None = Field(default=None, description="the allowed values (Literal annotations)")
    description: str = ""
    stages: list[str] = Field(default_factory=list, description="the root stages that take it")


class WorkflowInputs(BaseModel):
    """What a workflow's run input may hold."""

    workflow: str
    fields: list[InputField] = Field(default_factory=list)
    open: bool = Field(default=False, description="input beyond the fields is taken too (**kwargs, notebooks, "
                                                  "stages whose parameters are not known)")


def json_type(annotation: Any) -> tuple[JsonType | None, list[Any] | None]:
    """The JSON type (and allowed values) of a Python annotation; ``(None, None)`` when there is none."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return None, None
    if isinstance(annotation, str):
        head = annotation.replace("typing.", "").split("[")[0].split("|")[0].strip().lower()
        return _BY_NAME.get(head), None
    origin = typing.get_origin(annotation)
    if origin is Literal:
        values = list(typing.get_args(annotation))
        kinds = {json_type(type(value))[0] for value in values}
        return (kinds.pop() if len(kinds) == 1 else None), values
    if origin in (Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return json_type(options[0]) if len(options) == 1 else (None, None)
    base = origin or annotation
    if base in _BY_CLASS:
        return _BY_CLASS[base], None
    if isinstance(base, type):
        from collections.abc import Mapping, Sequence

        if issubclass(base, Mapping):
            return "object", None
        if issubclass(base, Sequence) and not issubclass(base, (str, bytes)):
            return "array", None
    return None, None


def annotation_text(annotation: Any) -> str | None:
    if annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type) and typing.get_origin(annotation) is None:
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def json_default(value: Any) -> tuple[bool, Any]:
    """``(True, value)`` when ``value`` travels as JSON unchanged, else ``(False, None)``."""
    try:
        return json.loads(json.dumps(value)) == value, value
    except (TypeError, ValueError):
        return False, None


def signature_fields(function: Callable[..., Any], stage: str, skip: int = 0) -> tuple[list[InputField], bool]:
    """The keyword inputs of ``function`` (after its first ``skip`` positional parameters), and whether it
    takes ``**kwargs``."""
    try:
        signature = inspect.signature(function, eval_str=True)
    except (NameError, TypeError, SyntaxError):  # annotations naming what the module cannot resolve
        signature = inspect.signature(function)
    fields, takes_any = [], False
    for index, parameter in enumerate(signature.parameters.values()):
        if parameter.kind == parameter.VAR_KEYWORD:
            takes_any = True
            continue
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.POSITIONAL_ONLY) or index < skip:
            continue
        kind, enum = json_type(parameter.annotation)
        field = InputField(name=parameter.name, type=kind, enum=enum, annotation=annotation_text(parameter.annotation),
                           required=parameter.default is parameter.empty, stages=[stage])
        if parameter.default is not parameter.empty:
            usable, value = json_default(parameter.default)
            if usable:
                field.default = value
            else:
                field.description = f"default: {parameter.default!r}"
        fields.append(field)
    return fields, takes_any


def workflow_inputs(workflow: Any) -> WorkflowInputs:
    """The input ``workflow`` (a :class:`~flowdapt.resources.models.Workflow`) accepts; imports its root targets."""
    from flowdapt.compute.stages import get_stage_type

    merged: dict[str, InputField] = {}
    open_ = False
    for stage in workflow.spec.stages:
        if stage.depends_on:
            continue
        found = get_stage_type(stage.type).inputs(stage)
        if found is None:
            open_ = True
            continue
        fields, takes_any = found
        open_ = open_ or takes_any
        for field in fields:
            known = merged.get(field.name)
            if known is None:
                merged[field.name] = field
                continue
            known.stages.append(stage.name)
            known.required = known.required or field.required
            if known.type is None:
                known.type, known.enum, known.annotation = field.type, field.enum, field.annotation
            if known.default is None:
                known.default = field.default
            known.description = known.description or field.description
    return WorkflowInputs(workflow=workflow.name, fields=list(merged.values()), open=open_)
