"""Every shipped definition loads, validates, and walks from its example to each final state.

The walker asks the engine who may act (never decides itself), reloads the document from the
database between steps, and fills in the data a later step needs (invoice number, tracking
number…) through real edits by someone allowed to edit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import DEFINITIONS
from workflow import audit, services
from workflow.definitions.build import load_flow_file
from workflow.definitions.spec import FlowSpec
from workflow.models import AuditEvent, Document

Fill = dict[str, Any] | Callable[..., dict[str, Any]]
# What a later step needs, filled in through a real edit by someone allowed to edit. A callable
# gets (session, people, document data).
FILL: dict[str, dict[str, Fill]] = {
    "shipment": {
        "confirm_payment": {"paid": True, "held_orders": 0, "payment_ref": "HD-2026-1128"},
        "ship": {"tracking_no": "SF1234567890"},
        "confirm_delivery": {"delivery_note_signed": True},
    },
    "invoicing": {
        "submit": lambda session, people, d: {
            "shipments": [{"shipment": shipped(session, people), "amount": d["amount"]}]
        },
        "issue": lambda session, people, d: {
            "invoice_code": "034002100111",
            "invoice_number": "08812345",
            "face_value": d["amount"],
        },
        "mail": {"mailed_separately": True, "mail_tracking_no": "EMS9876543210"},
        "confirm_signed": {"customer_signed": True},
    },
    "expense": {
        "pay": lambda session, people, d: {
            "paid_amount": str(Decimal(d["amount"]) - Decimal(d["advance"])),
            "payment_ref": "PAY-2026-1130",
            "paid_on": "2026-11-30",
        }
    },
    "tender_deposit": {
        "pay": {"payment_ref": "PAY-2026-1201", "paid_on": "2026-12-01"},
        "record_result": {"result": "未中标"},
        "request_refund": {"refund_requested_on": "2026-12-20"},
        "confirm_refund": lambda session, people, d: {
            "refund_amount": d["amount"],
            "refunded_on": "2027-01-05",
        },
    },
}


def spec_of(flow: str) -> FlowSpec:
    return load_flow_file(next(p for p in DEFINITIONS if p.stem == flow))


def all_checks(process: Any) -> dict[str, bool] | None:
    """Every point of the review's checklist confirmed, as a reviewer who checked them all."""
    review = process.state.review
    if review is None or not review.checklist:
        return None
    return {item.id: True for item in review.checklist}


def walk(session, people, flow: str, data: dict[str, Any], target: str) -> tuple[int, list[str]]:
    """Walk a new document of `flow` from `data` to `target`, as the engine lets people act."""
    spec = spec_of(flow)
    dist = distances(spec, target)
    creator = next(
        p for p in people.values() if set(spec.state(spec.initial).editable_by) & p.roles
    )
    doc_id = services.create_document(session, creator, flow, data).document.id
    visited = []
    for _ in range(40):
        session.expire_all()
        document = session.get(Document, doc_id)
        visited.append(document.state)
        if document.state == target:
            break
        process = services.get_document(session, doc_id, creator)
        moves = [(m, d) for m, d in edges(spec)[document.state] if d in dist]
        assert moves, f"stuck in {document.state} on the way to {target}"
        move = min(moves, key=lambda m: dist[m[1]])[0]
        fill = FILL[flow].get(move)
        if fill:
            data = fill(session, people, document.data) if callable(fill) else fill
            editor = next(p for p in people.values() if process.can_edit(p))
            services.edit_document(session, doc_id, editor, data, document.revision)
            session.expire_all()
            document = session.get(Document, doc_id)
            process = services.get_document(session, doc_id, creator)
        actor = next((p for p in people.values() if move in process.actions_for(p)), None)
        assert actor is not None, f"nobody may {move} in {document.state}"
        comment = "核对无误" if move != "reject" else "退回修改"
        checks = all_checks(process) if move == "approve" else None
        services.act(session, doc_id, actor, move, document.revision, comment, checks=checks)
    return doc_id, visited


def shipped(session, people, data: dict[str, Any] | None = None) -> int:
    """A shipment walked to `shipped` (what an invoice or a return refers to)."""
    doc_id, visited = walk(
        session, people, "shipment", data or spec_of("shipment").example, "shipped"
    )
    assert visited[-1] == "shipped", visited
    return doc_id


def start_data(session, people, flow: str, target: str) -> dict[str, Any]:
    """The example, or what a target needs that the example is not (a return)."""
    example = dict(spec_of(flow).example)
    if (flow, target) == ("shipment", "returned"):
        original = shipped(session, people)
        line = {**example["items"][0], "qty": 100}
        return {
            **example,
            "kind": "退货",
            "returns_shipment": original,
            "items": [line],
            "amount": "85.00",
            "return_reason": "外包装破损",
        }
    return example


