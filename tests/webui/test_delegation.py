"""Delegation: a colleague acts in the roles of someone away, "on behalf of" them; the rules of
review hold for both people, so no delegation ever lets anyone approve their own document,
count twice in a quorum, or approve two levels — each refusal tested here."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.webui.test_api import Api
from webui.extensions import db
from workflow import audit, delegation, services
from workflow.definitions.build import load_flow_file


@pytest.fixture
def api(client, api_as) -> Api:
    return Api(client, api_as)


def day(offset: int = 0) -> str:
    return (delegation.today() + dt.timedelta(days=offset)).isoformat()


def delegate(api: Api, principal: str, to: str, roles: Any = None, start=0, until=3) -> Any:
    body = {"to": to, "from": day(start), "until": day(until)}
    if roles is not None:
        body["roles"] = roles
    return api.post("/delegations", principal, json=body)


def given(api: Api, principal: str, to: str, roles: Any = None, **kw: int) -> dict:
    response = delegate(api, principal, to, roles, **kw)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def refused(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["code"] == code


def verified(api: Api) -> None:
    body = api.get("/audit/verify", "shen").get_json()
    assert body["ok"] is True, body


# The expense flow as it shipped before issue 11: three review levels, roles on several of them.
LEVELS = ROOT / "tests/data/flows/rules/expense.yaml"


def expense(api: Api) -> dict:
    """An expense claim by xu above the GM threshold, in the frozen three-level expense flow
    (receipt check, manager approval, GM approval): rules across review levels."""
    app = api.client.application
    with app.app_context():
        services.publish_files(db.session, [LEVELS])
        db.session.remove()
    data = dict(load_flow_file(LEVELS).example)
    receipts = [dict(r) for r in data["receipts"]]
    receipts[-1]["amount"] = "5000.00"
    data["receipts"] = receipts
    data["amount"] = str(sum(Decimal(r["amount"]) for r in receipts))
    doc = api.create("xu", "expense", data)
    assert api.act(doc, "xu", "submit").status_code == 200
    return doc


def state_of(api: Api, doc: dict) -> str:
    return api.get(f"/documents/{doc['id']}", "shen").get_json()["state"]


# --- acting on behalf ------------------------------------------------------------------------
def test_a_delegate_approves_on_behalf_and_every_record_says_so(app, api):
    doc = api.submitted("zhang")
    refused(api.act(doc, "xu", "approve"), 404, "not_found")  # a sales rep sees no shipments
    given(api, "li", "xu", ["warehouse"])
    assert api.get(f"/documents/{doc['id']}", "xu").get_json()["actions"] == [
        "approve",
        "reject",
    ]
    assert api.act(doc, "xu", "approve", "代库管核对").status_code == 200
    # The double check is blind: the creator sees no decision before it ends; the auditor does.
    events = api.get(f"/documents/{doc['id']}/history", "shen").get_json()["items"]
    approval = [e for e in events if e["action"] == "approve"][-1]
    assert approval["actor"] == "xu" and approval["on_behalf_of"] == "li"
    assert all(e["on_behalf_of"] is None for e in events if e["action"] != "approve")
    # li counts once: the principal cannot add a second approval of his own
    refused(api.act(doc, "li", "approve"), 403, "already_reviewed")
    assert api.act(doc, "wang", "approve").status_code == 200
    assert state_of(api, doc) == "ready_to_ship"
    with app.app_context():  # the review rows (principal, checklist) agree with the chain
        result = audit.verify(db.session)
        db.session.remove()
    assert result.ok, result.report
    verified(api)


def test_the_delegate_is_told_and_managers_see_active_delegations(app, api, login_as):
    made = given(api, "li", "xu", ["warehouse"])
    texts = [n["text"] for n in api.get("/notifications", "xu").get_json()["items"]]
    assert any("li" in t and "warehouse" in t for t in texts)
    assert [d["id"] for d in api.get("/delegations", "li").get_json()["items"]] == [made["id"]]
    assert [d["id"] for d in api.get("/delegations", "xu").get_json()["items"]] == [made["id"]]
    assert api.get("/delegations", "zhang").get_json()["items"] == []
    refused(api.get("/delegations?all=true", "zhang"), 403, "forbidden")
    for manager in ("liu", "ma"):
        items = api.get("/delegations?all=true", manager).get_json()["items"]
        assert [(d["principal"], d["to"], d["active"]) for d in items] == [("li", "xu", True)]
    page = login_as("liu").get("/delegations").get_data(as_text=True)
    assert "全部有效委托" in page and "(xu)" in page and "(li)" in page and "库管" in page
    assert "全部有效委托" not in login_as("xu").get("/delegations").get_data(as_text=True)


def test_only_the_principal_withdraws_and_then_it_no_longer_applies(app, api):
    doc = api.submitted("zhang")
    made = given(api, "li", "xu", ["warehouse"])
    refused(api.call("DELETE", f"/delegations/{made['id']}", "xu"), 403, "forbidden")
    refused(api.call("DELETE", f"/delegations/{made['id']}", "wang"), 404, "not_found")
    assert api.call("DELETE", f"/delegations/{made['id']}", "li").status_code == 200
    refused(api.call("DELETE", f"/delegations/{made['id']}", "li"), 403, "action_not_allowed")
    refused(api.act(doc, "xu", "approve"), 404, "not_found")


# --- every refusal ---------------------------------------------------------------------------
def test_refused_a_delegation_that_has_not_started(app, api):
    doc = api.submitted("zhang")
    given(api, "li", "xu", ["warehouse"], start=1, until=5)
    refused(api.act(doc, "xu", "approve"), 404, "not_found")
    given(api, "wang", "xu", ["sales_admin"], start=1, until=5)
    refused(api.act(doc, "xu", "approve"), 404, "not_found")


def test_refused_a_delegate_approving_the_principals_own_document(app, api):
    doc = api.submitted("zhang")
    given(api, "zhang", "xu", ["sales_admin"])
    refused(api.act(doc, "xu", "approve"), 403, "self_review")


def test_refused_a_delegate_approving_their_own_document(app, api):
    doc = api.submitted("zhang")
    given(api, "li", "zhang", ["warehouse"])  # zhang created it: not as li's delegate either
    refused(api.act(doc, "zhang", "approve"), 403, "self_review")


def test_refused_a_delegate_when_the_principal_already_approved(app, api):
    doc = api.submitted("zhang")
    assert api.act(doc, "li", "approve").status_code == 200
    given(api, "li", "xu", ["warehouse"])
    refused(api.act(doc, "xu", "approve"), 403, "already_reviewed")


def test_refused_a_delegate_who_already_approved_in_their_own_name(app, api):
    doc = api.submitted("zhang")
    assert api.act(doc, "wang", "approve").status_code == 200
    given(api, "li", "wang", ["warehouse"])
    refused(api.act(doc, "wang", "approve"), 403, "already_reviewed")


def test_refused_a_delegate_at_a_later_level_the_principal_approved_before(app, api):
    doc = expense(api)
    for name in ("zhang", "wang"):
        assert api.act(doc, name, "approve").status_code == 200
    for name in ("ma", "liu"):  # liu's approval moves it on (the mover may not review next)
        assert api.act(doc, name, "approve").status_code == 200
    assert state_of(api, doc) == "gm_approval"
    given(api, "ma", "chen", ["gm"])
    refused(api.act(doc, "chen", "approve"), 403, "already_reviewed")


def test_refused_the_principal_at_a_later_level_after_the_delegate_approved_for_them(app, api):
    doc = expense(api)
    for name in ("zhang", "wang"):
        assert api.act(doc, name, "approve").status_code == 200
    given(api, "ma", "chen", ["gm"])
    assert api.act(doc, "chen", "approve").status_code == 200  # for ma
    assert api.act(doc, "liu", "approve").status_code == 200
    assert state_of(api, doc) == "gm_approval"
    refused(api.act(doc, "ma", "approve"), 403, "already_reviewed")  # ma approved, via chen
    refused(api.act(doc, "chen", "approve"), 403, "already_reviewed")  # chen approved, too


def test_refused_a_delegate_at_a_later_level_they_approved_before(app, api):
    doc = expense(api)
    for name in ("zhang", "wang"):
        assert api.act(doc, name, "approve").status_code == 200
    given(api, "liu", "zhang", ["sales_manager"])  # zhang approved the receipt check
    refused(api.act(doc, "zhang", "approve"), 403, "already_reviewed")


@pytest.mark.parametrize(
    ("principal", "body", "status", "code"),
    [
        ("li", {"to": "li"}, 403, "action_not_allowed"),  # to oneself
        ("li", {"to": "xu", "roles": ["finance"]}, 403, "role_not_allowed"),  # not li's
        ("admin", {"to": "xu", "roles": ["flow_admin"]}, 403, "role_not_allowed"),
        ("shen", {"to": "xu"}, 422, "invalid_data"),  # an auditor has nothing to hand over
        ("li", {"to": "shen", "roles": ["warehouse"]}, 403, "action_not_allowed"),
        ("li", {"to": "nobody", "roles": ["warehouse"]}, 422, "invalid_data"),
        ("li", {"to": "xu", "until": -1}, 422, "invalid_data"),  # until before from
        ("li", {"to": "xu", "from": -5, "until": -1}, 422, "invalid_data"),  # over already
        ("li", {"to": "xu", "until": 400}, 422, "invalid_data"),  # too long
        ("li", {"to": "xu", "roles": ["boss"]}, 422, "invalid_request"),  # no such role
    ],
)
def test_refused_delegations(app, api, principal, body, status, code):
    payload = {"from": day(0), "until": day(3), **body}
    for key in ("from", "until"):
        if isinstance(payload[key], int):
            payload[key] = day(payload[key])
    response = api.post("/delegations", principal, json=payload)
    refused(response, status, code)
    assert api.get("/delegations", principal).get_json()["items"] == []


def test_the_delegates_inbox_lists_the_principals_tasks(app, api, login_as):
    doc = api.submitted("zhang")
    assert api.get("/tasks", "xu").get_json()["items"] == []
    given(api, "li", "xu", ["warehouse"])
    assert [d["id"] for d in api.get("/tasks", "xu").get_json()["items"]] == [doc["id"]]
    listed = api.get("/documents?part=waiting", "xu").get_json()["items"]
    assert [d["id"] for d in listed] == [doc["id"]]
    assert f'href="/documents/{doc["id"]}"' in login_as("xu").get("/inbox").get_data(as_text=True)
    # not the principal's own documents: zhang's delegate gets no task from zhang's shipment
    given(api, "zhang", "sun", ["sales_admin"])
    assert api.get("/tasks", "sun").get_json()["items"] == []
