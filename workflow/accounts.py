"""Accounts: users and roles, passwords, browser sessions, login throttling and API tokens.

Like the document services, each command is one transaction; only hashes of passwords, session
keys and tokens are stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.orm import Session, joinedload

from workflow import audit, policy
from workflow.db import as_utc
from workflow.errors import InvalidData, NotFound
from workflow.fields import FieldMessage
from workflow.models import ApiToken, LoginAttempt, User, UserRole, UserSession
from workflow.roles import LANGUAGES, ROLES
from workflow.security import check_password, hash_password, new_token, token_hash
from workflow.uow import unit_of_work


def _record(session: Session, action: str, actor: str | None = None, **details: object) -> None:
    """An account change, on the audit log's system chain (same transaction as the change)."""
    audit.append(
        session,
        audit.SYSTEM_CHAIN,
        actor=actor,
        action=action,
        outcome="ok",
        details=details or None,
    )


def _known_roles(roles: Iterable[str]) -> list[str]:
    """The roles without duplicates, or InvalidData naming the first unknown one."""
    roles = list(dict.fromkeys(roles))
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        message = f"unknown role `{unknown[0]}`"
        raise InvalidData({"role": [message]}, message)
    return roles


def create_user(
    session: Session,
    username: str,
    password: str,
    roles: Iterable[str],
    display_name: str = "",
) -> User:
    """Create a user with the given roles; refuses a taken name or an unknown role."""
    user = _new_user(session, username, password, roles, display_name)
    _record(session, "user_create", user=username, roles=sorted(user.roles))
    session.commit()
    return user


def _new_user(
    session: Session, username: str, password: str, roles: Iterable[str], display_name: str
) -> User:
    roles = _known_roles(roles)
    if len(display_name) > 120 or not display_name.isprintable():
        raise InvalidData({"display_name": ["must be at most 120 printable characters"]})
    if not username or len(username) > 64 or not username.isprintable() or " " in username:
        raise InvalidData({"username": ["must be 1-64 printable characters without spaces"]})
    if len(password) < 8:
        raise InvalidData({"password": ["must be at least 8 characters"]}, "password too short")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise InvalidData(
            {"username": [f"user `{username}` already exists"]}, f"user `{username}` already exists"
        )
    user = User(username=username, display_name=display_name, password_hash=hash_password(password))
    user.role_rows = [UserRole(role=r) for r in roles]
    session.add(user)
    session.flush()
    return user


def set_roles(session: Session, username: str, roles: Iterable[str]) -> User:
    user = _user_by_name(session, username)
    roles = _known_roles(roles)
    user.role_rows = [UserRole(role=r) for r in roles]
    _record(session, "user_roles", user=username, roles=roles)
    session.commit()
    return user


def set_active(session: Session, username: str, active: bool) -> User:
    user = _user_by_name(session, username)
    user.active = active
    if not active:
        _revoke_sessions(session, user.id)
    _record(session, "user_enable" if active else "user_disable", user=username)
    session.commit()
    return user


def change_password(
    session: Session, user: User, old: str, new: str, keep_session: str | None = None
) -> None:
    """Change the password and end every other signed-in session of this user."""
    if not check_password(user.password_hash, old):
        raise InvalidData({"old_password": ["is not your current password"]})
    if len(new) < 8:
        raise InvalidData({"new_password": ["must be at least 8 characters"]})
    user.password_hash = hash_password(new)
    user.must_change_password = False
    _revoke_sessions(session, user.id, keep=keep_session)
    _record(session, "password_change", actor=user.username)
    session.commit()


def open_session(session: Session, user: User) -> str:
    """A new browser session key for `user` (only its hash is stored)."""
    key = new_token()
    session.add(UserSession(user_id=user.id, key_hash=token_hash(key)))
    session.commit()
    return key


def session_user(session: Session, user_id: int, key: str) -> User | None:
    """The active user of a live (not revoked) session, or None."""
    row = session.scalar(select(UserSession).where(UserSession.key_hash == token_hash(key)))
    if row is None or row.revoked_at is not None or row.user_id != user_id:
        return None
    user = session.get(User, user_id)
    return user if user is not None and user.active else None


