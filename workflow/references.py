"""`references:` fields: a document referring to others (an invoice billing shipments).

Each live document's references are kept as rows of `document_references`, with the amount each
takes from its target. Before rows are written every target is locked (`SELECT … FOR UPDATE`,
in id order so two referrers never deadlock; SQLite's write transaction is already exclusive),
so "what the others already take" is read when no one else can add to it: of two invoices
racing to bill the last of a shipment, the second waits for the first and is then refused.

Checked on create and edit (the fields that changed) and again on every action out of the
initial state (submit), when the referenced documents' states may have moved on. Rows are
deleted when the document ends in a `void` state, and a `reverses_in` state releases the rows
of the document it reverses (a credit note frees what the reversed invoice billed).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from workflow import fields as field_types
from workflow.definitions.build import load_flow
from workflow.definitions.compile import compiled_from
from workflow.definitions.spec import FlowSpec, ReferenceSpec
from workflow.errors import InvalidData, OverLimit
from workflow.guards import Guard, GuardError, compile_guard
from workflow.models import Document, DocumentReference


@dataclass(frozen=True)
class Wanted:
    path: str  # field, or table.column
    ref: ReferenceSpec
    target_id: int
    amount: Decimal | None


def _wanted(spec: FlowSpec, data: dict[str, Any], only: Collection[str] | None) -> Iterator[Wanted]:
    typed = field_types.typed(spec.fields, data)
    for field in spec.fields:
        if only is not None and field.name not in only:
            continue
        ref = field.references
        if ref is not None and data.get(field.name) not in (None, ""):
            amount = typed.get(ref.amount) if ref.amount else None
            yield Wanted(field.name, ref, int(typed[field.name]), _money(amount))
        for column in field.columns:
            ref = column.references
            if ref is None:
                continue
            raw_rows = data.get(field.name) or ()
            for raw, row in zip(raw_rows, typed.get(field.name) or (), strict=False):
                if raw.get(column.name) in (None, ""):
                    continue
                amount = row.get(ref.amount) if ref.amount else None
                yield Wanted(
                    f"{field.name}.{column.name}", ref, int(row[column.name]), _money(amount)
                )


def _money(value: Any) -> Decimal | None:
    return value if isinstance(value, Decimal) else None


def referenced_fields(spec: FlowSpec) -> frozenset[str]:
    return frozenset(
        f.name for f in spec.fields if f.references or any(c.references for c in f.columns)
    )


def sync(
    session: Session, document: Document, spec: FlowSpec, changed: Collection[str] | None = None
) -> None:
    """Check the document's references (those in `changed` fields; all when None) and store them.

    InvalidData for a reference to a missing document, one of another flow or in a wrong state;
    OverLimit when a target would give more than its limit leaves."""
    fields = referenced_fields(spec)
    if changed is not None:
        # A reference changes with its own field, or with the amount it takes (a field too).
        fields = frozenset(
            f.name
            for f in spec.fields
            if f.name in fields
            and (f.name in changed or (f.references and f.references.amount in changed))
        )
    if not fields:
        return
    wanted = list(_wanted(spec, document.data, fields))
    targets = _lock(session, sorted({w.target_id for w in wanted}))
    taking: dict[int, Decimal] = {}
    for w in wanted:
        target = targets.get(w.target_id)
        label = _name(target) if target is not None else str(w.target_id)
        if target is None or target.flow_name != w.ref.flow or target.id == document.id:
            raise InvalidData(
                {w.path: [f"document {label} is not a `{w.ref.flow}` document"]},
                f"{w.path}: document {label} is not a `{w.ref.flow}` document",
            )
        if w.ref.states and target.state not in w.ref.states:
            raise InvalidData(
                {
                    w.path: [
                        f"document {label} is in state `{target.state}`; it must be in "
                        f"{', '.join(w.ref.states)}"
                    ]
                },
                f"{w.path}: document {label} is in state `{target.state}`",
            )
        if w.ref.limit is not None:
            taking[target.id] = taking.get(target.id, Decimal(0)) + (w.amount or Decimal(0))
    for w in wanted:
        if w.ref.limit is None or w.target_id not in taking:
            continue
        target = targets[w.target_id]
        limit = _limit(w.ref.limit, target)
        taken = _taken(session, target.id, document.id)
        mine = taking.pop(target.id)
        if limit is None or taken + mine > limit:
            left = (limit - taken) if limit is not None else Decimal(0)
            raise OverLimit(
                f"{w.path}: document {_name(target)} has {left} left (limit {limit}, taken by "
                f"other live documents {taken}); this document takes {mine} "
                "(超出关联单据的可用余额)",
                {
                    "field": w.path,
                    "document_id": target.id,
                    "number": target.number,
                    "limit": str(limit),
                    "taken": str(taken),
                    "requested": str(mine),
                    "available": str(left),
                },
            )
    paths = {w.path for w in wanted} | _paths(spec, fields)
    session.execute(
        delete(DocumentReference).where(
            DocumentReference.document_id == document.id, DocumentReference.field.in_(paths)
        )
    )
    for w in wanted:
        session.add(
            DocumentReference(
                document_id=document.id,
                target_id=w.target_id,
                field=w.path,
                amount=str(w.amount) if w.amount is not None else None,
            )
        )
    session.flush()


def _paths(spec: FlowSpec, fields: Collection[str]) -> set[str]:
    paths: set[str] = set()
    for field in spec.fields:
        if field.name not in fields:
            continue
        if field.references:
            paths.add(field.name)
        paths.update(f"{field.name}.{c.name}" for c in field.columns if c.references)
    return paths


def _lock(session: Session, ids: list[int]) -> dict[int, Document]:
    found: dict[int, Document] = {}
    for target_id in ids:  # one by one in id order: a fixed lock order cannot deadlock
        row = session.scalar(
            select(Document)
            .where(Document.id == target_id)
            .with_for_update(of=Document)
            .execution_options(populate_existing=True)
        )
        if row is not None:
            found[target_id] = row
    return found


def _taken(session: Session, target_id: int, exclude: int) -> Decimal:
    amounts = session.scalars(
        select(DocumentReference.amount).where(
            DocumentReference.target_id == target_id, DocumentReference.document_id != exclude
        )
    )
    return sum((Decimal(a) for a in amounts if a is not None), Decimal(0))


def _name(document: Document) -> str:
    return document.number or f"#{document.id}"


@lru_cache(maxsize=256)
def _limit_guard(source: str, names: frozenset[str]) -> Guard | None:
    try:
        return compile_guard(source, names)
    except GuardError:
        return None


def _limit(source: str, target: Document) -> Decimal | None:
    version = target.flow_version
    spec = compiled_from(
        version.content_hash, lambda: load_flow(version.yaml_text, f"{version.flow_name}.yaml")
    ).spec
    guard = _limit_guard(source, frozenset(f.name for f in spec.fields))
    if guard is None:
        return None  # the expression names a field the referenced flow lacks: nothing is left
    return guard.value(field_types.typed(spec.fields, target.data))


def on_enter(session: Session, document: Document, spec: FlowSpec, state: str) -> None:
    """Entering a void state releases what the document takes; a `reverses_in` state releases
    what the document it reverses takes."""
    if spec.state(state).void:
        session.execute(
            delete(DocumentReference).where(DocumentReference.document_id == document.id)
        )
        return
    for w in _wanted(spec, document.data, None):
        if state in w.ref.reverses_in:
            _lock(session, [w.target_id])
            session.execute(
                delete(DocumentReference).where(DocumentReference.document_id == w.target_id)
            )


def referrers(session: Session, document_id: int) -> list[tuple[int, str, str | None]]:
    """(referring document id, field, amount) of the live documents referring to this one."""
    rows = session.execute(
        select(
            DocumentReference.document_id, DocumentReference.field, DocumentReference.amount
        ).where(DocumentReference.target_id == document_id)
    )
    return [tuple(r) for r in rows]
