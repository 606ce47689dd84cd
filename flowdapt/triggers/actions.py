"""What a trigger does when it fires: actions by name, or any callable by import path.

An action is ``async def action(context, parameters) -> str | None`` returning the uid of the
run it started, if any. Built in: ``run_workflow`` (``parameters.workflow`` and ``input``),
``run_notebook`` (``parameters.notebook`` and ``parameters``, run with papermill as a one-stage
workflow) and ``notify`` (a webhook or an email, :mod:`flowdapt.triggers.notify`). Any other target
is an import path ``pkg.mod.func``, called in a worker thread with the parameters as keyword arguments.
Plugins add named actions through the ``flowdapt.trigger_actions`` entry-point group.
Runs a schedule or a backfill starts carry the schedule time they are for (``logical_time``).
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Awaitable, Callable

from flowdapt.events.models import Event
from flowdapt.registry import Registry
from flowdapt.resources.models import TriggerRule, WorkflowRun

Submit = Callable[..., Awaitable[WorkflowRun]]


@dataclass(frozen=True)
class ActionContext:
    """What an action gets besides its parameters."""

    trigger: TriggerRule
    event: Event | None
    submit: Submit  # ComputeService.submit: starts a workflow run on the server
    logical_time: datetime | None = None  # the schedule time being fired (schedules and backfills)


Action = Callable[[ActionContext, dict[str, Any]], Awaitable[str | None]]
ACTIONS: Registry[Action] = Registry("trigger action", "flowdapt.trigger_actions")


def register_action(name: str, action: Action) -> None:
    """Make ``action`` available as ``spec.action.target: <name>``."""
    ACTIONS.register(name, action)


def get_action(target: str) -> Action:
    """The action a trigger names: a registered one, else a callable imported from ``target``."""
    if target in ACTIONS:
        return ACTIONS.get(target)
    return _callable_action(target)


def _callable_action(target: str) -> Action:
    async def call(context: ActionContext, parameters: dict[str, Any]) -> str | None:
        from flowdapt.compute.targets import resolve_target

        function = await asyncio.to_thread(resolve_target, target)
        outcome = await asyncio.to_thread(function, **parameters)
        if inspect.isawaitable(outcome):
            await outcome
        return None

    return call


async def run_workflow(context: ActionContext, parameters: dict[str, Any]) -> str | None:
    """Start ``parameters.workflow`` with ``parameters.input`` (source ``trigger``)."""
    run = await context.submit(parameters["workflow"], parameters.get("input") or {}, source="trigger",
                               namespace=parameters.get("namespace"), executor=parameters.get("executor"),
                               logical_time=context.logical_time)
    return run.uid


async def run_notebook(context: ActionContext, parameters: dict[str, Any]) -> str | None:
    """Run ``parameters.notebook`` with papermill as a recorded run (see :mod:`flowdapt.notebook.actions`)."""
    from flowdapt.notebook.actions import run_notebook_action

    return await run_notebook_action(context, parameters)


async def notify(context: ActionContext, parameters: dict[str, Any]) -> str | None:
    """Send ``parameters.webhook`` a JSON body and/or ``parameters.email`` a message about the event."""
    from flowdapt.triggers.notify import send_notifications

    await send_notifications(context, parameters)
    return None


register_action("run_workflow", run_workflow)
register_action("run_notebook", run_notebook)
register_action("notify", notify)
