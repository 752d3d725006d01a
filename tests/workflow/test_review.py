"""Each rule of review, allowed and refused, through the engine's services."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.conftest import PASSWORD, ROOT
from workflow import accounts, services
from workflow.errors import (
    ActionNotAllowed,
    AlreadyReviewed,
    CheckFailed,
    InvalidData,
    NotFound,
    NotOwner,
    RoleNotAllowed,
    SelfReview,
    StaleRevision,
)
from workflow.models import AuditEvent, Document, Review

SHIPMENT = {
    "customer": "安庆某医药公司",
    "order_no": "SO-2026-1024",
    "items": [
        {"product": "阿莫西林胶囊", "spec": "0.25g*24粒", "qty": 100, "unit_price": "28.00"},
        {"product": "布洛芬缓释胶囊", "spec": "0.3g*20粒", "qty": 200, "unit_price": "50.00"},
    ],
    "amount": "12800.00",
    "carrier": "物流",
    "ship_by": "2026-12-01",
    "paid": True,
    "held_orders": 0,
}


@pytest.fixture
def flows(rules_flows):
    """The rules are tested on the frozen shipment (tests/data/flows/rules/shipment.yaml)."""
    return rules_flows


@pytest.fixture
def doc(session, flows, people):
    """A paid shipment created and submitted by zhang: in double_check at revision 1."""
    process = services.create_document(session, people["zhang"], "shipment", SHIPMENT)
    services.act(session, process.document.id, people["zhang"], "submit", 1)
    return process.document.id


def act(session, people, name, doc_id, action, comment=""):
    document = session.get(Document, doc_id)
    return services.act(session, doc_id, people[name], action, document.revision, comment)


def reload(session, doc_id: int) -> Document:
    session.expire_all()
    return session.get(Document, doc_id)


def events(session, doc_id: int) -> list[AuditEvent]:
    return list(
        session.scalars(
            select(AuditEvent).where(AuditEvent.document_id == doc_id).order_by(AuditEvent.id)
        )
    )


def test_two_distinct_reviewers_move_the_document_on(session, people, doc):
    act(session, people, "wang", doc, "approve", "核对无误")
    assert reload(session, doc).state == "double_check"
    act(session, people, "li", doc, "approve", "数量规格一致")
    assert reload(session, doc).state == "ready_to_ship"
    approvals = [e for e in events(session, doc) if e.action == "approve"]
    assert [(e.actor, e.from_state, e.to_state) for e in approvals] == [
        ("wang", "double_check", "double_check"),
        ("li", "double_check", "ready_to_ship"),
    ]


def test_creator_may_not_approve(session, people, doc):
    with pytest.raises(SelfReview):
        act(session, people, "zhang", doc, "approve")


@pytest.fixture
def shared_drafts(session, flows):
    """Shipment drafts shared by the 内勤 team (`owner_only: false`), so that the creator, the
    editor and the submitter of one document can be three different people."""
    text = (ROOT / "tests/data/flows/rules/shipment.yaml").read_text(encoding="utf-8")
    marker = "    editable_by: [sales_admin]\n"
    assert marker in text
    services.publish_flow(
        session, text.replace(marker, marker + "    owner_only: false\n", 1), "shipment.yaml"
    )


def test_colleague_may_not_touch_a_draft(session, flows, people):
    doc_id = services.create_document(session, people["zhang"], "shipment", SHIPMENT).document.id
    with pytest.raises(NotOwner):
        services.edit_document(session, doc_id, people["wang"], {"samples": "样品2盒"}, 1)
    for action in ("submit", "cancel"):
        with pytest.raises(NotOwner):
            act(session, people, "wang", doc_id, action)
    refused = [e.code for e in events(session, doc_id) if e.outcome == "refused"]
    assert refused == ["not_owner"] * 3
    assert reload(session, doc_id).state == "draft"


def test_submitter_may_not_approve(session, flows, people, shared_drafts):
    created = services.create_document(session, people["zhang"], "shipment", SHIPMENT)
    doc_id = created.document.id
    act(session, people, "wang", doc_id, "submit")
    with pytest.raises(SelfReview, match="submitted"):
        act(session, people, "wang", doc_id, "approve")


def test_editor_may_not_approve(session, flows, people, shared_drafts):
    doc_id = services.create_document(session, people["zhang"], "shipment", SHIPMENT).document.id
    services.edit_document(session, doc_id, people["chen"], {"samples": "样品2盒"}, 1)
    assert reload(session, doc_id).revision == 2
    act(session, people, "zhang", doc_id, "submit")
    with pytest.raises(SelfReview, match="edited"):
        act(session, people, "chen", doc_id, "approve")
    act(session, people, "wang", doc_id, "approve")


def test_one_person_counts_once_whatever_roles(session, people, doc):
    act(session, people, "duo", doc, "approve")  # holds sales_admin and warehouse
    with pytest.raises(AlreadyReviewed):
        act(session, people, "duo", doc, "approve")
    assert reload(session, doc).state == "double_check"
    assert session.scalar(select(func.count()).select_from(Review)) == 1


def test_role_not_allowed(session, people, doc):
    with pytest.raises(RoleNotAllowed):
        act(session, people, "ma", doc, "approve")  # a GM is not in this review
    with pytest.raises(RoleNotAllowed):
        act(session, people, "shen", doc, "approve")  # auditors act on nothing


def test_person_outside_the_flow_cannot_see_the_document(session, people, doc):
    with pytest.raises(NotFound):
        act(session, people, "xu", doc, "approve")  # 业务员 has no part in shipments
    with pytest.raises(NotFound):
        services.get_document(session, doc, people["xu"])


def test_stale_revision_is_refused(session, people, doc):
    with pytest.raises(StaleRevision):
        services.act(session, doc, people["wang"], "approve", 7)
    assert reload(session, doc).state == "double_check"


def test_action_not_allowed_in_review_and_from_wrong_state(session, people, doc):
    with pytest.raises(ActionNotAllowed):
        act(session, people, "li", doc, "ship")
    with pytest.raises(ActionNotAllowed):
        act(session, people, "zhang", doc, "submit")


def test_rejection_needs_a_reason_and_returns_to_draft(session, people, doc):
    with pytest.raises(InvalidData):
        act(session, people, "li", doc, "reject", "  ")
    act(session, people, "li", doc, "reject", "规格与订单不符")
    assert reload(session, doc).state == "draft"
    last = events(session, doc)[-1]
    assert (last.action, last.to_state, last.comment) == ("reject", "draft", "规格与订单不符")


def test_resubmission_starts_a_new_round(session, people, doc):
    act(session, people, "wang", doc, "approve")
    act(session, people, "li", doc, "reject", "数量不对")
    services.edit_document(
        session, doc, people["zhang"], {"amount": "12800.00", "samples": "无"}, 1
    )
    act(session, people, "zhang", doc, "submit")
    act(session, people, "li", doc, "approve")  # li rejected the last round; a new round is new
    assert reload(session, doc).state == "double_check"  # wang's old approval does not count
    act(session, people, "wang", doc, "approve")
    assert reload(session, doc).state == "ready_to_ship"


def test_editing_starts_a_new_revision_and_keeps_each_revision(session, flows, people):
    doc_id = services.create_document(session, people["zhang"], "shipment", SHIPMENT).document.id
    services.edit_document(session, doc_id, people["zhang"], {"carrier": "快递"}, 1)
    with pytest.raises(StaleRevision):
        services.edit_document(session, doc_id, people["zhang"], {"carrier": "自提"}, 1)
    document = reload(session, doc_id)
    assert (document.revision, document.data["carrier"]) == (2, "快递")


def test_approver_of_one_level_may_not_approve_a_later_level(session, flows, people):
    both = accounts.create_user(session, "gm_wh", PASSWORD, ["gm", "warehouse"])
    unpaid = {**SHIPMENT, "paid": False}
    doc_id = services.create_document(session, people["zhang"], "shipment", unpaid).document.id
    act(session, people, "zhang", doc_id, "submit")
    assert reload(session, doc_id).state == "gm_exception"
    services.act(session, doc_id, both, "approve", 1)
    act(session, people, "liu", doc_id, "approve")
    assert reload(session, doc_id).state == "double_check"
    with pytest.raises(AlreadyReviewed, match="earlier review level"):
        services.act(session, doc_id, both, "approve", 1)


def test_refused_action_changes_nothing_but_the_audit_log(session, people, doc):
    before = reload(session, doc)
    state, revision = before.state, before.revision
    with pytest.raises(SelfReview):
        act(session, people, "zhang", doc, "approve", "我自己批")
    after = reload(session, doc)
    assert (after.state, after.revision) == (state, revision)
    assert session.scalar(select(func.count()).select_from(Review)) == 0
    last = events(session, doc)[-1]
    assert (last.outcome, last.code, last.actor) == ("refused", "self_review", "zhang")


def test_checks_refuse_bad_arithmetic(session, flows, people):
    wrong = {**SHIPMENT, "amount": "12800.01"}
    doc_id = services.create_document(session, people["zhang"], "shipment", wrong).document.id
    with pytest.raises(CheckFailed, match="amount"):
        act(session, people, "zhang", doc_id, "submit")
    assert reload(session, doc_id).state == "draft"


def test_audit_write_failure_rolls_back_the_action(session, people, doc, monkeypatch):
    from workflow import audit

    real_append = audit.append

    def failing_append(s, chain_key, **fields):
        if fields.get("action") == "approve" and fields.get("outcome") == "ok":
            raise RuntimeError("disk full")
        return real_append(s, chain_key, **fields)

    monkeypatch.setattr(audit, "append", failing_append)
    with pytest.raises(RuntimeError):
        act(session, people, "wang", doc, "approve")
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Review)) == 0
    assert reload(session, doc).state == "double_check"


def test_actions_for_lists_exactly_what_each_person_may_do(session, people, doc):
    process = services.get_document(session, doc, people["wang"])
    assert process.actions_for(people["wang"]) == ["approve", "reject"]
    assert process.actions_for(people["li"]) == ["approve", "reject"]
    assert process.actions_for(people["zhang"]) == []
    assert process.actions_for(people["shen"]) == []


def test_disabled_user_is_refused_on_the_next_action(session, people, doc):
    accounts.set_active(session, "wang", False)
    with pytest.raises(NotFound):
        act(session, people, "wang", doc, "approve")


def test_inbox_shows_what_waits_for_me(session, people, doc):
    from workflow.queries import inbox

    assert [p.document.id for p in inbox(session, people["wang"]).items] == [doc]
    assert inbox(session, people["zhang"]).items == []
    assert inbox(session, people["shen"]).items == []


def test_each_listed_role_must_be_represented(session, people, doc):
    """double_check says require_each_role: 内勤 + 库管, never two 内勤."""
    act(session, people, "wang", doc, "approve")
    with pytest.raises(RoleNotAllowed, match="each of the roles"):
        act(session, people, "chen", doc, "approve")
    assert reload(session, doc).state == "double_check"
    act(session, people, "zhou", doc, "approve")
    assert reload(session, doc).state == "ready_to_ship"


def test_a_person_with_both_roles_can_fill_either_slot(session, people, doc):
    act(session, people, "duo", doc, "approve")  # sales_admin + warehouse
    act(session, people, "wang", doc, "approve")  # duo stands for the warehouse
    assert reload(session, doc).state == "ready_to_ship"


def test_actions_hide_approve_when_my_role_is_already_represented(session, people, doc):
    act(session, people, "wang", doc, "approve")
    process = services.get_document(session, doc, people["chen"])
    assert process.actions_for(people["chen"]) == ["reject"]  # may still stop a mistake
    assert process.actions_for(people["li"]) == ["approve", "reject"]


def test_after_review_only_the_listed_fields_may_change(session, people, doc):
    act(session, people, "wang", doc, "approve")
    act(session, people, "li", doc, "approve")
    assert reload(session, doc).state == "ready_to_ship"
    with pytest.raises(ActionNotAllowed, match="amount"):
        services.edit_document(session, doc, people["li"], {"amount": "1.00"}, 1)
    assert reload(session, doc).data["amount"] == "12800.00"
    services.edit_document(session, doc, people["li"], {"tracking_no": "SF1234567890"}, 1)
    assert reload(session, doc).data["tracking_no"] == "SF1234567890"