def close_session(session: Session, key: str) -> None:
    """Revoke one browser session (logout): its cookie, even a copied one, stops working."""
    row = session.scalar(select(UserSession).where(UserSession.key_hash == token_hash(key)))
    if row is not None and row.revoked_at is None:
        row.revoked_at = dt.datetime.now(dt.UTC)
        session.commit()


def _revoke_sessions(session: Session, user_id: int, keep: str | None = None) -> None:
    now = dt.datetime.now(dt.UTC)
    rows = session.scalars(
        select(UserSession).where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
    )
    for row in rows:
        if keep is None or row.key_hash != token_hash(keep):
            row.revoked_at = now


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with this name and password, or None."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active or not check_password(user.password_hash, password):
        return None
    return user


def login_locked(session: Session, username: str, max_failures: int, window_minutes: int) -> bool:
    """Whether `username` has `max_failures` failed sign-ins within the last `window_minutes`.

    Kept in the database (LoginAttempt) so the lock holds across every worker process."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=window_minutes)
    failures = session.scalar(
        select(func.count())
        .select_from(LoginAttempt)
        .where(LoginAttempt.username == username[:64], LoginAttempt.at >= since)
    )
    session.rollback()  # a read only: end it so SQLite's write lock is not held meanwhile
    return (failures or 0) >= max_failures


def record_login_failure(
    session: Session, username: str, remote_addr: str = "", code: str = "login_failed"
) -> None:
    """A failed (or throttled) sign-in: counted for throttling and kept as a security event."""
    if code == "login_failed":
        session.add(LoginAttempt(username=username[:64], remote_addr=(remote_addr or "")[:64]))
    audit.record_refusal(
        session,
        actor=username[:64],
        action="login",
        code=code,
        message="wrong username or password"
        if code == "login_failed"
        else "too many failed sign-ins; locked for a while",
        target=f"from {(remote_addr or 'unknown')[:64]}",
    )
    session.commit()


def clear_login_failures(session: Session, username: str) -> None:
    session.execute(delete(LoginAttempt).where(LoginAttempt.username == username[:64]))
    session.commit()


def set_language(session: Session, user: User, language: str | None) -> None:
    """Save the user's interface language ("zh_Hans", "zh_Hant", "en", or None for the
    browser's choice; "zh" is the earlier spelling of "zh_Hans")."""
    if language == "zh":
        language = "zh_Hans"
    if language not in (*LANGUAGES, None):
        raise InvalidData({"language": ["must be zh_Hans, zh_Hant or en"]})
    user.language = language
    session.commit()


def issue_token(session: Session, username: str, expires_in_days: int | None = None) -> str:
    """A new API token for `username`; the token itself is returned once and never stored."""
    user = _user_by_name(session, username)
    token = new_token()
    expires = (
        dt.datetime.now(dt.UTC) + dt.timedelta(days=expires_in_days) if expires_in_days else None
    )
    session.add(
        ApiToken(
            user_id=user.id, token_hash=token_hash(token), prefix=token[:10], expires_at=expires
        )
    )
    _record(session, "token_issue", actor=username, prefix=token[:10])
    session.commit()
    return token


def revoke_tokens(session: Session, username: str) -> int:
    user = _user_by_name(session, username)
    now = dt.datetime.now(dt.UTC)
    tokens = session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ).all()
    for token in tokens:
        token.revoked_at = now
    _record(session, "token_revoke", actor=username, count=len(tokens))
    session.commit()
    return len(tokens)


# One statement: the token, its user and the user's roles (every request needs all three);
# built once, as building it costs more than running it.
_TOKEN_LOOKUP = (
    select(ApiToken)
    .where(ApiToken.token_hash == bindparam("hash"))
    .options(joinedload(ApiToken.user).joinedload(User.role_rows))
)


def user_for_token(session: Session, token: str) -> User | None:
    """The active user a bearer token belongs to, or None if unknown, revoked or expired."""
    row = session.scalars(_TOKEN_LOOKUP, {"hash": token_hash(token)}).unique().one_or_none()
    if row is None or row.revoked_at is not None or not row.user.active:
        return None
    if row.expires_at is not None and as_utc(row.expires_at) < dt.datetime.now(dt.UTC):
        return None
    return row.user


