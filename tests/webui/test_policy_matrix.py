"""Every role × every shipped flow × every action, through the API and through the pages.

The expected answer of each cell comes from `workflow.policy` itself (the one place the rules
live), so the rules and this test cannot drift apart; a few cells are also pinned by hand
(drafts are their creator's, expense claims are private among sales reps, auditors never act).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import DEFINITIONS, PASSWORD
from tests.webui.test_api import Api
from webui.extensions import db
from workflow import policy
from workflow.accounts import create_user
from workflow.definitions.build import load_flow_file
from workflow.models import User
from workflow.process import DocumentProcess
from workflow.roles import ROLES

SPECS = {path.stem: load_flow_file(path) for path in DEFINITIONS}
# One colleague per role who is never the creator (xu2: a second sales rep).
COLLEAGUE = {
    "sales": "xu2",
    "sales_admin": "wang",
    "sales_manager": "liu",
    "warehouse": "li",
    "finance": "zhao",
    "gm": "ma",
    "auditor": "shen",
    "flow_admin": "admin",
    "user_admin": "hr",
}
CREATOR = {"shipment": "zhang", "invoicing": "zhang", "tender_deposit": "zhang", "expense": "xu"}


@pytest.fixture
def api(app, client, api_as) -> Api:
    with app.app_context():
        create_user(db.session, "xu2", PASSWORD, ["sales"])
        create_user(db.session, "hr", PASSWORD, ["user_admin"])
        db.session.remove()
    return Api(client, api_as)


def decide(app, doc_id: int, username: str, action: str) -> tuple[bool, Any]:
    """(may see, verdict) for `username` and `action` ("edit", or a flow action), per policy."""
    with app.app_context():
        user = db.session.query(User).filter_by(username=username).one()
        auditor = db.session.query(User).filter_by(username="shen").one()
        process = DocumentProcess.load(db.session, doc_id, auditor)
        sees = process.may_see(user)
        if action == "edit":
            verdict = policy.can_edit(user, process.document, process.spec)
        else:
            verdict = process.verdict(user, action)
        db.session.remove()
        return sees, verdict


def page_post(client: Any, doc_id: int, action: str, revision: int) -> int:
    page = client.get("/inbox").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    token = token or re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
    assert token, page[:300]
    data = {"csrf_token": token.group(1), "action": action, "revision": str(revision)}
    if action == "edit":
        data.pop("action")
        return client.post(f"/documents/{doc_id}/edit", data=data).status_code
    data["comment"] = "矩阵测试"
    return client.post(f"/documents/{doc_id}/act", data=data).status_code


def check_cell(app, api: Api, pages: dict, doc: dict, role: str, action: str) -> str:
    """One cell: the API and the page give the answer the policy gives. Returns the outcome."""
    user = COLLEAGUE[role]
    doc_id = doc["id"]
    sees, verdict = decide(app, doc_id, user, action)
    got = api.get(f"/documents/{doc_id}", user)
    assert got.status_code == (200 if sees else 404), (role, action)
    assert pages[user].get(f"/documents/{doc_id}").status_code == (200 if sees else 404)
    if not sees:
        return "hidden"
    body = got.get_json()
    if verdict:
        if action == "edit":
            assert body["can_edit"], (role, action)
        else:
            assert action in body["actions"], (role, action)
        return "allowed"
    refusal = verdict.refusal
    assert refusal is not None
    if action == "edit":
        response = api.patch(f"/documents/{doc_id}", user,
                             json={"data": {}, "revision": doc["revision"]})  # fmt: skip
    else:
        response = api.post(
            f"/documents/{doc_id}/actions",
            user,
            json={"action": action, "revision": doc["revision"], "comment": "矩阵测试"},
        )
    assert response.status_code == refusal.status, (role, action, response.get_json())
    assert response.get_json()["error"]["code"] == refusal.code, (role, action)
    page_status = page_post(pages[user], doc_id, action, doc["revision"])
    assert page_status == refusal.status, (role, action, "page")
    return refusal.code


@pytest.mark.parametrize("flow", sorted(SPECS))
def test_every_role_and_action_agrees_with_the_policy(app, api, login_as, flow):
    spec = SPECS[flow]
    pages = {user: login_as(user) for user in COLLEAGUE.values()}
    creator = CREATOR[flow]
    data = spec.example
    if flow == "invoicing":  # an invoice bills shipments that have shipped
        data = {**data, "shipments": [{"shipment": api.shipped(), "amount": data["amount"]}]}
    doc = api.create(creator, flow, data)
    outcomes: dict[tuple[str, str], str] = {}
    draft_actions = [*dict.fromkeys(t.action for t in spec.transitions_from(spec.initial)), "edit"]
    for role in ROLES:
        for action in draft_actions:
            outcomes[role, action] = check_cell(app, api, pages, doc, role, action)
    # the same document in its first review state
    submitted = api.act(doc, creator, "submit")
    assert submitted.status_code == 200, submitted.get_json()
    doc = submitted.get_json()
    if doc["state"] == "payment_check":  # 款到发货: finance confirms, on to the double check
        doc = api.confirm_payment(doc)
    assert doc["review"] is not None
    for role in ROLES:
        for action in ("approve", "reject"):
            outcomes[role, "review:" + action] = check_cell(app, api, pages, doc, role, action)

    # Pinned by hand, so a wrong policy cannot pass by agreeing with itself.
    assert outcomes["auditor", "edit"] != "allowed"
    assert all(outcomes["auditor", a] not in ("allowed", "hidden") for a in draft_actions)
    assert all(outcomes["flow_admin", a] in ("hidden", "role_not_allowed", "action_not_allowed")
               for a in draft_actions)  # fmt: skip
    # user administrators manage people, never documents
    assert all(outcome in ("hidden", "role_not_allowed", "action_not_allowed")
               for (role, _), outcome in outcomes.items() if role == "user_admin")  # fmt: skip
    initial_roles = set(spec.state(spec.initial).editable_by)
    for role in initial_roles:
        if COLLEAGUE[role] != creator and outcomes[role, "edit"] != "hidden":
            assert outcomes[role, "edit"] == "not_owner", (flow, role)
    if flow == "expense":
        assert outcomes["sales", "edit"] == "hidden"  # a colleague's claim stays private
        assert outcomes["sales", "review:approve"] == "hidden"


def test_a_person_who_acted_keeps_seeing_the_document(app, api):
    """li (warehouse) approves a shipment, then becomes a sales rep (who sees no shipments by
    role; finance now does, 款到发货): he still sees what he signed."""
    doc = api.submitted()
    assert api.act(doc, "li", "approve").status_code == 200
    with app.app_context():
        from workflow.accounts import set_roles

        set_roles(db.session, "li", ["sales"])
        db.session.remove()
    api.tokens.pop("li", None)
    assert api.get(f"/documents/{doc['id']}", "li").status_code == 200
    assert api.get(f"/documents/{doc['id']}", "zhou").status_code == 200  # warehouse: by role
    assert api.get(f"/documents/{doc['id']}", "xu").status_code == 404  # a sales rep: neither
