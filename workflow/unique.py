"""`unique` fields: a value (an invoice number, a receipt number) held by one live document.

Each live document's unique values are kept as claims in `unique_claims`, whose unique index
decides races: of two documents claiming one value at the same time, the second waits for the
first transaction and then fails — a read-then-write check could let both through. Claims are
synced on create and edit (so a submit can never carry an unchecked value) and released when
the document ends in a `void` state (withdrawn, cancelled).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workflow.definitions.spec import FieldSpec, FlowSpec
from workflow.errors import DuplicateValue, InvalidData
from workflow.models import Document, UniqueClaim

MAX_VALUE_LENGTH = 200


def scope_of(spec: FlowSpec, field: FieldSpec, path: str) -> str:
    """The register a field's values live in: its flow, or every flow it is unique across."""
    flows = sorted({spec.name, *(field.unique_across or ())})
    return f"{'+'.join(flows)}:{path}"


def _claims(spec: FlowSpec, data: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(scope, field path, value) for every unique value in `data`."""
    for field in spec.fields:
        if field.unique_across is not None and data.get(field.name) not in (None, ""):
            yield scope_of(spec, field, field.name), field.name, str(data[field.name])
        for column in field.columns:
            if column.unique_across is None:
                continue
            path = f"{field.name}.{column.name}"
            for row in data.get(field.name) or ():
                if row.get(column.name) not in (None, ""):
                    yield scope_of(spec, column, path), path, str(row[column.name])


def sync(session: Session, document: Document, spec: FlowSpec) -> None:
    """Make the document's claims match its data; DuplicateValue if another document holds one."""
    wanted: dict[tuple[str, str], str] = {}
    for scope, path, value in _claims(spec, document.data):
        value = value.strip()[:MAX_VALUE_LENGTH]
        if (scope, value) in wanted:
            raise InvalidData({path: [f"`{value}` appears more than once in this document"]})
        wanted[scope, value] = path
    held = {
        (c.scope, c.value): c
        for c in session.scalars(select(UniqueClaim).where(UniqueClaim.document_id == document.id))
    }
    for key, claim in held.items():
        if key not in wanted:
            session.delete(claim)
    for (scope, value), path in wanted.items():
        if (scope, value) in held:
            continue
        try:
            with session.begin_nested():  # a failed claim must not end the whole transaction
                session.add(
                    UniqueClaim(scope=scope, value=value, field=path, document_id=document.id)
                )
        except IntegrityError:
            holder = session.scalar(
                select(UniqueClaim.document_id).where(
                    UniqueClaim.scope == scope, UniqueClaim.value == value
                )
            )
            raise DuplicateValue(
                f"`{value}` ({path}) is already used by document {holder}; a value may be used "
                "by only one live document (该编号已被其他单据使用)",
                {"field": path, "value": value, "document_id": holder},
            ) from None


def release(session: Session, document: Document) -> None:
    """Free the document's values (it was withdrawn or cancelled)."""
    session.execute(delete(UniqueClaim).where(UniqueClaim.document_id == document.id))
