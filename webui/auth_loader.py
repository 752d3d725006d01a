"""How a request proves who it is: the browser session, or `Authorization: Bearer <token>`."""

from __future__ import annotations

from flask import Request
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


@login_manager.request_loader
def load_user_from_request(request: Request) -> SessionUser | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    row = user_for_token(db.session, token.strip())
    return SessionUser(row, via_token=True) if row else None
