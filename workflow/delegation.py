"""Delegation: someone going away lets a colleague act in some or all of their roles for a
date range. The delegate's actions say "on behalf of" (in the audit event and the review row);
the rules of review hold for both people at once (workflow/review.py), so delegation never lets
anyone approve their own document, count twice or approve two levels.

Who may delegate what, and who sees which delegations, are `workflow.policy`'s rules.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from workflow import audit, notify, policy
from workflow.calendar import CHINA
from workflow.db import utcnow
from workflow.errors import ActionNotAllowed, InvalidData, NotFound
from workflow.models import Delegation, User
from workflow.uow import unit_of_work

MAX_DAYS = 366
_CACHE = "fuhe_delegations"


def today(now: dt.datetime | None = None) -> dt.date:
    """Delegations run by the calendar day in China."""
    return (now or utcnow()).astimezone(CHINA).date()


def active_for(session: Session, user: User, now: dt.datetime | None = None) -> list[Delegation]:
    """The delegations `user` may act under now (cached for the session's current request)."""
    day = today(now)
    cache = session.info.setdefault(_CACHE, {})
    key = (user.id, day)
    if key not in cache:
        stmt = (
            select(Delegation)
            .where(
                Delegation.to_user_id == user.id,
                Delegation.revoked_at.is_(None),
                Delegation.starts_on <= day,
                Delegation.ends_on >= day,
            )
            .order_by(Delegation.id)
        )
        cache[key] = [d for d in session.scalars(stmt) if policy.delegated_roles(d)]
    return list(cache[key])


def effective_roles(session: Session, user: User) -> frozenset[str]:
    """The user's own roles and those delegated to them now (what their lists may show; the
    engine still decides each action, for both people)."""
    roles = set(user.roles)
    for row in active_for(session, user):
        roles |= policy.delegated_roles(row)
    return frozenset(roles)


def forget(session: Session) -> None:
    session.info.pop(_CACHE, None)


def _date(value: Any, name: str) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidData({name: ["must be a date such as 2026-12-01"]}) from None


def _roles(value: Any, principal: User) -> list[str]:
    """The roles asked for; none given means every role the principal may hand over."""
    if value is None or value == []:
        roles = sorted(policy.delegable_roles(principal))
        if not roles:
            raise InvalidData({"roles": ["you hold no role that can be delegated"]})
        return roles
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise InvalidData({"roles": ["must be a list of role names"]})
    return sorted(set(value))


def create(
    session: Session,
    principal: User,
    to: Any,
    roles: Any,
    start: Any,
    until: Any,
    now: dt.datetime | None = None,
) -> Delegation:
    """`principal` lets the user named `to` act in `roles` from `start` to `until` (inclusive)."""
    with unit_of_work(session, principal, "delegate", target=f"delegation to {to}"[:120]):
        if not isinstance(to, str) or not to:
            raise InvalidData({"to": ["name the colleague (their user name)"]})
        delegate = session.scalar(select(User).where(User.username == to))
        if delegate is None or not delegate.active:
            raise InvalidData({"to": [f"no active user named `{to}`"]})
        first, last = _date(start, "from"), _date(until, "until")
        if last < first:
            raise InvalidData({"until": ["must be on or after `from`"]})
        if last < today(now):
            raise InvalidData({"until": ["is in the past: the delegation would never apply"]})
        if (last - first).days >= MAX_DAYS:
            raise InvalidData({"until": [f"a delegation lasts at most {MAX_DAYS} days"]})
        wanted = _roles(roles, principal)
        policy.can_delegate(principal, delegate, wanted).enforce()
        row = Delegation(
            from_user_id=principal.id,
            to_user_id=delegate.id,
            roles=wanted,
            starts_on=first,
            ends_on=last,
            principal=principal,
            delegate=delegate,
        )
        session.add(row)
        session.flush()
        details = describe(row)
        audit.append(
            session,
            audit.SYSTEM_CHAIN,
            actor=principal.username,
            action="delegate",
            outcome="ok",
            details=details,
        )
        notify.to_user(session, "delegated", None, delegate.id, details)
    forget(session)
    return row


def revoke(session: Session, actor: User, delegation_id: Any) -> Delegation:
    """End a delegation now (its principal only)."""
    with unit_of_work(session, actor, "revoke_delegation", target=f"delegation {delegation_id}"):
        row = None
        if isinstance(delegation_id, int) and not isinstance(delegation_id, bool):
            row = session.get(Delegation, delegation_id)
        if row is None or not policy.can_see_delegation(actor, row):
            raise NotFound(f"delegation {delegation_id} does not exist or you may not see it")
        policy.can_revoke_delegation(actor, row).enforce()
        if row.revoked_at is not None:
            raise ActionNotAllowed("this delegation has already been withdrawn")
        row.revoked_at = utcnow()
        audit.append(
            session,
            audit.SYSTEM_CHAIN,
            actor=actor.username,
            action="revoke_delegation",
            outcome="ok",
            details=describe(row),
        )
    forget(session)
    return row


def listing(
    session: Session, viewer: User, now: dt.datetime | None = None, everyone: bool = False
) -> list[Delegation]:
    """Delegations the viewer gave or received that are not over; with `everyone` (managers
    only, rule `delegations`) every active delegation of the company."""
    day = today(now)
    stmt = select(Delegation).where(Delegation.revoked_at.is_(None), Delegation.ends_on >= day)
    if everyone:
        policy.can_see_all_delegations(viewer).enforce()
    else:
        stmt = stmt.where(
            or_(Delegation.from_user_id == viewer.id, Delegation.to_user_id == viewer.id)
        )
    return list(session.scalars(stmt.order_by(Delegation.starts_on, Delegation.id)))


def describe(row: Delegation) -> dict[str, Any]:
    return {
        "id": row.id,
        "principal": row.principal.username,
        "to": row.delegate.username,
        "roles": list(row.roles),
        "from": row.starts_on.isoformat(),
        "until": row.ends_on.isoformat(),
    }
