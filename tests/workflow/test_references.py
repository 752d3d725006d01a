"""References between documents: invoices billing shipments (over_limit), returns, credit notes
releasing what the reversed invoice billed, and two invoices racing for the same shipment."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from tests.test_shipped_flows import all_checks, shipped, spec_of, walk
from workflow import audit, services
from workflow.definitions.build import load_flow
from workflow.errors import ActionNotAllowed, CheckFailed, DefinitionError, InvalidData, OverLimit
from workflow.models import Document, DocumentReference, User

INVOICE = spec_of("invoicing").example
SHIPMENT = spec_of("shipment").example


def invoice_data(shipment_id: int, amount: str = "12800.00", **extra: Any) -> dict[str, Any]:
    """The example invoice billing `amount` of one shipment (one line, 13% tax)."""
    gross = Decimal(amount)
    net = (gross / Decimal("1.13")).quantize(Decimal("0.01"))
    line = {"product": "一次性使用无菌注射器", "unit": "批", "qty": 1, "unit_price": amount,
            "tax_rate": "0.13", "net": str(net), "tax": str(gross - net)}  # fmt: skip
    return {
        **INVOICE,
        "lines": [line],
        "amount": amount,
        "shipments": [{"shipment": shipment_id, "amount": amount}],
        **extra,
    }


def act(session, doc_id: int, user: User, action: str, **kw: Any) -> Document:
    session.expire_all()
    document = session.get(Document, doc_id)
    process = services.get_document(session, doc_id, user)
    checks = all_checks(process) if action == "approve" else None
    services.act(session, doc_id, user, action, document.revision, "核对无误", checks=checks, **kw)
    session.expire_all()
    return session.get(Document, doc_id)


def edit(session, doc_id: int, user: User, data: dict[str, Any]) -> None:
    session.expire_all()
    document = session.get(Document, doc_id)
    services.edit_document(session, doc_id, user, data, document.revision)


def test_an_invoice_may_not_bill_more_than_a_shipment_shipped(session, flows, people) -> None:
    ship = shipped(session, people)
    zhang = people["zhang"]
    first = services.create_document(session, zhang, "invoicing", invoice_data(ship, "8000.00"))
    with pytest.raises(OverLimit) as refused:
        services.create_document(session, zhang, "invoicing", invoice_data(ship, "4800.01"))
    assert refused.value.code == "over_limit" and refused.value.status == 409
    details = refused.value.details
    assert details["field"] == "shipments.shipment" and details["document_id"] == ship
    assert (details["available"], details["taken"]) == ("4800.00", "8000.00")
    session.rollback()
    # the rest of it is fine; and then nothing is left, also for an edit of a draft
    rest = services.create_document(session, zhang, "invoicing", invoice_data(ship, "4800.00"))
    with pytest.raises(OverLimit):
        edit(session, first.document.id, zhang, invoice_data(ship, "8000.01"))
    session.rollback()
    # a cancelled invoice releases what it billed
    act(session, rest.document.id, zhang, "cancel")
    again = services.create_document(session, zhang, "invoicing", invoice_data(ship, "4800.00"))
    assert again.document.state == "draft"
    assert audit.verify(session).ok


def test_a_reference_must_be_a_shipped_shipment(session, flows, people) -> None:
    zhang = people["zhang"]
    draft = services.create_document(session, zhang, "shipment", SHIPMENT).document.id
    with pytest.raises(InvalidData) as refused:
        services.create_document(session, zhang, "invoicing", invoice_data(draft))
    assert "shipments.shipment" in refused.value.errors
    assert "state `draft`" in refused.value.errors["shipments.shipment"][0]
    session.rollback()
    other = services.create_document(session, zhang, "invoicing", INVOICE).document.id
    for target in (other, 999_999):
        with pytest.raises(InvalidData, match="not a `shipment` document"):
            services.create_document(session, zhang, "invoicing", invoice_data(target))
        session.rollback()


def test_submit_checks_the_shipments_billed_again(session, flows, people) -> None:
    """An invoice without shipments may be drafted, not submitted; a blue invoice bills some."""
    zhang = people["zhang"]
    doc = services.create_document(session, zhang, "invoicing", INVOICE).document.id
    with pytest.raises(CheckFailed, match="shipments"):
        act(session, doc, zhang, "submit")
    session.rollback()
    ship = shipped(session, people)
    edit(session, doc, zhang, {"shipments": [{"shipment": ship, "amount": "12800.00"}]})
    assert act(session, doc, zhang, "submit").state == "request_check"
    rows = session.scalars(select(DocumentReference).where(DocumentReference.document_id == doc))
    assert [(r.target_id, r.field, r.amount) for r in rows] == [
        (ship, "shipments.shipment", "12800.00")
    ]


def test_tax_is_checked_per_line(session, flows, people) -> None:
    ship = shipped(session, people)
    zhang = people["zhang"]
    data = invoice_data(ship)
    data["lines"][0]["tax"] = "1472.00"  # net + tax is no longer qty × unit price
    doc = services.create_document(session, zhang, "invoicing", data).document.id
    with pytest.raises(CheckFailed, match="net amount plus tax"):
        act(session, doc, zhang, "submit")
    session.rollback()
    line = {**data["lines"][0], "net": "11327.43", "tax": "1472.57"}
    line["tax_rate"] = "0.09"  # net × rate is 1019.47, not the tax
    edit(session, doc, zhang, {"lines": [line]})
    with pytest.raises(CheckFailed, match="tax rate"):
        act(session, doc, zhang, "submit")


def issued(session, people, data: dict[str, Any]) -> int:
    """An invoice (or credit note) walked to `awaiting_mail`: issued and checked."""
    zhang, zhao = people["zhang"], people["zhao"]
    doc = services.create_document(session, zhang, "invoicing", data).document.id
    act(session, doc, zhang, "submit")
    act(session, doc, people["wang"], "approve")
    act(session, doc, people["qian"], "approve")
    number = f"0881{doc:04d}"
    edit(session, doc, zhao, {"invoice_code": "0340", "invoice_number": number,
                              "face_value": data["amount"]})  # fmt: skip
    act(session, doc, zhao, "issue")
    act(session, doc, people["chen"], "approve")
    return act(session, doc, people["liu"], "approve").id


def test_a_credit_note_reverses_an_issued_invoice_through_its_own_review(
    session, flows, people
) -> None:
    ship = shipped(session, people)
    zhang = people["zhang"]
    invoice = issued(session, people, invoice_data(ship))
    assert session.get(Document, invoice).state == "awaiting_mail"
    with pytest.raises(OverLimit):  # the shipment is fully billed
        services.create_document(session, zhang, "invoicing", invoice_data(ship, "100.00"))
    session.rollback()
    credit = {**invoice_data(ship), "direction": "红字", "reverses_invoice": invoice,
              "shipments": [], "credit_reason": "单价开错，冲红重开"}  # fmt: skip
    note = services.create_document(session, zhang, "invoicing", credit).document.id
    # one credit note per invoice
    with pytest.raises(Exception, match="already used by document"):
        services.create_document(session, zhang, "invoicing", credit)
    session.rollback()
    # a credit note may not take more than the invoice's amount
    with pytest.raises(OverLimit) as refused:
        edit(session, note, zhang, {"amount": "12800.01"})
    assert refused.value.details["document_id"] == invoice
    session.rollback()
    # until the credit note is issued and checked, the shipment stays billed
    act(session, note, zhang, "submit")
    with pytest.raises(OverLimit):
        services.create_document(session, zhang, "invoicing", invoice_data(ship, "100.00"))
    session.rollback()
    zhao = people["zhao"]
    act(session, note, people["wang"], "approve")
    act(session, note, people["qian"], "approve")
    edit(session, note, zhao, {"invoice_code": "0340", "invoice_number": "09990001",
                               "face_value": "12800.00"})  # fmt: skip
    act(session, note, zhao, "issue")
    act(session, note, people["chen"], "approve")
    assert act(session, note, people["liu"], "approve").state == "awaiting_mail"
    # the reversed invoice billed nothing any more: the shipment can be invoiced again
    assert not session.scalars(
        select(DocumentReference).where(DocumentReference.document_id == invoice)
    ).all()
    redo = services.create_document(session, zhang, "invoicing", invoice_data(ship))
    assert redo.document.state == "draft"
    # mailing the reversed invoice's signature later does not bring its billing back
    edit(session, invoice, zhang, {"mailed_separately": True, "mail_tracking_no": "EMS1"})
    assert not session.scalars(
        select(DocumentReference).where(DocumentReference.document_id == invoice)
    ).all()
    assert audit.verify(session).ok


def test_a_return_takes_from_its_shipment_and_a_partial_shipment_ships(
    session, flows, people
) -> None:
    """One order shipped in two parts; goods of the first part come back."""
    first = shipped(session, people, {**SHIPMENT, "partial": True})
    part = dict(SHIPMENT, partial=True, items=[{**SHIPMENT["items"][1], "qty": 100}])
    _, visited = walk(session, people, "shipment", {**part, "amount": "3700.00"}, "delivered")
    assert visited[-1] == "delivered"
    zhang = people["zhang"]
    services.create_document(session, zhang, "invoicing", invoice_data(first, "12000.00"))
    back = {**SHIPMENT, "kind": "退货", "returns_shipment": first, "return_reason": "破损",
            "items": [{**SHIPMENT["items"][0], "qty": 1000}], "amount": "850.00"}  # fmt: skip
    with pytest.raises(OverLimit) as refused:  # 800.00 left: invoice it less, or credit it
        services.create_document(session, zhang, "shipment", back)
    assert refused.value.details["document_id"] == first
    session.rollback()
    back["items"] = [{**SHIPMENT["items"][0], "qty": 900}]
    back["amount"] = "765.00"
    doc, visited = walk(session, people, "shipment", back, "returned")
    assert visited == ["draft", "double_check", "double_check", "ready_to_ship", "returned"]
    # a return is not itself something to invoice
    with pytest.raises(InvalidData, match="state `returned`"):
        services.create_document(session, zhang, "invoicing", invoice_data(doc, "1.00"))
    session.rollback()
    assert audit.verify(session).ok


def test_the_drafter_does_not_decide_the_payment(session, flows, people) -> None:
    """款到发货: paid and held orders are finance's to confirm, with a reference."""
    zhang, zhao = people["zhang"], people["zhao"]
    with pytest.raises(ActionNotAllowed) as refused:
        services.create_document(session, zhang, "shipment", {**SHIPMENT, "paid": True})
    assert refused.value.details["fields"] == ["paid"]
    session.rollback()
    doc = services.create_document(session, zhang, "shipment", SHIPMENT).document.id
    with pytest.raises(ActionNotAllowed):
        edit(session, doc, zhang, {"paid": True})
    session.rollback()
    assert act(session, doc, zhang, "submit").state == "payment_check"
    edit(session, doc, zhao, {"paid": True})
    with pytest.raises(CheckFailed, match="payment reference"):
        act(session, doc, zhao, "confirm_payment")
    session.rollback()
    edit(session, doc, zhao, {"held_orders": 2, "payment_ref": "HD-1"})
    # two unpaid orders held: the 总经理 exception, approved on the revision finance confirmed
    document = act(session, doc, zhao, "confirm_payment")
    assert document.state == "gm_exception" and document.data["payment_ref"] == "HD-1"
    approved = act(session, doc, people["ma"], "approve")
    assert approved.revision == 3  # created, then finance's confirmation
    assert act(session, doc, people["liu"], "approve").state == "double_check"