def _user_by_name(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user named `{username}`")
    return user


# --- people administration (user administrators; rules in workflow/policy.py) -------------------
def list_users(session: Session) -> list[User]:
    """Every account, by login name (a department has tens or hundreds, not millions)."""
    return list(session.scalars(select(User).order_by(User.username)))


def get_user(session: Session, username: str) -> User:
    return _user_by_name(session, username)


def token_counts(session: Session) -> dict[int, int]:
    """user id → how many live (not revoked) API tokens the user has."""
    rows = session.execute(
        select(ApiToken.user_id, func.count())
        .where(ApiToken.revoked_at.is_(None))
        .group_by(ApiToken.user_id)
    )
    return {user_id: count for user_id, count in rows}


def admin_create_user(
    session: Session,
    actor: User,
    username: str,
    password: str,
    roles: Iterable[str],
    display_name: str = "",
    before_commit: Callable[[User], None] | None = None,
) -> User:
    """A user administrator adds a colleague (one transaction, one audit event).

    `before_commit(user)` runs inside the transaction (the API stores its idempotent answer)."""
    with unit_of_work(session, actor, "user_create", target=f"user {username}"[:200]) as uow:
        policy.can_manage_users(actor).enforce()
        user = _new_user(session, username.strip(), password, roles, display_name.strip())
        _record(
            session,
            "user_create",
            actor=actor.username,
            user=user.username,
            roles=sorted(user.roles),
        )
        if before_commit is not None:
            uow.before_commit(lambda: before_commit(user))
    return user


def admin_update_user(
    session: Session,
    actor: User,
    username: str,
    *,
    roles: Iterable[str] | None = None,
    active: bool | None = None,
    password: str | None = None,
    display_name: str | None = None,
    revoke_api_tokens: bool = False,
    before_commit: Callable[[User], None] | None = None,
) -> User:
    """A user administrator changes one account: roles, enabled or not, a password reset (the
    owner must change it at the next sign-in), the display name, revoking API tokens.

    All requested changes in one transaction, each with its own audit event; nobody changes
    their own roles or disables themselves (policy rule `no_self_grant`)."""
    with unit_of_work(session, actor, "user_update", target=f"user {username}"[:200]) as uow:
        policy.can_manage_users(actor).enforce()
        user = _user_by_name(session, username)
        new_roles = _known_roles(roles) if roles is not None else None
        policy.can_change_user(
            actor, user, roles=new_roles, active=active, password=password is not None
        ).enforce()
        who = actor.username
        if display_name is not None and display_name.strip() != user.display_name:
            name = display_name.strip()
            if len(name) > 120 or not name.isprintable():
                raise InvalidData({"display_name": ["must be at most 120 printable characters"]})
            user.display_name = name
            _record(session, "user_rename", actor=who, user=username, display_name=name)
        if new_roles is not None and frozenset(new_roles) != user.roles:
            user.role_rows = [UserRole(role=r) for r in new_roles]
            _record(session, "user_roles", actor=who, user=username, roles=sorted(new_roles))
        if active is not None and active != user.active:
            user.active = active
            if not active:
                _revoke_sessions(session, user.id)
            _record(session, "user_enable" if active else "user_disable", actor=who, user=username)
        if password is not None:
            if len(password) < 8:
                raise InvalidData({"password": [FieldMessage("too_short", limit=8)]})
            user.password_hash = hash_password(password)
            user.must_change_password = True
            _revoke_sessions(session, user.id)
            _record(session, "password_reset", actor=who, user=username)
        if revoke_api_tokens:
            count = _revoke_tokens(session, user.id)
            _record(session, "token_revoke", actor=who, user=username, count=count)
        if before_commit is not None:
            uow.before_commit(lambda: before_commit(user))
    return user


def _revoke_tokens(session: Session, user_id: int) -> int:
    now = dt.datetime.now(dt.UTC)
    tokens = session.scalars(
        select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
    ).all()
    for token in tokens:
        token.revoked_at = now
    return len(tokens)
