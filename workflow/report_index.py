"""The report tables, kept in step with the documents inside the same transaction.

One SQLAlchemy `before_flush` listener, so no service has to remember to call anything: every
allowed action writes an audit event (rule 6), and every flush that carries one (or a changed
document) updates `report_documents` (one row per document: state, times, amount, contract
number…) and `report_steps` (one row per pass through a review state). Approvals and
rejections are read from `reviews` itself (one row per decision already, indexed by time): a
copy of each would cost every decision one more row to write. Reports then read these indexed
columns and never the JSON.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import delete, event, select
from sqlalchemy.orm import Session

from workflow.db import as_utc
from workflow.models import (
    AuditEvent,
    Document,
    ReportDocument,
    ReportStep,
    User,
)

# Final states that mean "did not happen" rather than "done".
WITHDRAWN_STATES = frozenset({"withdrawn", "cancelled", "canceled", "void"})
# The state from which the business step a flow exists for has happened (goods shipped,
# invoice issued and checked, deposit or claim paid), per shipped flow.
MILESTONES: dict[str, frozenset[str]] = {
    "shipment": frozenset({"shipped", "delivered"}),
    "invoicing": frozenset({"awaiting_mail", "mailed", "signed"}),
    "tender_deposit": frozenset({"paid", "awaiting_refund", "refund_requested", "refunded"}),
    "expense": frozenset({"paid"}),
}
REASON_LENGTH = 200


def to_fen(value: Any) -> int | None:
    """Decimal text (as the engine stores money) → integer fen; None when absent or not money."""
    if value is None or value == "" or isinstance(value, bool | float):
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    if not amount.is_finite():
        return None
    return int((amount * 100).to_integral_value())


def _text(value: Any, length: int) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text[:length] or None


def _pending(session: Session, cls: type[Any], document_id: int) -> Any:
    """A row added earlier in this same flush (not yet in the identity map, nor queryable):
    several events of one document may arrive in one flush."""
    for obj in session.new:
        if (
            isinstance(obj, cls)
            and obj.document_id == document_id
            and (cls is not ReportStep or obj.left_at is None)
        ):
            return obj
    return None


def _open_step(session: Session, document_id: int) -> ReportStep | None:
    """The document's open step: from the identity map when the locked load brought it (the
    document's lock keeps it current), else from the database."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, ReportStep) and obj.document_id == document_id and obj.left_at is None:
            return obj
    return session.scalars(
        select(ReportStep).where(
            ReportStep.document_id == document_id, ReportStep.left_at.is_(None)
        )
    ).first()


def _spec(document: Document) -> Any:
    from workflow.process import compiled  # late: process imports models, which import us

    return compiled(document.flow_version).spec


def status_of(spec: Any, state: str) -> str:
    """open | completed | withdrawn: what a report counts a document in `state` as."""
    if not (spec.has_state(state) and spec.state(state).final):
        return "open"
    return "withdrawn" if state in WITHDRAWN_STATES else "completed"


def data_columns(spec: Any, data: dict[str, Any]) -> dict[str, Any]:
    """The report columns taken from a document's data (the bulk generator uses this too)."""
    paid = data.get("paid")
    due_field = spec.overdue.field if spec.overdue else None
    return {
        "amount_fen": to_fen(data.get("amount")),
        "contract_amount_fen": to_fen(data.get("contract_amount")),
        "customer": _text(data.get("customer") or data.get("buyer_title"), 200),
        "contract_no": _text(data.get("contract_no") or data.get("order_no"), 60),
        "sales_rep": _text(data.get("sales_rep") or data.get("claimant"), 60),
        "paid": paid if isinstance(paid, bool) else None,
        "due_date": _text(data.get(due_field), 10) if due_field else None,
    }


def refresh(session: Session, document: Document, state: str, at: dt.datetime) -> ReportDocument:
    """Bring the document's report row up to date (created when missing)."""
    spec = _spec(document)
    # Usually in the identity map already (DocumentProcess.load joins it): no query then.
    row = _pending(session, ReportDocument, document.id) or session.get(ReportDocument, document.id)
    if row is None:
        creator = session.get(User, document.created_by_id)
        row = ReportDocument(
            document_id=document.id,
            created_by=creator.username if creator else "",
            created_at=document.created_at or at,
            last_activity_at=at,
        )
        session.add(row)
    row.flow = document.flow_name
    row.state = state
    row.status = status_of(spec, state)
    if row.status == "open":
        row.finished_at = None
    elif row.finished_at is None:
        row.finished_at = at
    if state not in MILESTONES.get(document.flow_name, ()):
        row.milestone_at = None
    elif row.milestone_at is None:
        row.milestone_at = at
    if row.last_activity_at is None or as_utc(row.last_activity_at) < as_utc(at):
        row.last_activity_at = at
    for name, value in data_columns(spec, document.data or {}).items():
        setattr(row, name, value)
    return row


def record_event(session: Session, document: Document, ev: AuditEvent) -> None:
    """The review steps one allowed action on `document` leaves and enters."""
    spec = _spec(document)
    at = ev.at
    if ev.from_state == ev.to_state or ev.to_state is None:
        return
    open_step = _pending(session, ReportStep, document.id) or _open_step(session, document.id)
    if open_step is not None:
        open_step.left_at = at
        open_step.seconds = max(0, int((as_utc(at) - as_utc(open_step.entered_at)).total_seconds()))
        open_step.outcome = {"approve": "approved", "reject": "rejected"}.get(ev.action, "moved")
        open_step.decided_by = ev.actor
        if ev.action == "reject":
            open_step.reason = (ev.comment or "").strip()[:REASON_LENGTH] or None
    if spec.has_state(ev.to_state) and spec.state(ev.to_state).is_review:
        session.add(
            ReportStep(
                document_id=document.id,
                flow=document.flow_name,
                state=ev.to_state,
                entered_at=at,
            )
        )


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    events = [
        obj
        for obj in session.new
        if isinstance(obj, AuditEvent) and obj.outcome == "ok" and obj.document_id is not None
    ]
    touched: set[int] = set()
    for ev in sorted(events, key=lambda e: (e.document_id, e.chain_seq)):
        document = session.get(Document, ev.document_id)
        if document is None:
            continue
        record_event(session, document, ev)
        refresh(session, document, ev.to_state or document.state, ev.at)
        touched.add(document.id)
    for obj in list(session.dirty):
        if (
            isinstance(obj, Document)
            and obj.id is not None
            and obj.id not in touched
            and session.is_modified(obj, include_collections=False)
        ):
            refresh(session, obj, obj.state, obj.updated_at or obj.entered_at)


def rebuild(session: Session) -> int:
    """Recreate the report rows of every document from the audit log (after an upgrade)."""
    for table in (ReportStep, ReportDocument):
        session.execute(delete(table))
    session.flush()
    count = 0
    for document in session.scalars(select(Document).order_by(Document.id)).all():
        history = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.document_id == document.id, AuditEvent.outcome == "ok")
            .order_by(AuditEvent.chain_seq)
        ).all()
        for ev in history:
            record_event(session, document, ev)
            refresh(session, document, ev.to_state or document.state, ev.at)
            session.flush()
        refresh(session, document, document.state, document.updated_at or document.entered_at)
        count += 1
    session.commit()
    return count
