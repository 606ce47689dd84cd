"""Selecting the config resources that apply to a workflow and merging their data.

Flowdapt's rules: a ``name`` selector matches the workflow with that name; an ``annotation``
selector matches a workflow that carries any of the selector's annotation pairs; ``selector.kind``
(if set) must be the workflow's kind; configs without a selector never apply. Data is merged
shallowly. Where several configs set the same key, name selectors win over annotation selectors
(the more specific one wins; Flowdapt let annotation configs win), and among equals the later
config wins.
"""

from __future__ import annotations

from typing import Any, Iterable

from flowdapt.resources.models import Config, Resource


def selects(config: Config, resource: Resource) -> bool:
    """Whether ``config``'s selector matches ``resource``."""
    selector = config.spec.selector
    if selector is None or selector.kind not in (None, resource.kind):
        return False
    if selector.type == "name":
        return selector.value == resource.metadata.name
    annotations = resource.metadata.annotations
    return any(annotations.get(key) == value for key, value in selector.value.items())  # type: ignore[union-attr]


def merged_config(resource: Resource, configs: Iterable[Config]) -> dict[str, Any]:
    """The merged ``data`` of every config selecting ``resource``."""
    matching = [config for config in configs if selects(config, resource)]
    by_annotation = [config for config in matching if config.spec.selector.type == "annotation"]  # type: ignore[union-attr]
    by_name = [config for config in matching if config.spec.selector.type == "name"]  # type: ignore[union-attr]
    merged: dict[str, Any] = {}
    for config in (*by_annotation, *by_name):
        merged.update(config.spec.data)
    return merged
