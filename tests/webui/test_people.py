"""People administration: user administrators only, audited, nobody grants themselves roles;
a reset password is changed at the next sign-in. API and pages, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.conftest import PASSWORD
from webui.extensions import db
from workflow import audit, policy
from workflow.accounts import create_user
from workflow.errors import SelfAdministration
from workflow.models import AuditEvent, User


@pytest.fixture
def boss(app) -> str:
    """A user administrator (and nothing else) named boss; hr is a second one."""
    with app.app_context():
        create_user(db.session, "boss", PASSWORD, ["user_admin"], display_name="白经理")
        create_user(db.session, "hr", PASSWORD, ["user_admin"], display_name="何人事")
        db.session.remove()
    return "boss"


def token_of(client, url: str) -> str:
    page = client.get(url).get_data(as_text=True)
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)
    assert match, page[:300]
    return match.group(1)


def user_row(app, name: str) -> User:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == name))
        user.roles  # noqa: B018 - load them before the session ends
        db.session.expunge(user)
        db.session.remove()
        return user


def events(app, action: str) -> list[AuditEvent]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()
        db.session.remove()
        return list(rows)


# --- the API -------------------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["admin", "shen", "zhang"])  # flow admin, auditor, a reviewer
def test_only_user_admins_use_the_users_api(client, api_as, boss, who):
    headers = api_as(who)
    assert client.get("/api/v1/users", headers=headers).status_code == 403
    body = {"username": "newbie", "display_name": "新人", "roles": ["gm"], "password": "x" * 8}
    response = client.post("/api/v1/users", json=body, headers=headers)
    assert response.status_code == 403 and response.json["error"]["code"] == "forbidden"
    response = client.patch("/api/v1/users/li", json={"roles": ["gm"]}, headers=headers)
    assert response.status_code == 403
    assert user_row(client.application, "li").roles == {"warehouse"}


def test_create_list_and_change_a_user(app, client, api_as, boss):
    headers = api_as(boss)
    body = {
        "username": "newbie",
        "display_name": "牛新",
        "roles": ["sales"],
        "password": "first-pw-1",
    }
    created = client.post("/api/v1/users", json=body, headers=headers)
    assert created.status_code == 201, created.json
    assert created.json["roles"] == ["sales"] and created.json["display_name"] == "牛新"
    listed = client.get("/api/v1/users", headers=headers).json["items"]
    assert {"newbie", "li", "boss"} <= {u["username"] for u in listed}
    changed = client.patch(
        "/api/v1/users/newbie", json={"roles": ["sales", "finance"]}, headers=headers
    )
    assert changed.status_code == 200 and changed.json["roles"] == ["finance", "sales"]
    off = client.patch("/api/v1/users/newbie", json={"active": False}, headers=headers)
    assert off.status_code == 200 and off.json["active"] is False
    created_events = [e for e in events(app, "user_create") if e.actor == "boss"]
    assert len(created_events) == 1
    assert [e.actor for e in events(app, "user_roles")] == ["boss"]
    assert [e.actor for e in events(app, "user_disable")] == ["boss"]
    with app.app_context():
        assert audit.verify(db.session).ok


def test_a_taken_name_or_unknown_role_is_refused_and_nothing_is_stored(app, client, api_as, boss):
    headers = api_as(boss)
    body = {"username": "li", "roles": ["sales"], "password": "first-pw-1"}
    taken = client.post("/api/v1/users", json=body, headers=headers)
    assert taken.status_code == 422 and "already exists" in str(taken.json["error"]["details"])
    body = {"username": "x1", "roles": ["emperor"], "password": "first-pw-1"}
    assert client.post("/api/v1/users", json=body, headers=headers).status_code == 422
    short = client.post(
        "/api/v1/users", json={"username": "x2", "roles": [], "password": "short"}, headers=headers
    )
    assert short.status_code == 422
    with app.app_context():
        names = set(db.session.scalars(select(User.username)))
        db.session.remove()
    assert not {"x1", "x2"} & names


@pytest.mark.parametrize(
    "change",
    [{"roles": ["user_admin", "gm"]}, {"roles": []}, {"active": False}, {"password": "new-pw-123"}],
)
def test_nobody_administers_themselves(app, client, api_as, boss, change):
    response = client.patch("/api/v1/users/boss", json=change, headers=api_as(boss))
    assert response.status_code == 403
    assert response.json["error"]["code"] == "self_administration"
    after = user_row(app, "boss")
    assert after.roles == {"user_admin"} and after.active and not after.must_change_password
    refused = [e for e in events(app, "user_update") if e.outcome == "refused"]
    assert refused and refused[-1].code == "self_administration"  # the refusal is audited


def test_another_user_admin_may_change_them(client, api_as, boss):
    response = client.patch(
        "/api/v1/users/boss", json={"roles": ["user_admin", "gm"]}, headers=api_as("hr")
    )
    assert response.status_code == 200 and response.json["roles"] == ["gm", "user_admin"]


def test_revoking_tokens_ends_api_access(client, api_as, boss):
    victim = api_as("li")
    assert client.get("/api/v1/tasks", headers=victim).status_code == 200
    response = client.patch("/api/v1/users/li", json={"revoke_tokens": True}, headers=api_as(boss))
    assert response.status_code == 200
    assert client.get("/api/v1/tasks", headers=victim).status_code == 401
    assert [e.actor for e in events(client.application, "token_revoke")] == ["boss"]


def test_a_reset_password_must_be_changed_at_the_next_sign_in(app, client, api_as, login_as, boss):
    browser = login_as("li")
    response = client.patch(
        "/api/v1/users/li", json={"password": "temp-pass-1"}, headers=api_as(boss)
    )
    assert response.status_code == 200 and response.json["must_change_password"] is True
    assert browser.get("/inbox").status_code == 302  # the old sign-in ended with the reset
    fresh = login_as("li", "temp-pass-1")
    assert fresh.get("/inbox").headers["Location"].endswith("/auth/password")
    assert fresh.get("/api/v1/tasks").json["error"]["code"] == "password_change_required"
    token = token_of(fresh, "/auth/password")
    changed = fresh.post(
        "/auth/password",
        data={
            "csrf_token": token,
            "old_password": "temp-pass-1",
            "new_password": "mine-now-42",
            "confirm": "mine-now-42",
        },
    )
    assert changed.status_code == 303
    assert fresh.get("/inbox").status_code == 200
    assert not user_row(app, "li").must_change_password
    assert [e.actor for e in events(app, "password_reset")] == ["boss"]


def test_users_api_is_in_the_openapi(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    assert {"get", "post"} <= set(paths["/users"])
    assert "patch" in paths["/users/{username}"]


# --- the policy ----------------------------------------------------------------------------------
def test_policy_self_grant_is_refused(session):
    admin = create_user(session, "ua", PASSWORD, ["user_admin"])
    other = create_user(session, "ub", PASSWORD, ["sales"])
    assert policy.can_change_user(admin, other, roles=["gm"])
    assert not policy.can_manage_users(other)
    verdict = policy.can_change_user(admin, admin, roles=["user_admin", "auditor"])
    assert isinstance(verdict.refusal, SelfAdministration)
    assert policy.can_change_user(admin, admin, roles=["user_admin"])  # unchanged: fine
    flow_admin = create_user(session, "fa", PASSWORD, ["flow_admin"])
    assert not policy.can_manage_users(flow_admin)


# --- the pages -----------------------------------------------------------------------------------
def test_people_pages_for_user_admins_only(login_as, boss):
    assert login_as("admin").get("/people").status_code == 403
    assert "/people" not in login_as("zhang").get("/inbox").get_data(as_text=True)
    c = login_as(boss)
    assert 'href="/people"' in c.get("/inbox").get_data(as_text=True)
    page = c.get("/people").get_data(as_text=True)
    assert "白经理" in page and "何人事" in page and "用户管理员" in page


def test_add_a_colleague_and_refuse_a_self_grant_on_the_pages(app, login_as, boss):
    c = login_as(boss)
    token = token_of(c, "/people")
    form = {
        "csrf_token": token,
        "username": "lin",
        "display_name": "林新",
        "password": "first-pw-1",
        "roles": ["sales", "warehouse"],
    }
    response = c.post("/people", data=form)
    assert response.status_code == 303 and response.headers["Location"].endswith("/people/lin")
    assert user_row(app, "lin").roles == {"sales", "warehouse"}
    again = c.post("/people", data=form)  # the name is taken: the form again, as typed
    assert again.status_code == 422 and "林新" in again.get_data(as_text=True)
    page = c.get("/people/boss").get_data(as_text=True)
    assert "另一位用户管理员" in page  # says why their own roles cannot be changed here
    self_grant = c.post(
        "/people/boss",
        data={
            "csrf_token": token,
            "change": "profile",
            "display_name": "白经理",
            "roles": ["user_admin", "gm"],
        },
    )
    assert self_grant.status_code == 403
    assert "不能修改自己的角色" in self_grant.get_data(as_text=True)
    assert user_row(app, "boss").roles == {"user_admin"}
    disabled = c.post("/people/lin", data={"csrf_token": token, "change": "disable"})
    assert disabled.status_code == 303 and not user_row(app, "lin").active
    with app.app_context():
        assert audit.verify(db.session).ok


def test_the_api_names_people_by_their_display_name(app, client, api_as):
    from tests.webui.test_api import SHIPMENT

    with app.app_context():
        db.session.scalar(select(User).where(User.username == "zhang")).display_name = "张伟"
        db.session.commit()
        db.session.remove()
    body = {"flow": "shipment", "data": SHIPMENT}
    created = client.post("/api/v1/documents", json=body, headers=api_as("zhang"))
    assert created.status_code == 201, created.json
    assert created.json["created_by"] == "zhang" and created.json["created_by_name"] == "张伟"
    spec = client.get("/api/v1/openapi.json").json["components"]["schemas"]
    assert "name" in spec["Approval"]["properties"]


def test_a_retried_create_with_its_idempotency_key_is_done_once(app, client, api_as, boss):
    headers = {**api_as(boss), "Idempotency-Key": "add-newbie-1"}
    body = {"username": "newbie", "roles": ["sales"], "password": "first-pw-1"}
    first = client.post("/api/v1/users", json=body, headers=headers)
    again = client.post("/api/v1/users", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true" and again.json == first.json
    other = client.post("/api/v1/users", json={**body, "username": "other"}, headers=headers)
    assert other.status_code == 422
    assert len([e for e in events(app, "user_create") if e.actor == "boss"]) == 1
