"""The trigger service's checks of a trigger rule, run when it is loaded or applied: its action is known
(and a ``notify`` action's parameters make sense), its crons parse, fire and have a known time zone,
its condition is well formed. Registered with :mod:`flowdapt.resources.checks`, with the rebasing of a
``run_notebook`` action's notebook path."""

from __future__ import annotations

from typing import Any, Callable

from flowdapt.errors import ResourceError
from flowdapt.resources.checks import register_rules
from flowdapt.resources.models import TriggerRule
from flowdapt.triggers.actions import ACTIONS
from flowdapt.triggers.conditions import validate_condition
from flowdapt.triggers.notify import validate_notify
from flowdapt.triggers.schedule import check_fires, validate_cron, validate_timezone


def validate_trigger_rule(rule: TriggerRule, *, file: str | None = None, check_targets: bool = True) -> None:
    """Raise :class:`ResourceError` naming the file, rule and field of the first problem of ``rule``."""

    def check(field: str | None, validate: Callable[..., None], *args: Any) -> None:
        try:
            validate(*args)
        except ValueError as exc:
            raise ResourceError(str(exc), file=file, kind=rule.kind, resource=rule.name, field=field) from None

    spec, action = rule.spec, rule.spec.action
    if "." not in action.target and action.target not in ACTIONS:
        known = ", ".join(ACTIONS.names())
        raise ResourceError(f"unknown action '{action.target}' (use {known} or an import path)", file=file,
                            kind=rule.kind, resource=rule.name, field="spec.action.target")
    if action.target == "notify":
        check("spec.action.params", validate_notify, action.parameters)
    if spec.type == "schedule":
        for expression in spec.rule:
            check("spec.rule", validate_cron, expression)
            check("spec.rule", check_fires, expression)
        check("spec.timezone", validate_timezone, spec.timezone)
    else:
        check(None, validate_condition, spec.rule, "spec.rule")


def rebase_notebook(rule: TriggerRule, rebased: Callable[[str], str]) -> None:
    """A ``run_notebook`` action's notebook is read against the folder of the file naming it."""
    if rule.spec.action.target == "run_notebook":
        parameters = rule.spec.action.parameters
        parameters["notebook"] = rebased(parameters["notebook"])


register_rules("trigger_rule", check=validate_trigger_rule, rebase_paths=rebase_notebook)
