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
