"""Reviews that catch mistakes: checklists, blind second review, values used by one live
document only (also when two requests race), and comments without an action."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from tests.conftest import PASSWORD, ROOT
from tests.webui.test_api import Api, error_code
from webui.extensions import db
from workflow import services
from workflow.accounts import create_user
from workflow.definitions.build import load_flow_file
from workflow.models import AuditEvent, Document, Review

EXPENSE = load_flow_file(ROOT / "definitions" / "expense.yaml").example
CHECKED_REVIEW = """      require_each_role: true
      blind: true
      checklist:
        - {id: customer, label: {zh: 客户与订单一致, en: Customer matches the order}}
        - {id: qty, label: {zh: 数量与订单一致, en: Quantity matches the order}}
"""


@pytest.fixture
def api(app, client, api_as) -> Api:
    """The shipment's double check with a two-point checklist and blind review (as v2)."""
    text = (ROOT / "definitions" / "shipment.yaml").read_text(encoding="utf-8")
    marker = "      require_each_role: true\n"
    start = text.index("  double_check:")
    at = text.index(marker, start)
    end = text.index("    on_approve: ready_to_ship\n", at)
    text = text[:at] + CHECKED_REVIEW + text[end:]
    with app.app_context():
        services.publish_flow(db.session, text, "shipment.yaml")
        create_user(db.session, "xu2", PASSWORD, ["sales"])
        db.session.remove()
    return Api(client, api_as)


def approve(api: Api, doc: dict, user: str, checks=None, **extra):
    body = {"action": "approve", "revision": doc["revision"], "comment": "", **extra}
    if checks is not None:
        body["checks"] = checks
    return api.post(f"/documents/{doc['id']}/actions", user, json=body)


def test_an_approval_confirms_every_point(app, api):
    doc = api.submitted()
    assert [i["id"] for i in doc["review"]["checklist"]] == ["customer", "qty"]
    missing = approve(api, doc, "wang", {"customer": True})
    assert missing.status_code == 422 and error_code(missing) == "checklist_incomplete"
    assert missing.get_json()["error"]["details"] == {"missing": ["qty"]}
    unknown = approve(api, doc, "wang", {"customer": True, "qty": True, "colour": True})
    assert unknown.status_code == 422
    false = approve(api, doc, "wang", {"customer": True, "qty": False})
    assert error_code(false) == "checklist_incomplete"
    ok = approve(api, doc, "wang", {"customer": True, "qty": True})
    assert ok.status_code == 200, ok.get_json()
    with app.app_context():
        review = db.session.scalar(select(Review).where(Review.document_id == doc["id"]))
        assert review.checks == {"confirmed": ["customer", "qty"]}
        codes = [
            e.code
            for e in db.session.scalars(
                select(AuditEvent).where(AuditEvent.document_id == doc["id"])
            )
            if e.outcome == "refused"
        ]
        assert codes == ["checklist_incomplete", "invalid_data", "checklist_incomplete"]
        db.session.remove()


def test_a_rejection_names_the_points_that_failed(app, api):
    doc = api.submitted()
    response = api.post(
        f"/documents/{doc['id']}/actions",
        "li",
        json={"action": "reject", "revision": doc["revision"], "comment": "数量不符",
              "failed_checks": ["qty"]},
    )  # fmt: skip
    assert response.status_code == 200 and response.get_json()["state"] == "draft"
    history = api.get(f"/documents/{doc['id']}/history", "zhang").get_json()["items"]
    with app.app_context():
        event = db.session.get(AuditEvent, history[-1]["seq"])
        assert event.details["checks"] == {"failed": ["qty"]}
        db.session.remove()


def test_a_blind_reviewer_sees_the_other_decision_only_after_deciding(app, api, login_as):
    doc = api.submitted()
    assert (
        approve(api, doc, "wang", {"customer": True, "qty": True}, comment="核对无误").status_code
        == 200
    )
    assert api.post(f"/documents/{doc['id']}/comments", "wang",
                    json={"text": "单价我已核对"}).status_code == 201  # fmt: skip
    for viewer in ("li", "zhou"):  # warehouse: still to decide
        body = api.get(f"/documents/{doc['id']}", viewer).get_json()
        assert body["review"]["blind"] and body["review"]["approvals"] == []
        history = api.get(f"/documents/{doc['id']}/history", viewer).get_json()["items"]
        assert not [e for e in history if e["actor"] == "wang" and e["action"] != "create"]
        page = login_as(viewer).get(f"/documents/{doc['id']}").get_data(as_text=True)
        assert "核对无误" not in page and "单价我已核对" not in page and "盲审" in page
    # wang, who decided, and the auditor see it
    assert len(api.get(f"/documents/{doc['id']}", "wang").get_json()["review"]["approvals"]) == 1
    assert len(api.get(f"/documents/{doc['id']}", "shen").get_json()["review"]["approvals"]) == 1
    assert approve(api, doc, "li", {"customer": True, "qty": True}).status_code == 200
    history = api.get(f"/documents/{doc['id']}/history", "zhou").get_json()["items"]
    assert [e for e in history if e["actor"] == "wang" and e["action"] == "approve"]