def edges(spec: FlowSpec) -> dict[str, list[tuple[str, str]]]:
    """state → [(move, destination)], moves being approve/reject or a definition action."""
    graph: dict[str, list[tuple[str, str]]] = {s.name: [] for s in spec.states}
    for state in spec.states:
        if state.review:
            graph[state.name] += [("approve", r.to) for r in state.on_approve]
            graph[state.name].append(("reject", state.on_reject or ""))
    for t in spec.transitions:
        graph[t.source].append((t.action, t.dest))
    return graph


def distances(spec: FlowSpec, target: str) -> dict[str, int]:
    graph = edges(spec)
    dist = {target: 0}
    queue = deque([target])
    while queue:
        node = queue.popleft()
        for source, moves in graph.items():
            if source not in dist and any(dest == node for _, dest in moves):
                dist[source] = dist[node] + 1
                queue.append(source)
    return dist


def walk_cases() -> list[Any]:
    cases = []
    for path in DEFINITIONS:
        spec = load_flow_file(path)
        for state in spec.states:
            if state.final:
                cases.append(pytest.param(spec.name, state.name, id=f"{spec.name}->{state.name}"))
    return cases


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.stem)
def test_shipped_definition_validates(path) -> None:
    spec = load_flow_file(path)
    assert spec.name == path.stem
    assert any(s.final for s in spec.states)
    assert any(s.review and s.review.required >= 2 for s in spec.states)


@pytest.mark.parametrize(("flow", "target"), walk_cases())
def test_walk_example_to_final_state(session, flows, people, flow, target) -> None:
    data = start_data(session, people, flow, target)
    doc_id, visited = walk(session, people, flow, data, target)
    assert visited[-1] == target, visited
    result = audit.verify(session)
    assert result.ok, result.problem
    history = session.scalars(select(AuditEvent).where(AuditEvent.document_id == doc_id)).all()
    assert all(e.outcome == "ok" for e in history)
    assert history[-1].to_state == target


def test_a_deposit_refunded_in_parts_with_a_deduction(session, flows, people) -> None:
    """投标保证金: two partial refunds and the agency's fee, with its reason, settle the deposit;
    until they add up to what was paid the balance is open. Reminders are logged meanwhile."""
    from workflow.errors import CheckFailed

    doc_id, visited = walk(session, people, "tender_deposit", spec_of("tender_deposit").example,
                           "refund_requested")  # fmt: skip
    assert visited[-1] == "refund_requested"
    zhang, zhao = people["zhang"], people["zhao"]

    def edit(user, data) -> None:
        session.expire_all()
        document = session.get(Document, doc_id)
        services.edit_document(session, doc_id, user, data, document.revision)

    def confirm() -> str:
        session.expire_all()
        document = session.get(Document, doc_id)
        services.act(session, doc_id, zhao, "confirm_refund", document.revision)
        session.expire_all()
        return session.get(Document, doc_id).state

    chase = {"date": "2027-01-22", "channel": "电话", "contact": "王经理", "note": "本周内退"}
    edit(zhang, {"chases": [chase]})
    edit(zhao, {"refunds": [{"date": "2027-01-25", "amount": "30000.00", "bank_ref": "B1"}],
                "refund_amount": "30000.00", "refunded_on": "2027-01-25"})  # fmt: skip
    with pytest.raises(CheckFailed, match="balance is still open"):
        confirm()
    session.rollback()
    refunds = [
        {"date": "2027-01-25", "amount": "30000.00", "bank_ref": "B1"},
        {"date": "2027-02-03", "amount": "19400.00", "bank_ref": "B2"},
    ]
    edit(zhao, {"refunds": refunds, "refund_amount": "49400.00", "refunded_on": "2027-02-03"})
    with pytest.raises(CheckFailed, match="balance is still open"):
        confirm()  # 600.00 not accounted for
    session.rollback()
    edit(zhao, {"deductions": [{"amount": "600.00", "reason": "中标服务费"}]})
    assert confirm() == "refunded"
    assert audit.verify(session).ok


def test_a_large_claim_needs_four_people_not_six(session, flows, people) -> None:
    """费用报销 above 5,000: 内勤 + 财务 check the receipts, 经理 + 总经理 approve."""
    example = spec_of("expense").example
    receipt = {**example["receipts"][0], "amount": "6000.00"}
    data = {**example, "receipts": [receipt], "amount": "6000.00"}
    doc_id, visited = walk(session, people, "expense", data, "paid")
    assert "gm_approval" in visited and "manager_approval" not in visited
    approvers = session.scalars(
        select(AuditEvent.actor).where(
            AuditEvent.document_id == doc_id, AuditEvent.action == "approve"
        )
    ).all()
    assert len(approvers) == len(set(approvers)) == 4
