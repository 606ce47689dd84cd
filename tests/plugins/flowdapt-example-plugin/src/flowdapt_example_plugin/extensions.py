"""Extensions of the example plugin, registered through entry points (see ``pyproject.toml``)."""

from __future__ import annotations

import json
from pathlib import Path

from flowdapt.compute import object_store
from flowdapt.compute.executors.local import LocalExecutor
from flowdapt.compute.stages import SimpleStage, StageDefinitionError
from flowdapt.compute.targets import resolve_target


class DocumentedStage(SimpleStage):
    """``type: documented``: a simple stage whose function must have a docstring."""

    name = "documented"

    def validate(self, stage, check_target: bool = True) -> None:
        super().validate(stage, check_target)
        if check_target and not (resolve_target(stage.target).__doc__ or "").strip():
            raise StageDefinitionError("target", f"'{stage.target}' has no docstring (documented stages need one)")


class SerialExecutor(LocalExecutor):
    """``example-serial``: one stage at a time, in a thread of this process; the object store keeps values
    in this process's memory, as the local executor's threads do."""

    kind = "example-serial"

    def __init__(self, **options) -> None:
        super().__init__(mode="threads", cpus=1, **options)

    def start(self) -> None:
        object_store.register_cluster_memory(self.kind, object_store.local_memory())
        super().start()


async def record(context, parameters: dict) -> None:
    """``example_record``: append the firing (trigger, event type, parameters) to ``parameters.path``."""
    line = {"trigger": context.trigger.name, "event": context.event.type if context.event else None,
            "note": parameters.get("note")}
    with Path(parameters["path"]).open("a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")
