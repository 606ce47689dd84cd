"""Resources (workflows, configs, triggers) in SQL: the full document plus indexed kind/name/uid."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable
from uuid import UUID, uuid4

from sqlalchemy import Connection, and_, delete, insert, or_, select, update

from flowdapt.errors import ResourceNotFoundError
from flowdapt.history import orm
from flowdapt.history.bulk import naive_utc
from flowdapt.resources.models import RESOURCE_KINDS, Resource

_r = orm.resources.c


def _normal_uid(identifier: str) -> str | None:
    try:
        return str(UUID(identifier))
    except ValueError:
        return None


def _parse(kind: str, document: dict) -> Resource:
    return RESOURCE_KINDS[kind].model_validate(document)


def get_resource(conn: Connection, kind: str, identifier: str) -> Resource:
    """The resource of ``kind`` with this name or uid; :class:`ResourceNotFoundError` otherwise."""
    match = _r.name == identifier
    uid = _normal_uid(identifier)
    if uid is not None:
        match = or_(match, _r.uid == uid)
    document = conn.execute(select(_r.document).where(and_(_r.kind == kind, match)).limit(1)).scalar()
    if document is None:
        raise ResourceNotFoundError(kind, identifier)
    return _parse(kind, document)


def list_resources(conn: Connection, kind: str) -> list[Resource]:
    """Every resource of ``kind``, by name."""
    rows = conn.execute(select(_r.document).where(_r.kind == kind).order_by(_r.name)).scalars()
    return [_parse(kind, document) for document in rows]


def _same(stored: dict, document: dict) -> bool:
    return (stored.get("spec") == document.get("spec")
            and stored.get("metadata", {}).get("annotations", {}) == document["metadata"].get("annotations", {}))


def apply_resources(conn: Connection, resources: Iterable[Resource]) -> list[tuple[Resource, str]]:
    """Create or update each resource (call inside one transaction); returns (resource, outcome)."""
    outcome = []
    for resource in resources:
        document = resource.to_document()
        kind, name = resource.kind, resource.metadata.name
        stored = conn.execute(select(_r.uid, _r.document).where(_r.kind == kind, _r.name == name)).first()
        if stored is None:
            if conn.execute(select(_r.uid).where(_r.uid == resource.uid)).first() is not None:
                # A copy of another resource's document (renamed): a new resource gets its own uid.
                document["metadata"]["uid"] = str(uuid4())
                resource = _parse(kind, document)
            conn.execute(insert(orm.resources).values(
                uid=resource.uid, kind=kind, name=name, document=document,
                created_at=naive_utc(resource.metadata.created_at), updated_at=naive_utc(resource.metadata.updated_at)))
            outcome.append((resource, "created"))
        elif _same(stored.document, document):
            outcome.append((_parse(kind, stored.document), "unchanged"))
        else:
            now = datetime.now(timezone.utc)
            document["metadata"].update(uid=stored.document["metadata"]["uid"], updated_at=now.isoformat(),
                                        created_at=stored.document["metadata"]["created_at"])
            conn.execute(update(orm.resources).where(_r.uid == stored.uid)
                         .values(document=document, updated_at=naive_utc(now)))
            outcome.append((_parse(kind, document), "updated"))
    return outcome


def delete_resource(conn: Connection, kind: str, identifier: str) -> Resource:
    """Delete the resource of ``kind`` with this name or uid and return it."""
    resource = get_resource(conn, kind, identifier)
    conn.execute(delete(orm.resources).where(_r.uid == resource.uid))
    return resource
