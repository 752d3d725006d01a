"""The edges an outside client meets: authentication by the request, bounded input, safe
retries (Idempotency-Key), and one error language for pages and the API."""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from tests.webui.test_api import SHIPMENT, Api, error_code
from webui.extensions import db
from workflow.errors import InvalidData
from workflow.models import AuditEvent, Document, IdempotencyKey, Review


@pytest.fixture
def api(client, api_as) -> Api:
    return Api(client, api_as)


def count(app, model: Any, *where: Any) -> int:
    with app.app_context():
        number = db.session.scalar(select(func.count()).select_from(model).where(*where))
        db.session.remove()
        return number or 0


# --- authentication by the request, not the jar ---------------------------------------------------
def test_bearer_client_that_keeps_cookies_keeps_working(app, api_as):
    client = app.test_client()  # keeps cookies, as requests.Session and curl -c/-b do
    token = api_as("zhang")
    assert client.get("/api/v1/tasks", headers=token).status_code == 200
    assert client.get("/console", headers=token).status_code == 404  # an HTML page
    assert client.get("/auth/login").status_code == 200  # a page that sets a session cookie
    assert client.get_cookie("session") is not None
    response = client.get("/api/v1/tasks", headers=token)
    assert response.status_code == 200, response.get_data(as_text=True)
    created = client.post(
        "/api/v1/documents", headers=token, json={"flow": "shipment", "data": SHIPMENT}
    )
    assert created.status_code == 201 and created.get_json()["created_by"] == "zhang"


def test_api_responses_set_no_cookie(app, api, login_as):
    for response in (
        api.get("/tasks", "zhang"),
        api.get("/documents/999", "zhang"),
        api.post("/documents", "zhang", json={"flow": "shipment", "data": SHIPMENT}),
        api.get("/tasks", None),
    ):
        assert "Set-Cookie" not in response.headers, response.status_code
    browser = login_as("wang")  # a signed-in browser calling the API with its session
    response = browser.get("/api/v1/tasks")
    assert response.status_code == 200 and "Set-Cookie" not in response.headers


