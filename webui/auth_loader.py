"""How a request proves who it is: the browser session, or `Authorization: Bearer <token>`."""

from __future__ import annotations

from flask import g, request
from flask_login import UserMixin

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
    return SessionUser(row, session_key=key) if row else None


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


def uses_header_auth() -> bool:
    """Whether this request authenticated (or failed to) by its Authorization header."""
    return bool(g.get("authorization_header"))