def test_reference_keys_are_validated() -> None:
    text = (
        load_text("invoicing")
        .replace("amount: amount\n          limit:", "amount: qty\n          limit:")
        .replace("flow: shipment\n", "flow: Shipment\n")
        .replace("reverses_in: [awaiting_mail]", "reverses_in: [awaiting_mial]")
    )
    with pytest.raises(DefinitionError) as error:
        load_flow(text, "invoicing.yaml")
    messages = " | ".join(p.message for p in error.value.problems)
    assert "`Shipment` is not a valid flow name" in messages
    assert "`amount` of `references` of column `shipment`" in messages
    assert "unknown state `awaiting_mial`" in messages
    broken = load_text("invoicing").replace("limit: 'kind", "limitt: 'kind")
    with pytest.raises(DefinitionError, match="limitt"):
        load_flow(broken, "invoicing.yaml")
    on_string = load_text("shipment").replace(
        "  returns_shipment:\n    type: integer", "  returns_shipment:\n    type: string"
    )
    with pytest.raises(DefinitionError, match="`references` is for fields of type integer"):
        load_flow(on_string, "shipment.yaml")


def load_text(flow: str) -> str:
    from tests.conftest import ROOT

    return (ROOT / "definitions" / f"{flow}.yaml").read_text(encoding="utf-8")


def test_two_invoices_racing_for_one_shipment_only_one_wins(
    session, session_factory, flows, people
) -> None:
    ship = shipped(session, people)
    session.commit()
    results: list[str] = []
    start = threading.Barrier(2)

    def bill(username: str) -> None:
        with session_factory() as own:
            user = own.scalar(select(User).where(User.username == username))
            own.rollback()  # hold no transaction (on SQLite: no write lock) while waiting
            start.wait(timeout=30)
            try:
                services.create_document(own, user, "invoicing", invoice_data(ship, "7000.00"))
                results.append("created")
            except OverLimit as exc:
                results.append(exc.code)

    threads = [threading.Thread(target=bill, args=(u,)) for u in ("zhang", "wang")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == ["created", "over_limit"], results
    session.expire_all()
    billed = session.scalars(
        select(DocumentReference.amount).where(DocumentReference.target_id == ship)
    ).all()
    assert billed == ["7000.00"]
    assert audit.verify(session).ok