def test_a_bad_token_is_401_whatever_cookie_comes_with_it(app, login_as, api_as):
    browser = login_as("wang")
    assert browser.get("/api/v1/tasks").status_code == 200
    for header in ("Bearer not-a-token", "Bearer ", "Basic d2FuZzp4", "Bearer"):
        response = browser.get("/api/v1/tasks", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert error_code(response) == "unauthorized"


def test_a_token_is_never_upgraded_or_downgraded_by_a_cookie(app, login_as, api_as):
    browser = login_as("wang")  # session of wang (sales_admin)
    li = api_as("li")  # token of li (warehouse)
    response = browser.get("/api/v1/tasks", headers=li)
    assert response.status_code == 200
    created = browser.post(
        "/api/v1/documents", headers=li, json={"flow": "shipment", "data": SHIPMENT}
    )
    # li may not start a shipment; wang could: the token decides, and no CSRF is asked of it
    assert created.status_code == 403 and error_code(created) == "role_not_allowed"


# --- input bounded before any work ----------------------------------------------------------------
def with_raw(key: str, raw: str) -> str:
    """A valid create body whose `data[key]` is the raw JSON text `raw`."""
    body = json.dumps({"flow": "shipment", "data": {**SHIPMENT, key: "__RAW__"}})
    return body.replace('"__RAW__"', raw)


HOSTILE_BODIES = {
    "huge exponent integer": with_raw("held_orders", "1e1000000"),
    "million digits": with_raw("held_orders", "1" + "0" * 100_000),
    "money exponent number": with_raw("amount", "1e100000000"),
    "money exponent text": with_raw("amount", '"1e100000000"'),
    "fraction for an integer": with_raw("held_orders", "2000.0"),
    "exponent for an integer": with_raw("held_orders", "1e3"),
    "too deep": with_raw("items", "[" * 5000 + "]" * 5000),
    "too large": with_raw("customer", '"' + "x" * 1_100_000 + '"'),
}
# Refused by the engine's field rules (422 invalid_data) rather than in the request layer.
FIELD_REFUSALS = ("money exponent text", "fraction for an integer")


def _hostile(name: str) -> str:
    return HOSTILE_BODIES[name]


@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
def test_hostile_numbers_and_sizes_are_refused_before_any_work(app, api, name):
    statements: list[str] = []
    with app.app_context():
        engine = db.engine

    def seen(_conn, _cursor, statement, *_args):
        statements.append(statement)

    headers = {**api.headers("zhang"), "Content-Type": "application/json"}
    event.listen(engine, "before_cursor_execute", seen)
    try:
        response = app.test_client().post("/api/v1/documents", data=_hostile(name),
                                          headers=headers)  # fmt: skip
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert 400 <= response.status_code < 500, (name, response.status_code)
    assert response.is_json and error_code(response)
    if name not in FIELD_REFUSALS:
        # refused in the request layer: no document read or written (only who is asking, and
        # afterwards the refusal's security event)
        assert not [s for s in statements if re.search(r"\bdocuments\b", s)], statements
    assert count(app, Document) == 0


def test_integers_refuse_fractions_and_money_stores_minus_zero_as_zero(api):
    # A line's quantity (an integer the drafter enters; held_orders is finance's now).
    line = SHIPMENT["items"][0]
    for value in ("2000.0", "1e3", "2.5"):
        data = {**SHIPMENT, "items": [{**line, "qty": "__V__"}]}
        body = json.dumps({"flow": "shipment", "data": data})
        response = api.post("/documents", "zhang", data=body.replace('"__V__"', value),
                            headers={"Content-Type": "application/json"})  # fmt: skip
        assert response.status_code == 422, value
    doc = api.create(data={**SHIPMENT, "items": [{**line, "qty": 2001}]})
    assert doc["data"]["items"][0]["qty"] == 2001
    response = api.patch(
        f"/documents/{doc['id']}", "zhang",
        json={"data": {"items": [{**SHIPMENT["items"][0], "unit_price": "-0.00"}]},
              "revision": doc["revision"]},
    )  # fmt: skip
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["data"]["items"][0]["unit_price"] == "0.00"


def test_a_hostile_request_does_not_stall_a_concurrent_approval(app, api):
    doc = api.submitted()
    headers = {**api.headers("zhang"), "Content-Type": "application/json"}
    wang = api.headers("wang")
    results: dict[str, int] = {}
    start = threading.Barrier(2)

    def hostile() -> None:
        start.wait()
        for name in ("huge exponent integer", "million digits", "money exponent number"):
            response = app.test_client().post("/api/v1/documents", data=_hostile(name),
                                              headers=headers)  # fmt: skip
            results[name] = response.status_code

    def approve() -> None:
        start.wait()
        response = app.test_client().post(
            f"/api/v1/documents/{doc['id']}/actions",
            headers=wang,
            json={
                "action": "approve",
                "revision": doc["revision"],
                "comment": "",
                "checks": CHECKS,
            },
        )
        results["approve"] = response.status_code

    threads = [threading.Thread(target=hostile), threading.Thread(target=approve)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results["approve"] == 200
    assert all(400 <= results[n] < 500 for n in results if n != "approve"), results
    assert count(app, Review, Review.document_id == doc["id"]) == 1


# --- retries are safe ----------------------------------------------------------------------------
# Every point of the shipment double check's checklist, confirmed.
CHECKS = dict.fromkeys(("customer", "product", "spec", "qty", "batch"), True)


def keyed(api: Api, user: str, key: str) -> dict[str, str]:
    return {**api.headers(user), "Idempotency-Key": key}


def test_create_replayed_with_its_key_makes_one_document(app, api):
    body = {"flow": "shipment", "data": SHIPMENT}
    first = api.client.post("/api/v1/documents", json=body, headers=keyed(api, "zhang", "k-1"))
    again = api.client.post("/api/v1/documents", json=body, headers=keyed(api, "zhang", "k-1"))
    assert first.status_code == again.status_code == 201
    assert again.get_data() == first.get_data()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert count(app, Document) == 1
    other = api.client.post("/api/v1/documents", json=body, headers=keyed(api, "zhang", "k-2"))
    assert other.status_code == 201 and count(app, Document) == 2


def test_approve_and_edit_replayed_act_once(app, api):
    doc = api.submitted()
    path = f"/api/v1/documents/{doc['id']}/actions"
    body = {
        "action": "approve",
        "revision": doc["revision"],
        "comment": "核对无误",
        "checks": CHECKS,
    }
    first = api.client.post(path, json=body, headers=keyed(api, "wang", "approve-1"))
    again = api.client.post(path, json=body, headers=keyed(api, "wang", "approve-1"))
    assert first.status_code == again.status_code == 200
    assert again.get_data() == first.get_data()
    assert count(app, Review, Review.document_id == doc["id"]) == 1
    refused = count(app, AuditEvent, AuditEvent.outcome == "refused")
    assert refused == 0  # the replay was not even tried again

    draft = api.create()
    path = f"/api/v1/documents/{draft['id']}"
    edit = {"data": {"samples": "样品 1 盒"}, "revision": 1}
    first = api.client.patch(path, json=edit, headers=keyed(api, "zhang", "edit-1"))
    again = api.client.patch(path, json=edit, headers=keyed(api, "zhang", "edit-1"))
    assert first.status_code == again.status_code == 200
    assert again.get_json()["revision"] == first.get_json()["revision"] == 2


def test_a_key_reused_for_another_request_is_refused(app, api):
    body = {"flow": "shipment", "data": SHIPMENT}
    assert api.client.post("/api/v1/documents", json=body,
                           headers=keyed(api, "zhang", "same")).status_code == 201  # fmt: skip
    other = {"flow": "shipment", "data": {**SHIPMENT, "customer": "另一家公司"}}
    response = api.client.post("/api/v1/documents", json=other, headers=keyed(api, "zhang", "same"))
    assert response.status_code == 422 and error_code(response) == "idempotency_key_reused"
    # keys are per user: wang may use the same text for his own request
    response = api.client.post("/api/v1/documents", json=body, headers=keyed(api, "wang", "same"))
    assert response.status_code == 201
    assert count(app, Document) == 2


def test_racing_replays_act_once(app, api):
    doc = api.submitted()
    path = f"/api/v1/documents/{doc['id']}/actions"
    body = {"action": "approve", "revision": doc["revision"], "comment": "", "checks": CHECKS}
    headers = keyed(api, "wang", "race-1")
    answers: list[tuple[int, bytes]] = []
    start = threading.Barrier(4)

    def send() -> None:
        start.wait()
        response = app.test_client().post(path, json=body, headers=headers)
        answers.append((response.status_code, response.get_data()))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == 4
    assert {status for status, _ in answers} == {200}, answers
    assert len({body for _, body in answers}) == 1
    assert count(app, Review, Review.document_id == doc["id"]) == 1
    assert count(app, IdempotencyKey) == 1


def test_a_lost_commit_answers_503_and_the_retry_tells_the_truth(app, api, monkeypatch):
    doc = api.submitted()
    path = f"/api/v1/documents/{doc['id']}/actions"
    body = {"action": "approve", "revision": doc["revision"], "comment": "", "checks": CHECKS}
    real_commit = Session.commit
    lose = {"next": True}

    def commit_then_lose_the_answer(self: Session) -> None:
        real_commit(self)
        if lose["next"] and self.info.get("lose_after_commit", True):
            lose["next"] = False
            raise OperationalError("COMMIT", {}, Exception("server closed the connection"),
                                   connection_invalidated=True)  # fmt: skip

    headers = keyed(api, "wang", "lost-1")
    monkeypatch.setattr(Session, "commit", commit_then_lose_the_answer)
    response = api.client.post(path, json=body, headers=headers)
    monkeypatch.setattr(Session, "commit", real_commit)
    assert response.status_code == 503 and error_code(response) == "commit_outcome_unknown"
    assert response.headers["Retry-After"] == "1"
    retry = api.client.post(path, json=body, headers=headers)
    assert retry.status_code == 200, retry.get_json()  # not 409: it was stored
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert len(retry.get_json()["review"]["approvals"]) == 1
    assert count(app, Review, Review.document_id == doc["id"]) == 1


def test_a_refusal_whose_record_is_lost_answers_503_not_500(app, api, monkeypatch):
    doc = api.submitted()
    path = f"/api/v1/documents/{doc['id']}/actions"
    real_commit = Session.commit

    def lose_every_commit(self: Session) -> None:
        raise OperationalError("COMMIT", {}, Exception("server closed the connection"),
                               connection_invalidated=True)  # fmt: skip

    monkeypatch.setattr(Session, "commit", lose_every_commit)
    # zhang submitted it: approving is refused (self_review), then recording that is lost.
    refused = api.client.post(
        path, json={"action": "approve", "revision": doc["revision"]}, headers=api.headers("zhang")
    )
    monkeypatch.setattr(Session, "commit", real_commit)
    assert refused.status_code == 503 and error_code(refused) == "unavailable", refused.get_json()
    assert refused.headers["Retry-After"] == "1"
    assert count(app, Review, Review.document_id == doc["id"]) == 0


# --- one error language ---------------------------------------------------------------------------
def test_405_says_what_is_allowed(client, api):
    response = api.call("DELETE", "/documents/1", "zhang")
    assert response.status_code == 405 and error_code(response) == "method_not_allowed"
    assert "Allow" in response.headers and "GET" in response.headers["Allow"]
    page = client.delete("/inbox")
    assert page.status_code == 405 and "GET" in page.headers["Allow"]


def test_over_long_url_and_headers_answer_json_under_api(app, api):
    response = api.get("/tasks?cursor=" + "a" * 5000, "zhang")
    assert response.status_code == 414 and error_code(response) == "uri_too_long"
    big = {f"X-Filler-{i}": "y" * 1000 for i in range(20)}
    response = api.get("/tasks", "zhang", headers=big)
    assert response.status_code == 431 and error_code(response) == "headers_too_large"


def test_auditors_and_non_starters_get_403_on_the_create_form(login_as):
    for user in ("shen", "li", "xu"):
        client = login_as(user)
        assert client.get("/new/shipment").status_code == 403, user
        token = re.search(r'name="csrf_token" value="([^"]+)"',
                          client.get("/inbox").get_data(as_text=True))  # fmt: skip
        if token:
            response = client.post("/new/shipment", data={"csrf_token": token.group(1)})
            assert response.status_code == 403, user


def test_a_refusal_keyed_by_no_field_answers_422_not_500(app, api_as):
    """Details keyed `None` (the request as a whole) beside field names cannot be sorted as
    JSON keys: the answer must still be the 422, with the key as marshmallow names it."""

    def refuse():
        raise InvalidData({None: ["the request as a whole"], "amount": ["must be a number"]})

    app.add_url_rule("/api/v1/test-refusal", "test_refusal", refuse)  # a GET: no CSRF token
    response = app.test_client().get("/api/v1/test-refusal", headers=api_as("zhang"))
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.json["error"]["code"] == "invalid_data"
    assert response.json["error"]["details"] == {
        "_schema": ["the request as a whole"],
        "amount": ["must be a number"],
    }
