"""How a request proves who it is: the browser session, or `Authorization: Bearer <token>`."""

from __future__ import annotations

import hashlib
import hmac

from flask import current_app, g, request, session
from flask_login import UserMixin, current_user, user_loaded_from_cookie

from webui.extensions import db, login_manager
from workflow.accounts import session_user, user_for_token
from workflow.models import User


class SessionUser(UserMixin):
    """Flask-Login's view of a user; the engine always gets the `User` row itself (`.row`)."""

    def __init__(self, row: User, via_token: bool = False, session_key: str = "") -> None:
        self.row = row
        self.via_token = via_token
        self.session_key = session_key

    def get_id(self) -> str:
        # The id carries the server-side session key: logout or a password change revokes it,
        # and with it the session and remember-me cookies, copies included.
        return f"{self.row.id}:{self.session_key}"

    @property
    def is_active(self) -> bool:
        return self.row.active

    @property
    def language(self) -> str | None:
        return self.row.language

    def __getattr__(self, name: str):
        return getattr(self.row, name)


@login_manager.user_loader
def load_user(user_id: str) -> SessionUser | None:
    ident, _, key = user_id.partition(":")
    if not ident.isdigit() or not key:
        return None
    row = session_user(db.session, int(ident), key)
    if row is None:
        return None
    bind_csrf_to_sign_in(key)
    return SessionUser(row, session_key=key)


def bind_csrf_to_sign_in(session_key: str) -> None:
    """The CSRF secret of a signed-in browser is derived from its server-side sign-in (the
    UserSession key), not kept at random in the cookie: a form left open overnight still
    submits while the sign-in is valid — also after the session cookie lapsed and "remember
    me" restored the sign-in — and dies with it (logout, password change, disabling).
    Tokens never expire by age (WTF_CSRF_TIME_LIMIT = None)."""
    if uses_header_auth():
        return
    secret = current_app.secret_key
    secret = secret.encode() if isinstance(secret, str) else secret
    wanted = hmac.new(secret, b"csrf:" + session_key.encode(), hashlib.sha1).hexdigest()
    field = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    if session.get(field) != wanted:  # set only on change: no new cookie on every response
        session[field] = wanted
        g.pop(field, None)  # a token generated earlier in this request used the old secret


def authenticate_by_header() -> None:
    """A request that carries `Authorization` is authenticated by it alone (before_request).

    A cookie the client also keeps never upgrades or downgrades it: a bad token is anonymous
    (401 on the API) whatever session comes along, and Flask-Login never reads the session for
    this request, because the user is decided here first.
    """
    header = request.headers.get("Authorization")
    if header is None:
        return
    g.authorization_header = True
    scheme, _, token = header.partition(" ")
    row = None
    if scheme.lower() == "bearer" and token.strip():
        row = user_for_token(db.session, token.strip())
    g._login_user = SessionUser(row, via_token=True) if row else login_manager.anonymous_user()


@user_loaded_from_cookie.connect
def _restored(_app, user=None, **_extra) -> None:
    """A sign-in restored from the remember-me cookie: mark the new session with this
    browser's identifier, as login_user does — without it "strong" session protection clears
    the restored session on the very next request (and with it the remember-me cookie)."""
    session["_id"] = login_manager._session_identifier_generator()


def load_sign_in() -> None:
    """Load the signed-in user (session or remember-me cookie) before the CSRF check runs, so
    the CSRF secret of a restored sign-in is in place (before_request)."""
    if request.endpoint != "static" and not uses_header_auth():
        _ = current_user.is_authenticated


def uses_header_auth() -> bool:
    """Whether this request authenticated (or failed to) by its Authorization header."""
    return bool(g.get("authorization_header"))
