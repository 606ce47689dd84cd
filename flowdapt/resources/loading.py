"""Reading resources from YAML/JSON files, folders, strings and dicts (several per file, ``---``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import ValidationError

from flowdapt.errors import ResourceError
from flowdapt.resources.checks import check_resource, rebase_paths
from flowdapt.resources.models import RESOURCE_KINDS, Resource

RESOURCE_SUFFIXES = (".yaml", ".yml", ".json")


def load(path: str | Path, *, check_targets: bool = True) -> list[Resource]:
    """Load every resource in a file, or in every ``.yaml/.yml/.json`` file under a folder.

    All documents are parsed and validated before anything is returned: one bad document fails
    the whole load with a :class:`ResourceError` naming file, resource, stage and field. Relative
    file targets (notebook stages) are read against the folder of the file naming them, and come
    back absolute, so a folder applied from anywhere means what its files say.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in RESOURCE_SUFFIXES and p.is_file())
        if not files:
            raise ResourceError("no .yaml, .yml or .json files in this folder", file=str(path))
    elif path.exists():
        files = [path]
    else:
        raise ResourceError("no such file or folder", file=str(path))
    resources: list[Resource] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ResourceError(f"cannot read file: {exc}", file=str(file)) from None
        resources.extend(loads(text, file=str(file), check_targets=check_targets, base=file.parent))
    _reject_duplicates(resources, files)
    return resources


def loads(text: str, *, file: str | None = None, check_targets: bool = True,
          base: Path | None = None) -> list[Resource]:
    """Parse and validate the resources in a YAML or JSON string (relative file targets against ``base``)."""
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ResourceError(f"{where}invalid YAML: {problem}", file=file) from None
    if not documents:
        raise ResourceError("no resources in this file", file=file)
    items: list[Any] = []
    for document in documents:
        items.extend(document if isinstance(document, list) else [document])
    return [parse_resource(item, file=file, check_targets=check_targets, base=base) for item in items]


def parse_resource(document: Any, *, file: str | None = None, check_targets: bool = True,
                   base: Path | None = None) -> Resource:
    """Turn one document (a dict) into a validated resource; relative file targets are read against
    ``base`` when given (the folder of the file the document came from)."""
    if isinstance(document, Resource):
        check_resource(document, file=file, check_targets=check_targets)
        return document
    if not isinstance(document, dict):
        raise ResourceError(f"expected a mapping with kind, metadata and spec, got {type(document).__name__}", file=file)
    kind = document.get("kind")
    name = document.get("metadata", {}).get("name") if isinstance(document.get("metadata"), dict) else None
    if kind is None:
        raise ResourceError("missing field 'kind'", file=file, resource=name, field="kind")
    if not isinstance(kind, str):
        raise ResourceError(f"kind must be text (one of {', '.join(RESOURCE_KINDS)}), got {type(kind).__name__}",
                            file=file, resource=name, field="kind")
    model = RESOURCE_KINDS.get(kind)
    if model is None:
        known = ", ".join(RESOURCE_KINDS)
        raise ResourceError(f"unknown kind '{kind}' (known: {known})", file=file, resource=name, field="kind")
    try:
        resource = model.model_validate(document)
    except ValidationError as exc:
        raise _first_error(exc, document, file, kind, name) from None
    if base is not None:
        rebase_paths(resource, base)
    check_resource(resource, file=file, check_targets=check_targets)
    return resource


def _first_error(exc: ValidationError, document: dict, file: str | None, kind: str, name: str | None) -> ResourceError:
    detail = exc.errors()[0]
    location = list(detail["loc"])
    stage = None
    if location[:2] == ["spec", "stages"] and len(location) > 2 and isinstance(location[2], int):
        stages = document.get("spec", {}).get("stages") or []
        index = location[2]
        raw = stages[index] if index < len(stages) else {}
        stage = raw.get("name") if isinstance(raw, dict) and raw.get("name") else f"#{index + 1}"
        location = location[3:]
    field = ".".join(str(part) for part in location) or None
    message = detail["msg"].removeprefix("Value error, ")
    if detail["type"] == "missing":
        message = "required field is missing"
    elif detail["type"] == "extra_forbidden":
        message = "unknown field"
    return ResourceError(message, file=file, kind=kind, resource=name, stage=stage, field=field)


def _reject_duplicates(resources: Iterable[Resource], files: list[Path]) -> None:
    seen: set[tuple[str, str]] = set()
    for resource in resources:
        key = (resource.kind, resource.metadata.name)
        if key in seen:
            raise ResourceError("defined more than once", file=str(files[0]) if len(files) == 1 else None,
                                kind=resource.kind, resource=resource.metadata.name, field="metadata.name")
        seen.add(key)


def dumps(resources: Iterable[Resource], fmt: str = "yaml") -> str:
    """Serialise resources as multi-document YAML or a JSON list."""
    documents = [resource.to_document() for resource in resources]
    if fmt == "json":
        return json.dumps(documents, indent=2)
    return yaml.safe_dump_all(documents, sort_keys=False)
