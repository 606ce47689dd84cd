"""The words for resource kinds and the columns of their listings, shared by ``flowctl`` and the magics."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

RUN_KIND = "workflow_run"
KIND_NAMES = {
    **{name: "workflow" for name in ("workflow", "workflows")},
    **{name: "config" for name in ("config", "configs")},
    **{name: "trigger_rule" for name in ("trigger", "triggers", "trigger_rule", "trigger_rules")},
    **{name: RUN_KIND for name in ("run", "runs", "workflow_run", "workflow_runs")},
    **{name: "plugin" for name in ("plugin", "plugins")},
}


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"


def _selector(resource: Any) -> str:
    selector = resource.spec.selector
    return "-" if selector is None else f"{selector.type}={selector.value}"


def _counts(names: list[str]) -> str:
    counts = {name: names.count(name) for name in dict.fromkeys(names)}
    return ", ".join(f"{count} {name}" for name, count in counts.items()) or "-"


def _outcome(firing: dict[str, Any]) -> str:
    return "ok" if firing["ok"] else f"failed: {firing['error']}"


# Columns per kind: (header, getter).
COLUMNS: dict[str, list[tuple[str, Callable[[Any], str]]]] = {
    "workflow": [("NAME", lambda r: r.name), ("STAGES", lambda r: str(len(r.spec.stages))),
                 ("UID", lambda r: r.uid), ("CREATED", lambda r: _when(r.metadata.created_at))],
    "config": [("NAME", lambda r: r.name), ("SELECTOR", _selector), ("UID", lambda r: r.uid),
               ("CREATED", lambda r: _when(r.metadata.created_at))],
    "trigger_rule": [("NAME", lambda r: r.name), ("TYPE", lambda r: r.spec.type),
                     ("ENABLED", lambda r: str(r.spec.enabled).lower()), ("ACTION", lambda r: r.spec.action.target),
                     ("UID", lambda r: r.uid), ("CREATED", lambda r: _when(r.metadata.created_at))],
    "workflow_run": [("NAME", lambda r: r.name), ("WORKFLOW", lambda r: r.workflow), ("STATE", lambda r: r.state),
                     ("SOURCE", lambda r: r.source), ("STARTED", lambda r: _when(r.started_at)),
                     ("DURATION", lambda r: _seconds(r.duration))],
    "trigger_firing": [("FIRED", lambda f: f["fired_at"][:19].replace("T", " ")), ("OUTCOME", _outcome),
                       ("RUN", lambda f: f["run_uid"] or "-"), ("ACTION", lambda f: f["action"])],
    "plugin": [("NAME", lambda p: p.name), ("PACKAGE", lambda p: p.package), ("VERSION", lambda p: p.version),
               ("STAGES", lambda p: str(len(p.stages))), ("RESOURCES", lambda p: _counts([r.kind for r in p.resources])),
               ("EXTENSIONS", lambda p: "; ".join(f"{group}: {', '.join(names)}" for group, names in p.extensions.items())
                or "-")],
    "stage": [("STAGE", lambda s: s.name), ("TYPE", lambda s: s.type), ("STATE", lambda s: s.state),
              ("ATTEMPTS", lambda s: str(s.attempts)), ("DURATION", lambda s: _seconds(s.duration)),
              ("ITEMS", lambda s: "-" if s.items_total is None else f"{s.items_done}/{s.items_total}"
               + (f" ({s.items_failed} failed)" if s.items_failed else ""))],
}
