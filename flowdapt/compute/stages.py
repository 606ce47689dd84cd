"""Stage types, chosen by the stage's ``type`` from a registry: ``simple`` and ``parameterized``.

A stage type validates a stage definition when it is applied and starts the stage on an executor
when it runs. ``notebook`` (:mod:`flowdapt.notebook.notebook_stage`) is registered by path; others register with
:func:`register_stage_type`, or come from the ``flowdapt.stage_types`` entry-point group (a
:class:`StageType` class or instance).
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar

from flowdapt.compute.invoke import StageCall, TaskError
from flowdapt.compute.targets import TargetImportError, binding_for, resolve_target
from flowdapt.registry import Registry, instance_of_class

if TYPE_CHECKING:
    from flowdapt.compute.executors.base import BaseExecutor, OnDone, OnProgress, TaskHandle
    from flowdapt.compute.inputs import InputField
    from flowdapt.resources.models import WorkflowStage


class StageDefinitionError(ValueError):
    """A stage definition is invalid in ``field``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return self.message


class StageType(abc.ABC):
    """How one kind of stage is validated and started."""

    name: ClassVar[str]
    maps_items: ClassVar[bool] = False
    #: Whether :meth:`start` is one ``executor.submit`` call, which an executor that queues work ahead
    #: may receive before the stage's dependencies finish (see ``BaseExecutor.queues_ahead``).
    queues_ahead: ClassVar[bool] = False
    #: Whether :meth:`start` is ``executor.submit(call, upstream, stage.resources.as_dict(), on_done,
    #: then)`` and takes ``then`` as a last argument (given only for executors that continue calls,
    #: see ``BaseExecutor.continues_calls``); the runner may then hand exactly that call to the worker
    #: that just finished the stage's dependency instead of calling :meth:`start`.
    continues: ClassVar[bool] = False
    #: Whether :meth:`start` may call ``on_progress`` (the runner passes a no-op to those that do not).
    reports_progress: ClassVar[bool] = True
    #: Whether ``target`` is a file path, which a resource file's loader reads against the file's folder.
    target_is_path: ClassVar[bool] = False

    @abc.abstractmethod
    def validate(self, stage: "WorkflowStage", check_target: bool = True) -> None:
        """Raise :class:`StageDefinitionError` if ``stage`` cannot run."""

    @abc.abstractmethod
    def start(self, executor: "BaseExecutor", stage: "WorkflowStage", call: StageCall, upstream: list[Any],
              on_progress: "OnProgress", on_done: "OnDone") -> "TaskHandle":
        """Hand the stage to ``executor``; outcome and progress come back through the callbacks."""

    def inputs(self, stage: "WorkflowStage") -> "tuple[list[InputField], bool] | None":
        """The run input ``stage`` takes as a root stage, and whether it takes more than those fields;
        ``None`` when this type cannot tell (see :mod:`flowdapt.compute.inputs`)."""
        return None


def _validated_function(stage: "WorkflowStage", check_target: bool):
    if not check_target:
        return None
    try:
        function = resolve_target(stage.target)
    except TargetImportError as exc:
        raise StageDefinitionError("target", str(exc)) from None
    try:
        return function, binding_for(function)
    except (TypeError, ValueError):  # builtins without a signature: accept as they are
        return None


class SimpleStage(StageType):
    """One call: root stages get the run input as keywords, others their dependencies' outputs."""

    name = "simple"
    queues_ahead = True
    continues = True
    reports_progress = False

    def validate(self, stage: "WorkflowStage", check_target: bool = True) -> None:
        resolved = _validated_function(stage, check_target)
        if resolved and stage.depends_on:
            binding = resolved[1]
            if binding.positional == 0 and not binding.var_positional:
                raise StageDefinitionError(
                    "target", f"function takes no positional arguments but depends_on lists {len(stage.depends_on)} stage(s)"
                )

    def start(self, executor, stage, call, upstream, on_progress, on_done, then=None):
        return executor.submit(call, upstream, stage.resources.as_dict(), on_done, then)

    def inputs(self, stage):
        from flowdapt.compute.inputs import signature_fields

        return signature_fields(resolve_target(stage.target), stage.name)


class ParameterizedStage(StageType):
    """One call per item of the first dependency's output (or of ``input[map_on]``), in parallel."""

    name = "parameterized"
    maps_items = True

    def validate(self, stage: "WorkflowStage", check_target: bool = True) -> None:
        if not stage.depends_on and not stage.options.map_on:
            raise StageDefinitionError("options.map_on", "a parameterized stage needs depends_on or options.map_on")
        resolved = _validated_function(stage, check_target)
        if resolved:
            binding = resolved[1]
            if binding.positional == 0 and not binding.var_positional:
                raise StageDefinitionError("target", "function must take the item as its first positional argument")

    def start(self, executor, stage, call, upstream, on_progress, on_done):
        from flowdapt.compute.executors.base import Outcome, TaskHandle
        from flowdapt.compute.outputs import map_with_outputs

        extras = call.extras
        if extras is not None and extras.reuse is not None:  # a resumed run reuses the output: loaded by a worker
            return executor.submit(call, upstream, stage.resources.as_dict(), on_done)
        if call.map_on:
            if call.map_on not in call.context.input:
                on_done(Outcome(error=TaskError(
                    "StageInputError", f"stage '{stage.name}': options.map_on: run input has no '{call.map_on}'", "")))
                return TaskHandle()
            items, rest = call.context.input[call.map_on], upstream
        else:
            items, rest = upstream[0], upstream[1:]
        if extras is not None and (extras.keep is not None or extras.items is not None):
            return map_with_outputs(executor, stage, call, items, rest, on_progress, on_done)
        return executor.map(call, items, rest, stage.resources.as_dict(), on_progress, on_done)

    def inputs(self, stage):
        from flowdapt.compute.inputs import InputField, signature_fields

        # The item arrives as the first positional argument; the run input holds the items under map_on.
        fields, takes_any = signature_fields(resolve_target(stage.target), stage.name, skip=1)
        if stage.options.map_on:
            fields.insert(0, InputField(name=stage.options.map_on, type="array", required=True, stages=[stage.name],
                                        description=f"the items '{stage.name}' maps over"))
        return fields, takes_any


STAGE_TYPES: Registry[StageType] = Registry("stage type", "flowdapt.stage_types", adapt=instance_of_class)


def register_stage_type(stage_type: StageType) -> None:
    """Make ``stage_type`` available as ``type: <stage_type.name>``."""
    STAGE_TYPES.register(stage_type.name, stage_type)


def get_stage_type(name: str) -> StageType:
    """The stage type registered as ``name``; the error lists the known types."""
    return STAGE_TYPES.get(name)


def stage_type_names() -> list[str]:
    return STAGE_TYPES.names()


register_stage_type(SimpleStage())
register_stage_type(ParameterizedStage())
STAGE_TYPES.register("notebook", "flowdapt.notebook.notebook_stage:NotebookStage")  # papermill is imported when used