def test_the_page_offers_the_checklist_and_keeps_it_when_refused(app, api, login_as):
    import re

    doc = api.submitted()
    wang = login_as("wang")
    page = wang.get(f"/documents/{doc['id']}").get_data(as_text=True)
    assert 'name="check-customer"' in page and 'name="check-qty"' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = {"csrf_token": token, "action": "approve", "revision": str(doc["revision"]),
            "comment": "", "check-customer": "1"}  # fmt: skip
    refused = wang.post(f"/documents/{doc['id']}/act", data=form)
    assert refused.status_code == 422  # the same answer as the API
    form["check-qty"] = "1"
    assert wang.post(f"/documents/{doc['id']}/act", data=form).status_code == 303


# --- a value used by one live document ----------------------------------------------------------
def claim(api: Api, user: str, receipt: str):
    receipts = [{**EXPENSE["receipts"][0], "receipt_no": receipt}]
    data = {**EXPENSE, "receipts": receipts, "amount": receipts[0]["amount"]}
    return api.post("/documents", user, json={"flow": "expense", "data": data})


def test_a_receipt_is_claimed_once_across_claims(app, api):
    first = claim(api, "xu", "R-1001")
    assert first.status_code == 201
    second = claim(api, "xu2", "R-1001")
    assert second.status_code == 409 and error_code(second) == "duplicate_value"
    details = second.get_json()["error"]["details"]
    assert details["document_id"] == first.get_json()["id"]
    assert details["field"] == "receipts.receipt_no"
    # editing another claim to use it is refused too
    other = claim(api, "xu2", "R-2002").get_json()
    edit = api.patch(f"/documents/{other['id']}", "xu2", json={
        "data": {"receipts": [{**EXPENSE["receipts"][0], "receipt_no": "R-1001"}]},
        "revision": other["revision"]})  # fmt: skip
    assert edit.status_code == 409 and error_code(edit) == "duplicate_value"
    # a withdrawn claim releases its receipts
    assert api.act(first.get_json(), "xu", "withdraw").status_code == 200
    assert claim(api, "xu2", "R-1001").status_code == 201


def test_two_claims_racing_for_one_receipt_only_one_wins(app, api):
    tokens = {u: api.headers(u) for u in ("xu", "xu2")}
    receipts = [{**EXPENSE["receipts"][0], "receipt_no": "R-RACE"}]
    data = {**EXPENSE, "receipts": receipts, "amount": receipts[0]["amount"]}
    statuses: list[int] = []
    start = threading.Barrier(2)

    def send(user: str) -> None:
        start.wait()
        response = app.test_client().post("/api/v1/documents", headers=tokens[user],
                                          json={"flow": "expense", "data": data})  # fmt: skip
        statuses.append(response.status_code)

    threads = [threading.Thread(target=send, args=(u,)) for u in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [201, 409], statuses
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Document)) == 1
        db.session.remove()


# --- comments -----------------------------------------------------------------------------------
def test_comments_are_shown_and_refused_where_they_should_be(app, api):
    doc = api.create()
    response = api.post(f"/documents/{doc['id']}/comments", "li", json={"text": "何时发货？"})
    assert response.status_code == 201 and response.get_json()["user"] == "li"
    history = api.get(f"/documents/{doc['id']}/history", "zhang").get_json()["items"]
    assert history[-1]["action"] == "comment" and history[-1]["comment"] == "何时发货？"
    auditor = api.post(f"/documents/{doc['id']}/comments", "shen", json={"text": "?"})
    assert auditor.status_code == 403
    hidden = api.post(f"/documents/{doc['id']}/comments", "xu", json={"text": "?"})
    assert hidden.status_code == 404  # sales reps have no part in shipments (finance now has)
    empty = api.post(f"/documents/{doc['id']}/comments", "li", json={"text": ""})
    assert empty.status_code == 422
    with app.app_context():
        assert db.session.get(Document, doc["id"]).revision == 1  # a comment changes no data
        db.session.remove()
