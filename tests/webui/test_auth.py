"""Sign-in, sign-out, throttling, next, password change and language, through the test client."""

from __future__ import annotations

import re

from tests.conftest import PASSWORD
from webui.extensions import db
from workflow import accounts
from workflow.models import LoginAttempt, User


def token_of(client, url: str = "/auth/login") -> str:
    page = client.get(url).get_data(as_text=True)
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)
    assert match
    return match.group(1)


def sign_in(client, username: str, password: str = PASSWORD, query: str = "", **extra):
    data = {"username": username, "password": password, "csrf_token": token_of(client), **extra}
    return client.post("/auth/login" + query, data=data)


def test_login_page_renders_with_csrf(client):
    page = client.get("/auth/login").get_data(as_text=True)
    assert 'name="csrf_token"' in page and 'for="username"' in page and "登录" in page


def test_login_sets_httponly_lax_session_cookie(client):
    response = sign_in(client, "zhang")
    assert response.status_code == 302
    assert response.headers["Location"] == "/inbox"
    cookies = response.headers.getlist("Set-Cookie")
    session_cookie = next(c for c in cookies if c.startswith("session="))
    assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie
    assert client.get("/inbox").status_code == 200


def test_remember_me_sets_a_httponly_remember_cookie(client):
    response = sign_in(client, "zhang", remember="y")
    remember = [
        c for c in response.headers.getlist("Set-Cookie") if c.startswith("remember_token=")
    ]
    assert remember and "HttpOnly" in remember[0] and "SameSite=Lax" in remember[0]


def test_wrong_password_is_refused(client):
    response = sign_in(client, "zhang", "wrong-password")
    assert response.status_code == 401
    assert "用户名或密码不正确" in response.get_data(as_text=True)
    assert client.get("/inbox").status_code == 302


def test_login_without_csrf_is_refused(client):
    response = client.post("/auth/login", data={"username": "zhang", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/inbox").status_code == 302


def test_throttling_locks_after_repeated_failures_across_processes(app, client, db_url):
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        assert sign_in(client, "zhang", "wrong-password").status_code == 401
    response = sign_in(client, "zhang")  # even the right password is refused now
    assert response.status_code == 429
    assert "登录失败次数过多" in response.get_data(as_text=True)
    # another worker process: a separate app on the same database sees the same lock
    from webui import create_app

    other = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": db_url})
    assert sign_in(other.test_client(), "zhang").status_code == 429
    assert sign_in(other.test_client(), "wang").status_code == 302  # others are not locked
    with other.app_context():
        assert db.session.query(LoginAttempt).filter_by(username="zhang").count() == 5
        db.session.remove()
        db.engine.dispose()  # this second app's own pool: close it now, not at garbage collection


def test_successful_login_clears_failures(app, client):
    for _ in range(app.config["LOGIN_MAX_FAILURES"] - 1):
        sign_in(client, "zhang", "wrong-password")
    assert sign_in(client, "zhang").status_code == 302
    with app.app_context():
        assert db.session.query(LoginAttempt).filter_by(username="zhang").count() == 0


def test_safe_next(client):
    assert sign_in(client, "zhang", query="?next=/mine").headers["Location"] == "/mine"
    for bad in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"):
        c = client.application.test_client()
        response = sign_in(c, "zhang", query="?next=" + bad)
        assert response.headers["Location"] == "/inbox", bad


def test_new_session_at_login(client):
    client.get("/auth/login")
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker"
    sign_in(client, "zhang")
    with client.session_transaction() as sess:
        assert "planted" not in sess
        assert sess.get("_user_id")


def test_logout_needs_post_with_csrf_and_ends_the_session(login_as):
    c = login_as("zhang")
    assert c.get("/auth/logout").status_code == 405
    assert c.post("/auth/logout").status_code == 400  # no CSRF token
    assert c.get("/inbox").status_code == 200
    token = token_of(c, "/inbox")
    response = c.post("/auth/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert c.get("/inbox").status_code == 302
    with c.session_transaction() as sess:
        assert "_user_id" not in sess


def test_disabled_user_cannot_sign_in(app, client):
    with app.app_context():
        accounts.set_active(db.session, "zhang", False)
        db.session.remove()
    assert sign_in(client, "zhang").status_code == 401


def test_disabled_user_is_signed_out_on_the_next_request(app, login_as):
    c = login_as("zhang")
    assert c.get("/inbox").status_code == 200
    with app.app_context():
        accounts.set_active(db.session, "zhang", False)
        db.session.remove()
    assert c.get("/inbox").status_code == 302


def test_change_password(app, login_as, client):
    c = login_as("zhang")
    other_browser = login_as("zhang")
    token = token_of(c, "/auth/password")
    response = c.post(
        "/auth/password",
        data={
            "csrf_token": token,
            "old_password": "not-it-at-all",
            "new_password": "new-secret-42",
            "confirm": "new-secret-42",
        },
    )
    assert response.status_code == 422
    assert "is not your current password" in response.get_data(as_text=True)
    response = c.post(
        "/auth/password",
        data={
            "csrf_token": token,
            "old_password": PASSWORD,
            "new_password": "new-secret-42",
            "confirm": "different-42",
        },
    )
    assert response.status_code == 422
    response = c.post(
        "/auth/password",
        data={
            "csrf_token": token,
            "old_password": PASSWORD,
            "new_password": "new-secret-42",
            "confirm": "new-secret-42",
        },
    )
    assert response.status_code == 303
    assert c.get("/inbox").status_code == 200  # this browser stays signed in
    assert other_browser.get("/inbox").status_code == 302  # every other session ends
    assert sign_in(app.test_client(), "zhang", "new-secret-42").status_code == 302
    assert sign_in(app.test_client(), "zhang").status_code == 401


def test_language_chinese_by_default_english_by_browser(login_as):
    c = login_as("zhang")
    assert "待我处理" in c.get("/inbox").get_data(as_text=True)
    page = c.get("/inbox", headers={"Accept-Language": "en-US,en;q=0.9"}).get_data(as_text=True)
    assert "Waiting for me" in page and 'lang="en"' in page


def test_language_saved_per_user(app, login_as):
    c = login_as("zhang")
    token = token_of(c, "/auth/settings")
    assert c.post("/auth/settings", data={"csrf_token": token, "language": "en"}).status_code == 303
    with app.app_context():
        assert db.session.query(User).filter_by(username="zhang").one().language == "en"
    fresh = login_as("zhang")  # a new browser, Chinese Accept-Language: the saved choice wins
    page = fresh.get("/inbox", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "Waiting for me" in page


def test_language_switch_before_sign_in(client):
    token = token_of(client)
    response = client.post(
        "/auth/language", data={"csrf_token": token, "language": "en", "back": "/auth/login"}
    )
    assert response.status_code == 303 and response.headers["Location"] == "/auth/login"
    assert "Sign in" in client.get("/auth/login").get_data(as_text=True)


def test_a_copied_session_cookie_is_dead_after_logout(app, login_as):
    c = login_as("zhang")
    stolen = app.test_client()
    cookie = c.get_cookie("session")
    assert cookie is not None
    stolen.set_cookie("session", cookie.value)
    assert stolen.get("/inbox").status_code == 200  # the copy works while the session lives
    c.post("/auth/logout", data={"csrf_token": token_of(c, "/inbox")})
    assert stolen.get("/inbox").status_code == 302  # and is dead once its owner logs out
