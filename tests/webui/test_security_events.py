"""Every refused request leaves a security event (actor, target, code, reason) and changes
nothing else — whether the engine refused it or the request layer did."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from tests.conftest import PASSWORD
from tests.webui.test_api import SHIPMENT, Api
from webui.extensions import db
from workflow.models import AuditEvent, Document, DocumentRevision, Review


@pytest.fixture
def api(client, api_as) -> Api:
    return Api(client, api_as)


def snapshot(app) -> tuple[int, ...]:
    """Counts of everything a refusal must not change."""
    with app.app_context():
        counts = tuple(
            db.session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Document, DocumentRevision, Review)
        )
        states = tuple(db.session.scalars(select(Document.state).order_by(Document.id)))
        revisions = tuple(db.session.scalars(select(Document.revision).order_by(Document.id)))
        db.session.remove()
        return (*counts, *states, *revisions)


def refusals(app) -> list[AuditEvent]:
    with app.app_context():
        rows = list(
            db.session.scalars(
                select(AuditEvent).where(AuditEvent.outcome == "refused").order_by(AuditEvent.id)
            )
        )
        db.session.expunge_all()
        db.session.remove()
        return rows


def bad_requests(doc: dict) -> dict[str, tuple[str, str, str, dict[str, Any]]]:
    """name → (method, path, user, json body)."""
    path = f"/documents/{doc['id']}"
    return {
        "reject without a reason": ("POST", path + "/actions", "wang",
                                    {"action": "reject", "revision": doc["revision"]}),
        "revision as a string": ("POST", path + "/actions", "wang",
                                 {"action": "approve", "revision": str(doc["revision"])}),
        "comment over 2000 characters": ("POST", path + "/actions", "wang",
                                         {"action": "approve", "revision": doc["revision"],
                                          "comment": "长" * 2001}),
        "an extra field": ("POST", path + "/actions", "wang",
                           {"action": "approve", "revision": doc["revision"], "state": "shipped"}),
        "a document the user may not see": ("POST", path + "/actions", "xu",
                                            {"action": "approve", "revision": doc["revision"]}),
        "create with invalid data": ("POST", "/documents", "zhang",
                                     {"flow": "shipment", "data": {**SHIPMENT, "amount": "x"}}),
        "edit with invalid data": ("PATCH", path, "zhang",
                                   {"data": {"ship_by": "tomorrow"}, "revision": 1}),
        "a refused number": ("POST", "/documents", "zhang", None),
    }  # fmt: skip


@pytest.mark.parametrize("name", sorted(bad_requests({"id": 1, "revision": 1})))
def test_each_refusal_leaves_a_security_event_and_nothing_else(app, api, name):
    doc = api.submitted() if "edit" not in name else api.create()
    method, path, user, body = bad_requests(doc)[name]
    before, seen = snapshot(app), len(refusals(app))
    if body is None:
        raw = '{"flow": "shipment", "data": {"held_orders": 1e1000000}}'
        response = api.call(method, path, user, data=raw,
                            headers={"Content-Type": "application/json"})  # fmt: skip
    else:
        response = api.call(method, path, user, json=body)
    assert 400 <= response.status_code < 500, response.get_json()
    assert snapshot(app) == before
    new = refusals(app)[seen:]
    assert len(new) == 1, [(e.action, e.code) for e in new]
    event = new[0]
    assert event.actor == user and event.code == response.get_json()["error"]["code"]
    assert event.details and event.details.get("message")
    assert "长" * 100 not in (event.comment or "") + str(event.details)  # bounded, no payload


def test_failed_and_throttled_logins_are_security_events(app, client):
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        page = client.get("/auth/login").get_data(as_text=True)
        token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
        client.post("/auth/login", data={"username": "li", "password": "wrong-password",
                                         "csrf_token": token})  # fmt: skip
    page = client.get("/auth/login").get_data(as_text=True)
    token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    client.post("/auth/login", data={"username": "li", "password": PASSWORD, "csrf_token": token})
    codes = [(e.action, e.actor, e.code) for e in refusals(app)]
    failed = app.config["LOGIN_MAX_FAILURES"]
    assert codes == [("login", "li", "login_failed")] * failed + [
        ("login", "li", "login_throttled")
    ]
    assert all("wrong-password" not in str(e.details) for e in refusals(app))
