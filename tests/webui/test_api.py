"""The JSON API of CONTRACT.md: every endpoint, every refusal code, the authorization matrix,
the document shape for every shipped flow, and a complete review cycle — on both backends."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import DEFINITIONS, PEOPLE
from workflow.definitions.build import load_flow_file

SPECS = {path.stem: load_flow_file(path) for path in DEFINITIONS}
ZONED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00$")
DOCUMENT_KEYS = {
    "id",
    "flow",
    "flow_version",
    "state",
    "revision",
    "data",
    "created_by",
    "created_at",
    "review",
    "actions",
}
EVENT_KEYS = {
    "on_behalf_of",
    "seq",
    "at",
    "document_id",
    "flow",
    "flow_version",
    "actor",
    "action",
    "outcome",
    "code",
    "from_state",
    "to_state",
    "revision",
    "comment",
    "hash",
}
SHIPMENT = SPECS["shipment"].example


class Api:
    """A tiny client: api.post("/documents", "zhang", json=…) with a cached bearer token each."""

    def __init__(self, client: Any, api_as: Callable[[str], dict[str, str]]) -> None:
        self.client = client
        self.api_as = api_as
        self.tokens: dict[str, dict[str, str]] = {}

    def headers(self, user: str | None) -> dict[str, str]:
        if user is None:
            return {}
        if user not in self.tokens:
            self.tokens[user] = self.api_as(user)
        return self.tokens[user]

    def call(self, method: str, path: str, user: str | None, **kwargs: Any) -> Any:
        headers = {**self.headers(user), **kwargs.pop("headers", {})}
        return self.client.open("/api/v1" + path, method=method, headers=headers, **kwargs)

    def get(self, path: str, user: str | None, **kw: Any) -> Any:
        return self.call("GET", path, user, **kw)

    def post(self, path: str, user: str | None, **kw: Any) -> Any:
        return self.call("POST", path, user, **kw)

    def patch(self, path: str, user: str | None, **kw: Any) -> Any:
        return self.call("PATCH", path, user, **kw)

    def put(self, path: str, user: str | None, **kw: Any) -> Any:
        return self.call("PUT", path, user, **kw)

    # --- steps of a review ----------------------------------------------------------------------
    def create(self, user: str = "zhang", flow: str = "shipment", data: Any = None) -> dict:
        response = self.post("/documents", user, json={"flow": flow, "data": data or SHIPMENT})
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def act(
        self,
        doc: dict | int,
        user: str,
        action: str,
        comment: str = "",
        revision: int | None = None,
        checks: dict[str, bool] | None = None,
    ) -> Any:
        """Take `action`; an approval confirms every point of the state's checklist unless
        `checks` says otherwise (a reviewer who checked everything)."""
        doc_id = doc if isinstance(doc, int) else doc["id"]
        # The document as the caller last saw it, if that was in a review; else read it now.
        current = doc if isinstance(doc, dict) and doc.get("review") else None
        if revision is None or current is None:
            current = self.get(f"/documents/{doc_id}", "shen").get_json()
        if revision is None:
            revision = current["revision"]
        body = {"action": action, "revision": revision, "comment": comment}
        checklist = (current.get("review") or {}).get("checklist") or []
        if checks is None and action == "approve" and checklist:
            checks = {item["id"]: True for item in checklist}
        if checks is not None:
            body["checks"] = checks
        return self.post(f"/documents/{doc_id}/actions", user, json=body)

    def shipped(self) -> int:
        """The example shipment walked to `shipped` (what invoices and returns refer to)."""
        doc = self.submitted()
        for reviewer in ("chen", "zhou"):
            assert self.act(doc, reviewer, "approve").status_code == 200
        doc = self.get(f"/documents/{doc['id']}", "zhou").get_json()
        tracking = {"data": {"tracking_no": "SF1"}, "revision": doc["revision"]}
        response = self.patch(f"/documents/{doc['id']}", "zhou", json=tracking)
        assert response.status_code == 200, response.get_json()
        response = self.act(doc, "zhou", "ship")
        assert response.get_json()["state"] == "shipped", response.get_json()
        return doc["id"]

    def submitted(self, user: str = "zhang", payer: str = "zhao") -> dict:
        """A shipment in its double check: submitted, and (款到发货) its payment confirmed by
        finance with a reference."""
        doc = self.create(user)
        response = self.act(doc, user, "submit")
        assert response.status_code == 200, response.get_json()
        doc = response.get_json()
        if doc["state"] != "payment_check":
            return doc
        return self.confirm_payment(doc, payer)

    def confirm_payment(self, doc: dict, payer: str = "zhao") -> dict:
        """Finance confirms a submitted shipment paid, with the reference (款到发货)."""
        revision = self.get(f"/documents/{doc['id']}", payer).get_json()["revision"]
        paid = {"paid": True, "held_orders": 0, "payment_ref": "HD-2026-1128"}
        response = self.patch(
            f"/documents/{doc['id']}", payer, json={"data": paid, "revision": revision}
        )
        assert response.status_code == 200, response.get_json()
        response = self.act(doc, payer, "confirm_payment")
        assert response.status_code == 200, response.get_json()
        return response.get_json()


@pytest.fixture
def api(client, api_as) -> Api:
    return Api(client, api_as)


def error_code(response: Any) -> str:
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return body["error"]["code"]


def check_document(doc: dict, spec_name: str) -> None:
    spec = SPECS[spec_name]
    assert set(doc) >= DOCUMENT_KEYS
    assert doc["flow"] == spec_name and isinstance(doc["flow_version"], int)
    assert isinstance(doc["revision"], int) and doc["revision"] >= 1
    assert ZONED.match(doc["created_at"])
    assert doc["created_by"] in PEOPLE
    state = spec.state(doc["state"])
    if state.review:
        review = doc["review"]
        assert review["required"] == state.review.required
        assert review["roles"] == list(state.review.roles)
        for approval in review["approvals"]:
            assert set(approval) == {"user", "at", "comment"} and ZONED.match(approval["at"])
        assert set(doc["actions"]) <= {"approve", "reject"}
    else:
        assert doc["review"] is None
    for field in spec.fields:  # money is decimal text, never a float
        if field.type == "decimal" and field.name in doc["data"]:
            assert isinstance(doc["data"][field.name], str)


# --- authentication and headers ------------------------------------------------------------------
ENDPOINTS = [
    ("GET", "/flows"),
    ("GET", "/flows/shipment"),
    ("PUT", "/flows/shipment"),
    ("POST", "/documents"),
    ("GET", "/documents/1"),
    ("PATCH", "/documents/1"),
    ("POST", "/documents/1/actions"),
    ("GET", "/documents/1/history"),
    ("GET", "/tasks"),
    ("GET", "/audit"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_no_credentials_is_401_json_never_a_redirect(api, method, path):
    response = api.call(method, path, None, json={})
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_token_is_401(api):
    response = api.get("/tasks", None, headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401 and error_code(response) == "unauthorized"


def test_revoked_token_is_401(app, api):
    assert api.get("/tasks", "li").status_code == 200
    result = app.test_cli_runner().invoke(args=["users", "token", "li", "--revoke"])
    assert result.exit_code == 0, result.output
    response = api.get("/tasks", "li")
    assert response.status_code == 401 and error_code(response) == "unauthorized"


def test_token_from_the_cli_works(app, api):
    result = app.test_cli_runner().invoke(args=["users", "token", "wang"])
    token = result.output.strip().splitlines()[-1]
    response = api.get("/tasks", None, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_security_headers_on_authenticated_responses(api):
    response = api.get("/flows", "zhang")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_browser_session_reads_and_needs_csrf_to_write(app, login_as):
    browser = login_as("zhang")
    assert browser.get("/api/v1/tasks").status_code == 200
    body = {"flow": "shipment", "data": SHIPMENT}
    refused = browser.post("/api/v1/documents", json=body)
    assert refused.status_code == 400 and error_code(refused) == "csrf_failed"
    page = browser.get("/").get_data(as_text=True)
    token = re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', page)
    assert token, "no CSRF token on the signed-in page"
    created = browser.post("/api/v1/documents", json=body, headers={"X-CSRFToken": token.group(1)})
    assert created.status_code == 201
    assert created.headers["Cache-Control"] == "no-store"


def test_unknown_api_path_is_json_404(api):
    response = api.get("/nothing-here", "zhang")
    assert response.status_code == 404 and error_code(response) == "not_found"


# --- flows ---------------------------------------------------------------------------------------
def test_list_flows(api):
    body = api.get("/flows", "xu").get_json()
    assert body["next"] is None
    assert [f["name"] for f in body["items"]] == sorted(SPECS)
    shipment = next(f for f in body["items"] if f["name"] == "shipment")
    assert shipment["version"] == 1 and shipment["title"] == "发货"
    assert shipment["titles"] == {"zh": "发货", "en": "Shipment"}


def test_get_flow(api):
    body = api.get("/flows/shipment", "li", headers={"Accept-Language": "en"}).get_json()
    assert body["name"] == "shipment" and body["version"] == 1
    assert body["yaml"] == (
        DEFINITIONS[[p.stem for p in DEFINITIONS].index("shipment")].read_text(encoding="utf-8")
    )
    states = {s["name"]: s for s in body["states"]}
    assert states["double_check"]["review"] == {
        "required": 2,
        "roles": ["sales_admin", "warehouse"],
    }
    assert states["draft"]["review"] is None and states["draft"]["editable_by"] == ["sales_admin"]
    assert states["delivered"]["final"] is True
    fields = {f["name"]: f for f in body["fields"]}
    assert fields["carrier"]["choices"] == ["自提", "物流", "快递"]
    assert fields["amount"]["type"] == "decimal" and fields["amount"]["required"] is True
    assert [c["name"] for c in fields["items"]["columns"]] == [
        "product",
        "spec",
        "unit",
        "qty",
        "unit_price",
        "batch_no",
        "expiry",
        "registration_no",
        "sample",
    ]


def test_get_unknown_flow_is_404(api):
    response = api.get("/flows/nosuchflow", "zhang")
    assert response.status_code == 404 and error_code(response) == "not_found"


def shipment_yaml() -> str:
    return next(p for p in DEFINITIONS if p.stem == "shipment").read_text(encoding="utf-8")


def put_yaml(
    api: Api, user: str, text: str, name: str = "shipment", content_type: str = "application/yaml"
) -> Any:
    return api.put(
        f"/flows/{name}", user, data=text.encode(), headers={"Content-Type": content_type}
    )


def test_publish_flow_needs_flow_admin(api):
    for user in ("zhang", "shen", "ma"):
        response = put_yaml(api, user, shipment_yaml() + "\n# changed\n")
        assert response.status_code == 403 and error_code(response) == "forbidden"
    assert api.get("/flows/shipment", "zhang").get_json()["version"] == 1


def test_publish_unchanged_text_makes_no_version(api):
    response = put_yaml(api, "admin", shipment_yaml())
    assert response.status_code == 200 and response.get_json() == {"version": 1}


@pytest.mark.parametrize("content_type", ["application/yaml", "text/yaml", "text/plain"])
def test_publish_new_version(api, content_type):
    text = shipment_yaml().replace(
        "title: {zh: 发货, en: Shipment}", "title: {zh: 发货单, en: Shipment}"
    )
    response = put_yaml(api, "admin", text, content_type=content_type)
    assert response.status_code == 201 and response.get_json() == {"version": 2}
    assert api.get("/flows/shipment", "zhang").get_json()["title"] == "发货单"
    doc = api.create()
    assert doc["flow_version"] == 2


def test_publish_invalid_definition_is_422_with_lines(api):
    text = shipment_yaml().replace("on_approve: ready_to_ship", "on_approve: ready_to_shp")
    response = put_yaml(api, "admin", text)
    assert response.status_code == 422
    assert error_code(response) == "invalid_definition"
    details = response.get_json()["error"]["details"]
    assert details and all(set(d) == {"line", "message"} for d in details)
    assert any("ready_to_shp" in d["message"] and isinstance(d["line"], int) for d in details)
    assert api.get("/flows/shipment", "zhang").get_json()["version"] == 1


def test_publish_name_must_match_the_url(api):
    response = put_yaml(api, "admin", shipment_yaml(), name="invoicing")
    assert response.status_code == 422 and error_code(response) == "invalid_definition"


def test_publish_wrong_content_type_is_415(api):
    response = put_yaml(api, "admin", shipment_yaml(), content_type="application/json")
    assert response.status_code == 415 and error_code(response) == "unsupported_media_type"


# --- documents -----------------------------------------------------------------------------------
def creator_for(flow: str) -> str:
    editable = SPECS[flow].state(SPECS[flow].initial).editable_by
    return next(
        name for name, roles in PEOPLE.items() if set(roles) & set(editable) and name != "duo"
    )


@pytest.mark.parametrize("flow", sorted(SPECS))
def test_document_shape_for_every_flow(api, flow):
    user = creator_for(flow)
    data = SPECS[flow].example
    if flow == "invoicing":  # an invoice bills shipments that have shipped
        data = {**data, "shipments": [{"shipment": api.shipped(), "amount": data["amount"]}]}
    doc = api.create(user, flow, data)
    check_document(doc, flow)
    assert doc["created_by"] == user and doc["revision"] == 1
    assert doc["state"] == SPECS[flow].initial and doc["can_edit"] is True
    assert api.get(f"/documents/{doc['id']}", user).get_json() == doc
    moved = api.act(doc, user, doc["actions"][0])
    assert moved.status_code == 200, moved.get_json()
    check_document(moved.get_json(), flow)
    history = api.get(f"/documents/{doc['id']}/history", "shen").get_json()
    assert [e["action"] for e in history["items"]] == ["create", doc["actions"][0]]


@pytest.mark.parametrize("language", ["en", "zh-CN", "zh-TW"])
def test_state_and_checklist_labels_are_in_the_callers_language(api, language):
    doc = api.submitted()
    spec = SPECS["shipment"]
    state = spec.state(doc["state"])
    assert state.review is not None and state.review.checklist  # the double check has points
    wanted = {"en": "en", "zh-CN": "zh", "zh-TW": "zh_Hant"}[language]
    headers = {"Accept-Language": language}
    for body in (
        api.get(f"/documents/{doc['id']}", "chen", headers=headers).get_json(),
        next(d for d in api.get("/tasks", "chen", headers=headers).get_json()["items"]
             if d["id"] == doc["id"]),
    ):  # fmt: skip
        assert body["state_label"] == state.label.get(wanted)
        assert body["review"]["checklist"] == [
            {"id": item.id, "label": item.label.get(wanted)} for item in state.review.checklist
        ]
    assert state.label.get("en") != state.label.get("zh")


def test_complete_review_cycle(api):
    doc = api.create("zhang")
    assert doc["state"] == "draft" and "submit" in doc["actions"]
    assert doc["data"]["amount"] == "12800.00"
    doc = api.act(doc, "zhang", "submit").get_json()
    assert doc["state"] == "payment_check" and doc["actions"] == []
    # 款到发货: finance, not the drafter, confirms the payment and its reference.
    paid = {"paid": True, "payment_ref": "HD-2026-1128"}
    edited = api.patch(f"/documents/{doc['id']}", "zhao",
                       json={"data": paid, "revision": doc["revision"]})  # fmt: skip
    assert edited.status_code == 200, edited.get_json()
    doc = api.act(doc, "zhao", "confirm_payment").get_json()
    assert doc["state"] == "double_check" and doc["review"]["approvals"] == []
    assert doc["revision"] == 2 and doc["data"]["payment_ref"] == "HD-2026-1128"
    assert api.get(f"/documents/{doc['id']}", "zhang").get_json()["actions"] == []
    wang = api.act(doc, "wang", "approve", "核对无误")
    assert wang.status_code == 200
    body = wang.get_json()
    assert body["state"] == "double_check"
    assert [(a["user"], a["comment"]) for a in body["review"]["approvals"]] == [
        ("wang", "核对无误")
    ]
    li = api.act(doc, "li", "approve", "数量规格一致").get_json()
    assert li["state"] == "ready_to_ship" and li["review"] is None
    history = api.get(f"/documents/{doc['id']}/history", "zhang").get_json()
    assert history["next"] is None
    events = history["items"]
    assert all(set(e) == EVENT_KEYS for e in events)
    assert [(e["actor"], e["action"], e["from_state"], e["to_state"]) for e in events] == [
        ("zhang", "create", "draft", "draft"),
        ("zhang", "submit", "draft", "payment_check"),
        ("zhao", "edit", "payment_check", "payment_check"),
        ("zhao", "confirm_payment", "payment_check", "double_check"),
        ("wang", "approve", "double_check", "double_check"),
        ("li", "approve", "double_check", "ready_to_ship"),
    ]
    assert events[4]["comment"] == "核对无误" and events[4]["outcome"] == "ok"
    assert all(ZONED.match(e["at"]) and e["document_id"] == doc["id"] for e in events)
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)


def test_create_with_field_errors_is_422(api):
    response = api.post(
        "/documents", "zhang", json={"flow": "shipment", "data": {**SHIPMENT, "amount": "1.005"}}
    )
    assert response.status_code == 422 and error_code(response) == "invalid_data"
    assert "amount" in response.get_json()["error"]["details"]


def test_create_in_unknown_flow_is_404(api):
    response = api.post("/documents", "zhang", json={"flow": "nosuchflow", "data": {}})
    assert response.status_code == 404


def test_create_needs_the_initial_states_role(api):
    for user in ("li", "shen", "admin"):
        response = api.post("/documents", user, json={"flow": "shipment", "data": SHIPMENT})
        assert response.status_code == 403 and error_code(response) == "role_not_allowed"


def test_money_sent_as_json_number_is_kept_exact(api):
    raw = json.dumps({"flow": "shipment", "data": SHIPMENT}).replace('"12800.00"', "12800.00")
    response = api.post(
        "/documents", "zhang", data=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201 and response.get_json()["data"]["amount"] == "12800.00"


@pytest.mark.parametrize(
    "extra",
    [{"state": "approved"}, {"approved_by": ["li", "zhou"]}, {"created_by": "li"}, {"revision": 7}],
)
def test_create_refuses_fields_that_are_not_input(api, extra):
    response = api.post("/documents", "zhang", json={"flow": "shipment", "data": SHIPMENT, **extra})
    assert response.status_code == 422 and error_code(response) == "invalid_request"
    assert next(iter(extra)) in response.get_json()["error"]["details"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ('{"flow": "shipment", "data": ', 400, "bad_request"),
        ("[" * 100_000, 400, "bad_request"),
        ('{"flow": "shipment", "data": {"amount": NaN}}', 400, "bad_request"),
        ("[1, 2]", 422, "invalid_request"),
        ('"text"', 422, "invalid_request"),
        ("null", 422, "invalid_request"),
        ('{"flow": "shipment"}', 422, "invalid_request"),
        ('{"flow": "shipment", "data": [1]}', 422, "invalid_request"),
    ],
)
def test_bad_bodies(api, body, status, code):
    response = api.post(
        "/documents", "zhang", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert error_code(response) == code
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "sqlalchemy" not in text.lower()


def test_wrong_content_type_is_415(api):
    response = api.post(
        "/documents",
        "zhang",
        data="flow=shipment",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415 and error_code(response) == "unsupported_media_type"


def test_too_large_body_is_413(app, api):
    assert app.config["MAX_CONTENT_LENGTH"]
    body = json.dumps(
        {"flow": "shipment", "data": {"samples": "x" * app.config["MAX_CONTENT_LENGTH"]}}
    )
    response = api.post(
        "/documents", "zhang", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413 and error_code(response) == "too_large"


@pytest.mark.parametrize(
    "data",
    [
        {f"k{i}": "v" for i in range(101)},
        {**SHIPMENT, "items": [SHIPMENT["items"][0]] * 201},
        {**SHIPMENT, "items": [{"product": [[["deep"]]]}]},
    ],
    ids=["too-many-keys", "too-many-rows", "too-deep"],
)
def test_list_lengths_are_capped_before_loading(api, data):
    response = api.post("/documents", "zhang", json={"flow": "shipment", "data": data})
    assert response.status_code == 422 and error_code(response) == "invalid_request"


def test_unknown_document_is_404(api):
    for path in ("/documents/999", "/documents/999/history"):
        response = api.get(path, "shen")
        assert response.status_code == 404 and error_code(response) == "not_found"
    assert api.get("/documents/99999999999999999999", "shen").status_code == 404


def test_invisible_document_is_404_like_a_missing_one(api):
    doc = api.submitted(payer="qian")
    # Finance confirms shipments' payments (款到发货), so it sees them; these do not.
    assert api.get(f"/documents/{doc['id']}", "zhao").status_code == 200
    for user in ("xu", "admin"):
        for path in (f"/documents/{doc['id']}", f"/documents/{doc['id']}/history"):
            response = api.get(path, user)
            assert response.status_code == 404 and error_code(response) == "not_found"
        response = api.act(doc, user, "approve")
        assert response.status_code == 404 and error_code(response) == "not_found"


# --- editing -------------------------------------------------------------------------------------
def test_edit_in_draft_makes_a_new_revision(api):
    doc = api.create()
    response = api.patch(
        f"/documents/{doc['id']}", "zhang", json={"data": {"samples": "无"}, "revision": 1}
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["revision"] == 2 and body["data"]["samples"] == "无"


def test_edit_with_a_stale_revision_is_409(api):
    doc = api.create()
    api.patch(f"/documents/{doc['id']}", "zhang", json={"data": {"samples": "无"}, "revision": 1})
    response = api.patch(  # the owner again, from a page opened before the first edit
        f"/documents/{doc['id']}", "zhang", json={"data": {"samples": "有"}, "revision": 1}
    )
    assert response.status_code == 409 and error_code(response) == "stale_revision"


def test_edit_in_review_is_refused(api):
    doc = api.submitted()
    response = api.patch(
        f"/documents/{doc['id']}",
        "wang",
        json={"data": {"samples": "无"}, "revision": doc["revision"]},
    )
    assert response.status_code == 403 and error_code(response) == "action_not_allowed"


@pytest.mark.parametrize(
    "body",
    [
        {"data": {"samples": "x"}},
        {"revision": 1},
        {"data": {}, "revision": "1"},
        {"data": {}, "revision": True},
        {"data": {}, "revision": 1, "state": "approved"},
    ],
)
def test_edit_bad_bodies_are_422(api, body):
    doc = api.create()
    response = api.patch(f"/documents/{doc['id']}", "zhang", json=body)
    assert response.status_code == 422 and error_code(response) == "invalid_request"
    assert api.get(f"/documents/{doc['id']}", "zhang").get_json()["state"] == "draft"


# --- actions: every refusal code ---------------------------------------------------------------
def test_self_review_is_403(api):
    doc = api.submitted("zhang")
    response = api.act(doc, "zhang", "approve")
    assert response.status_code == 403 and error_code(response) == "self_review"


def test_editor_may_not_approve(api):
    # A colleague cannot edit a draft at all (it is its creator's); an editor who is not the
    # creator is covered with shared drafts in tests/workflow/test_review.py.
    doc = api.create("zhang")
    response = api.patch(
        f"/documents/{doc['id']}", "wang", json={"data": {"samples": "无"}, "revision": 1}
    )
    assert response.status_code == 403 and error_code(response) == "not_owner"
    api.patch(f"/documents/{doc['id']}", "zhang", json={"data": {"samples": "无"}, "revision": 1})
    api.act(doc, "zhang", "submit")
    api.confirm_payment(doc)
    response = api.act(doc, "zhang", "approve")
    assert response.status_code == 403 and error_code(response) == "self_review"


def test_already_reviewed_is_403_and_counts_once(api):
    doc = api.submitted()
    assert api.act(doc, "wang", "approve").status_code == 200
    again = api.act(doc, "wang", "approve")
    assert again.status_code == 403 and error_code(again) == "already_reviewed"
    body = api.get(f"/documents/{doc['id']}", "wang").get_json()  # blind: wang has decided
    assert body["state"] == "double_check" and len(body["review"]["approvals"]) == 1


def test_role_not_allowed_is_403(api):
    doc = api.submitted()
    for user in ("liu", "ma", "shen"):
        response = api.act(doc, user, "approve")
        assert response.status_code == 403 and error_code(response) == "role_not_allowed"


def test_action_not_allowed_is_403(api):
    doc = api.submitted()
    for action in ("ship", "submit", "nosuchaction"):
        response = api.act(doc, "li", action)
        assert response.status_code == 403 and error_code(response) == "action_not_allowed"


def test_stale_revision_is_409(api):
    doc = api.submitted()
    response = api.act(doc, "wang", "approve", revision=doc["revision"] + 5)
    assert response.status_code == 409 and error_code(response) == "stale_revision"
    assert response.get_json()["error"]["details"] == {"current_revision": doc["revision"]}


def test_conflict_is_409(api, monkeypatch):
    from workflow import services
    from workflow.errors import Conflict

    doc = api.submitted()

    def busy(*args: Any, **kwargs: Any) -> Any:
        raise Conflict("someone changed this document at the same time; reload and retry")

    monkeypatch.setattr(services, "act", busy)
    response = api.act(doc, "wang", "approve")
    assert response.status_code == 409 and error_code(response) == "conflict"


def test_failed_check_is_422_check_failed(api):
    doc = api.create(data={**SHIPMENT, "amount": "99.00"})
    response = api.act(doc, "zhang", "submit")
    assert response.status_code == 422 and error_code(response) == "check_failed"


def test_reject_needs_a_reason_and_sends_back(api):
    doc = api.submitted()
    missing = api.act(doc, "li", "reject")
    assert missing.status_code == 422
    rejected = api.act(doc, "li", "reject", "规格不符")
    assert rejected.status_code == 200 and rejected.get_json()["state"] == "draft"


@pytest.mark.parametrize(
    "body",
    [
        {"action": "approve"},
        {"revision": 1},
        {"action": "approve", "revision": "1"},
        {"action": "approve", "revision": 1.5},
        {"action": "approve", "revision": 1, "approved_by": ["li"]},
        {"action": "approve", "revision": 1, "state": "ready_to_ship"},
        {"action": "approve", "revision": 1, "comment": "x" * 2001},
        {"action": "approve\x00", "revision": 1},
        {"action": "a" * 41, "revision": 1},
        [],
    ],
)
def test_action_bad_bodies_are_422_and_change_nothing(api, body):
    doc = api.submitted()
    response = api.post(f"/documents/{doc['id']}/actions", "li", json=body)
    assert response.status_code == 422 and error_code(response) == "invalid_request"
    after = api.get(f"/documents/{doc['id']}", "li").get_json()
    assert after["state"] == "double_check" and after["review"]["approvals"] == []


def test_refusals_are_audited(api):
    doc = api.submitted()
    api.act(doc, "zhang", "approve")
    events = api.get(f"/documents/{doc['id']}/history", "shen").get_json()["items"]
    assert (events[-1]["outcome"], events[-1]["code"]) == ("refused", "self_review")


def test_unexpected_errors_hide_the_details(api, monkeypatch):
    from workflow import services

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("SELECT secret FROM pg_catalog")

    monkeypatch.setattr(services, "get_document", broken)
    response = api.get("/documents/1", "zhang")
    assert response.status_code == 500 and error_code(response) == "internal_error"
    assert "SELECT" not in response.get_data(as_text=True)


# --- inbox ---------------------------------------------------------------------------------------
def test_tasks_lists_what_the_caller_may_do_now_oldest_first(api):
    first, second, third = api.submitted(), api.submitted(), api.submitted("wang")
    assert api.get("/tasks", "zhang").get_json()["items"] == [
        api.get(f"/documents/{third['id']}", "zhang").get_json()
    ]
    ids = [d["id"] for d in api.get("/tasks", "li").get_json()["items"]]
    assert ids == [first["id"], second["id"], third["id"]]
    assert api.get("/tasks", "shen").get_json() == {"items": [], "next": None}


def test_tasks_paginate_with_a_cursor(api):
    docs = [api.submitted() for _ in range(3)]
    seen, cursor = [], None
    for _ in range(5):
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = api.get("/tasks", "li", query_string=query).get_json()
        seen += [d["id"] for d in body["items"]]
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == [d["id"] for d in docs]


@pytest.mark.parametrize(
    "query",
    [
        {"limit": 0},
        {"limit": 201},
        {"limit": "x"},
        {"cursor": "not-a-cursor"},
        {"cursor": "WyJ4IiwgMV0"},
        {"cursor": "WzEsMl0"},
        {"page": 2},
    ],
)
def test_tasks_bad_limit_or_cursor_is_422(api, query):
    response = api.get("/tasks", "li", query_string=query)
    assert response.status_code == 422
    assert error_code(response) in ("invalid_request", "invalid_data")


# --- audit ---------------------------------------------------------------------------------------
def test_audit_is_for_auditors_only(api):
    for user in ("zhang", "admin", "ma"):
        response = api.get("/audit", user)
        assert response.status_code == 403 and error_code(response) == "forbidden"


def test_audit_filters_and_pages(api):
    doc = api.submitted()
    api.act(doc, "wang", "approve", "=1+1")
    body = api.get("/audit", "shen", query_string={"flow": "shipment"}).get_json()
    audit_keys = EVENT_KEYS | {"actor_name", "data_hash", "key_id", "customer", "amount"}
    assert all(set(e) == audit_keys for e in body["items"])
    assert [e["action"] for e in body["items"]] == [
        "publish",
        "create",
        "submit",
        "edit",
        "confirm_payment",
        "approve",
    ]
    by_actor = api.get("/audit", "shen", query_string={"actor": "wang"}).get_json()["items"]
    assert [e["action"] for e in by_actor] == ["token_issue", "approve"]
    by_action = api.get("/audit", "shen", query_string={"action": "submit"}).get_json()["items"]
    assert [e["actor"] for e in by_action] == ["zhang"]
    page = api.get("/audit", "shen", query_string={"flow": "shipment", "limit": 2}).get_json()
    assert len(page["items"]) == 2 and page["next"]
    rest = api.get("/audit", "shen", query_string={"flow": "shipment", "cursor": page["next"]})
    assert [e["action"] for e in rest.get_json()["items"]] == [
        "submit",
        "edit",
        "confirm_payment",
        "approve",
    ]
    future = api.get("/audit", "shen", query_string={"since": "2999-01-01"}).get_json()
    assert future["items"] == []
    today = body["items"][0]["at"][:10]
    same_day = api.get(
        "/audit", "shen", query_string={"flow": "shipment", "since": today, "until": today}
    ).get_json()
    assert len(same_day["items"]) == 6
    before = api.get(
        "/audit", "shen", query_string={"flow": "shipment", "until": body["items"][0]["at"]}
    ).get_json()
    assert before["items"] == []


@pytest.mark.parametrize(
    "query",
    [
        {"since": "yesterday"},
        {"until": "2026-13-01"},
        {"since": "2026-11-24T25:00"},
        {"format": "xml"},
        {"limit": "-1"},
        {"cursor": "WyJ4Il0"},
        {"nosuch": "1"},
    ],
)
def test_audit_bad_filters_are_422(api, query):
    response = api.get("/audit", "shen", query_string=query)
    assert response.status_code == 422


def test_audit_csv_has_a_bom_and_escapes_formulas(api):
    doc = api.submitted()
    api.act(doc, "wang", "approve", '=HYPERLINK("http://x")')
    api.act(doc, "li", "reject", "+1 @sum -2")
    response = api.get("/audit", "shen", query_string={"format": "csv", "flow": "shipment"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    raw = response.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][:3] == ["序号", "时间", "流程"]  # headers in the caller's language
    comments = [row[rows[0].index("意见")] for row in rows[1:]]
    assert '\'=HYPERLINK("http://x")' in comments and "'+1 @sum -2" in comments
    assert all(not c.startswith(("=", "+", "-", "@")) for row in rows[1:] for c in row)


# --- the authorization matrix --------------------------------------------------------------------
ROLE_USERS = {
    "sales_admin": "zhang",
    "warehouse": "li",
    "sales": "xu",
    "sales_manager": "liu",
    "finance": "zhao",
    "gm": "ma",
    "auditor": "shen",
    "flow_admin": "admin",
}
# endpoint → expected status per role, in ROLE_USERS order. The documents are zhang's shipment:
# `draft` for PATCH, `double_check` for the others (its payment confirmed by qian, so zhao is a
# finance colleague who did not act on it; finance sees shipments: it confirms their payments).
MATRIX = {
    "list_flows": (200, 200, 200, 200, 200, 200, 200, 200),
    "get_flow": (200, 200, 200, 200, 200, 200, 200, 200),
    "put_flow": (403, 403, 403, 403, 403, 403, 403, 200),
    "create_document": (201, 403, 403, 403, 403, 403, 403, 403),
    "get_document": (200, 200, 404, 200, 200, 200, 200, 404),
    "edit_document": (200, 403, 404, 403, 403, 403, 403, 404),
    "approve": (403, 200, 404, 403, 403, 403, 403, 404),
    "history": (200, 200, 404, 200, 200, 200, 200, 404),
    "tasks": (200, 200, 200, 200, 200, 200, 200, 200),
    "audit": (403, 403, 403, 403, 403, 403, 200, 403),
    "users": (403, 403, 403, 403, 403, 403, 403, 403),  # user administrators only
}


def _request(api: Api, endpoint: str, user: str) -> Any:
    if endpoint == "list_flows":
        return api.get("/flows", user)
    if endpoint == "get_flow":
        return api.get("/flows/shipment", user)
    if endpoint == "put_flow":
        return put_yaml(api, user, shipment_yaml())
    if endpoint == "create_document":
        return api.post("/documents", user, json={"flow": "shipment", "data": SHIPMENT})
    if endpoint == "users":
        return api.get("/users", user)
    if endpoint == "edit_document":
        doc = api.create("zhang")
        return api.patch(
            f"/documents/{doc['id']}", user, json={"data": {"samples": "无"}, "revision": 1}
        )
    doc = api.submitted("zhang", payer="qian")
    if endpoint == "get_document":
        return api.get(f"/documents/{doc['id']}", user)
    if endpoint == "approve":
        return api.act(doc, user, "approve")
    if endpoint == "history":
        return api.get(f"/documents/{doc['id']}/history", user)
    if endpoint == "tasks":
        return api.get("/tasks", user)
    return api.get("/audit", user)


@pytest.mark.parametrize(
    ("endpoint", "role", "status"),
    [
        (endpoint, role, statuses[i])
        for endpoint, statuses in MATRIX.items()
        for i, role in enumerate(ROLE_USERS)
    ],
)
def test_authorization_matrix(api, endpoint, role, status):
    response = _request(api, endpoint, ROLE_USERS[role])
    assert response.status_code == status, response.get_json()
    if status >= 400:
        assert error_code(response)


# --- the OpenAPI document and its page -----------------------------------------------------------
def test_openapi_document_covers_every_endpoint(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    operations = {(m.upper(), p) for p, item in spec["paths"].items() for m in item}
    assert operations == {
        ("GET", "/flows"),
        ("GET", "/flows/{name}"),
        ("PUT", "/flows/{name}"),
        ("POST", "/flows/{name}/check"),
        ("GET", "/flows/{name}/versions"),
        ("GET", "/flows/{name}/changes"),
        ("POST", "/flows/{name}/changes/{change_id}/approve"),
        ("POST", "/documents"),
        ("GET", "/documents"),
        ("GET", "/documents/{doc_id}"),
        ("PATCH", "/documents/{doc_id}"),
        ("POST", "/documents/{doc_id}/actions"),
        ("GET", "/documents/{doc_id}/history"),
        ("POST", "/documents/{doc_id}/comments"),
        ("POST", "/documents/{doc_id}/attachments"),
        ("GET", "/documents/{doc_id}/attachments/{attachment_id}"),
        ("POST", "/documents/{doc_id}/claim"),
        ("DELETE", "/documents/{doc_id}/claim"),
        ("GET", "/notifications"),
        ("GET", "/notifications/settings"),
        ("PATCH", "/notifications/settings"),
        ("POST", "/delegations"),
        ("GET", "/delegations"),
        ("DELETE", "/delegations/{delegation_id}"),
        ("GET", "/overdue"),
        ("GET", "/tasks"),
        ("POST", "/tasks/bulk"),
        ("GET", "/audit"),
        ("GET", "/audit/verify"),
        ("GET", "/audit/sod"),
        ("GET", "/reports/summary"),
        ("GET", "/reports/contracts"),
        ("GET", "/users"),
        ("POST", "/users"),
        ("PATCH", "/users/{username}"),
    }
    schemas = spec["components"]["schemas"]
    assert set(schemas["Document"]["properties"]) >= DOCUMENT_KEYS
    assert set(schemas["Event"]["properties"]) == EVENT_KEYS
    assert schemas["Action"]["additionalProperties"] is False


def test_openapi_page_is_local(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "/documents/{doc_id}/actions" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page


@pytest.mark.parametrize(
    "amount",
    ['"0.005"', "0.005", '"１２３"', '"-1.00"', '"1e400"', '"Infinity"', '"12,800.00"', "true"],
)
def test_money_is_refused_never_rounded(api, amount):
    """marshmallow's Decimal(places=2) would round 0.005 to 0.00; the engine refuses it."""
    data = json.dumps({**SHIPMENT, "amount": "__AMOUNT__"}).replace('"__AMOUNT__"', amount)
    body = '{"flow": "shipment", "data": ' + data + "}"
    response = api.post(
        "/documents", "zhang", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
    assert "amount" in response.get_json()["error"]["details"]


def test_money_as_a_json_number_is_kept_exactly(api):
    body = json.dumps({"flow": "shipment", "data": {**SHIPMENT, "amount": "__A__"}})
    body = body.replace('"__A__"', "12800.10")
    response = api.post(
        "/documents", "zhang", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.get_data(as_text=True)[:300]
    assert response.get_json()["data"]["amount"] == "12800.10"
