"""`/documents/<id>/print`: a clean A4 page of a document — number, data, lines, the amount in
大写, and the review signatures (name, role, time) — for the browser's print / save as PDF."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flask import render_template, request, url_for
from flask_login import current_user

from webui.extensions import db
from webui.inbox import bp
from workflow import policy, queries, services
from workflow.amounts import upper_amount
from workflow.definitions.spec import Label
from workflow.process import DocumentProcess
from workflow.roles import ROLES


@dataclass(frozen=True)
class Signature:
    name: str
    roles: tuple[Label, ...]
    step: Label
    at: Any
    comment: str


def signatures(process: DocumentProcess, user: Any) -> list[Signature]:
    """The approvals that stand: for each review state, those of its latest round (an earlier
    round was undone by a rejection); in a blind review still open, only what `user` may see."""
    latest: dict[str, int] = {}
    for review in process.reviews:
        latest[review.state] = max(latest.get(review.state, 0), review.round)
    document = process.document
    hidden_round = not policy.sees_decisions(user, process)
    found = []
    for review in sorted(process.reviews, key=lambda r: r.at):
        if review.decision != "approve" or review.round != latest[review.state]:
            continue
        current = review.state == document.state and review.round == document.review_round
        if current and hidden_round and review.user_id != user.id:
            continue
        state = process.spec.state(review.state) if process.spec.has_state(review.state) else None
        rule_roles = set(state.review.roles) if state and state.review else set()
        roles = tuple(ROLES[r] for r in sorted(review.user.roles & rule_roles) if r in ROLES)
        found.append(
            Signature(
                review.user.name,
                roles,
                state.label if state else Label(review.state, review.state),
                review.at,
                review.comment,
            )
        )
    return found


@bp.get("/documents/<int:doc_id>/print")
def print_document(doc_id: int):
    user = current_user.row
    process = services.get_document(db.session, doc_id, user)  # NotFound if not visible
    amount = queries.amount_of(process)
    return render_template(
        "inbox/print.html",
        process=process,
        doc=process.document,
        spec=process.spec,
        amount=amount,
        amount_words=upper_amount(amount) if isinstance(amount, Decimal) else None,
        totals=_line_totals(process),
        signatures=signatures(process, user),
        link=request.host_url.rstrip("/") + url_for("inbox.document", doc_id=doc_id),
    )


@dataclass(frozen=True)
class Totals:
    lines: list[Decimal]
    total: Decimal


def _line_totals(process: DocumentProcess) -> dict[str, Totals]:
    """For each table with quantity × unit price columns: each line's total and their sum."""
    totals = {}
    for field in process.spec.fields:
        names = {c.name for c in field.columns}
        if field.type == "table" and {"qty", "unit_price"} <= names:
            rows = process.document.data.get(field.name) or []
            lines = [
                Decimal(str(r.get("qty") or 0)) * Decimal(str(r.get("unit_price") or 0))
                for r in rows
            ]
            totals[field.name] = Totals(lines, sum(lines, Decimal("0.00")))
    return totals
