"""Notifications: a transactional outbox, delivered in the app at once and by mail by `worker`.

What happens in a transaction (a task now waits for someone, a document was rejected) writes
its notification rows in that same transaction, so a notification is never lost (the action
committed, the row did too) and never announces what was rolled back. `deliver` mails pending
rows; several workers may run on several hosts: each row is taken under a row lock that
others skip (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite's write lock serializes them), and
the row is marked sent in the transaction that holds it.
"""

from __future__ import annotations

import datetime as dt
import smtplib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from sqlalchemy import and_, func, insert, literal, select, update
from sqlalchemy.orm import Session

from workflow.db import utcnow
from workflow.models import Notification, User, UserRole

MAX_ATTEMPTS = 5
KINDS = {
    "task_waiting": (
        "待你处理：{title} #{id}（{state}）",
        "Waiting for you: {title} #{id} ({state})",
    ),
    "rejected": ("已被驳回：{title} #{id}，原因：{reason}", "Rejected: {title} #{id} — {reason}"),
    "overdue": ("已逾期：{title} #{id}（{state}）", "Overdue: {title} #{id} ({state})"),
    "escalated": (
        "逾期升级：{title} #{id}（{state}）仍未处理",
        "Escalated: {title} #{id} ({state}) is still not done",
    ),
    "delegated": (
        "{principal} 将 {roles} 角色委托给你（{start} 至 {end}）",
        "{principal} delegated {roles} to you ({start} to {end})",
    ),
}


def subject(kind: str, details: dict[str, Any], lang: str = "zh") -> str:
    """The one-line text of a notification in a language (zh or en)."""
    zh, en = KINDS.get(kind, ("{kind}", "{kind}"))
    english = lang.startswith("en")
    suffix = "en" if english else "zh"
    values = {
        "kind": kind,
        "id": details.get("id", ""),
        "title": details.get(f"title_{suffix}", ""),
        "state": details.get(f"state_{suffix}", ""),
        "reason": details.get("reason", ""),
        "principal": details.get("principal", ""),
        "roles": ", ".join(details.get("roles", ())),
        "start": details.get("from", ""),
        "end": details.get("until", ""),
    }
    return (en if english else zh).format(**values)


def about(document: Any, spec: Any, state: str, **extra: Any) -> dict[str, Any]:
    """What a notification says about a document, in both languages."""
    label = spec.state(state).label
    return {
        "id": document.id,
        "flow": document.flow_name,
        "title_zh": spec.title.zh,
        "title_en": spec.title.en,
        "state": state,
        "state_zh": label.zh,
        "state_en": label.en,
        **extra,
    }


def to_roles(
    session: Session,
    kind: str,
    document_id: int,
    roles: Collection[str],
    details: dict[str, Any],
    exclude: Collection[int] = (),
) -> None:
    """One notification for every active holder of `roles` (one statement: INSERT … SELECT)."""
    if not roles:
        return
    people = (
        select(
            User.id,
            literal(kind),
            literal(document_id),
            literal(details, Notification.details.type),
            literal(utcnow(), Notification.created_at.type),
            literal("pending"),
            literal(0),
            literal(utcnow(), Notification.next_attempt_at.type),
        )
        .where(
            User.active.is_(True),
            User.id.in_(select(UserRole.user_id).where(UserRole.role.in_(sorted(roles)))),
            User.id.not_in(sorted(exclude)) if exclude else literal(True),
        )
        .order_by(User.id)
    )
    session.execute(
        insert(Notification).from_select(
            [
                "user_id",
                "kind",
                "document_id",
                "details",
                "created_at",
                "email_state",
                "attempts",
                "next_attempt_at",
            ],
            people,
        )
    )


def to_user(
    session: Session, kind: str, document_id: int, user_id: int, details: dict[str, Any]
) -> None:
    """One notification for one person."""
    session.add(Notification(user_id=user_id, kind=kind, document_id=document_id, details=details))


# --- reading -------------------------------------------------------------------------------------
def unread_count(session: Session, user: User) -> int:
    stmt = select(func.count()).where(
        Notification.user_id == user.id, Notification.read_at.is_(None)
    )
    return session.scalar(stmt) or 0


def recent(session: Session, user: User, limit: int = 50) -> list[Notification]:
    """The user's newest notifications, unread ones included."""
    stmt = (
        select(Notification)
        .where(Notification.user_id == user.id)
        .order_by(Notification.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def mark_read(session: Session, user: User) -> None:
    session.execute(
        update(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
    )
    session.commit()


# --- delivering by mail --------------------------------------------------------------------------
@dataclass(frozen=True)
class MailSettings:
    host: str
    port: int = 25
    sender: str = "fuhe@localhost"
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    base_url: str = "http://127.0.0.1:5000"


Send = Callable[[EmailMessage], None]


def smtp_sender(settings: MailSettings) -> Send:
    def send(message: EmailMessage) -> None:
        with smtplib.SMTP(settings.host, settings.port, timeout=10) as smtp:
            if settings.starttls:
                smtp.starttls()
            if settings.username:
                smtp.login(settings.username, settings.password or "")
            smtp.send_message(message)

    return send


def message_for(row: Notification, user: User, settings: MailSettings) -> EmailMessage:
    """The mail for one notification, in the person's language, with a link to the document."""
    lang = user.language or "zh"
    text = subject(row.kind, row.details or {}, lang)
    message = EmailMessage()
    message["Subject"] = f"[复核] {text}"
    message["From"] = settings.sender
    message["To"] = user.email or ""
    # A stable id: a message re-sent after a crash is recognisable as the same one.
    message["Message-ID"] = f"<notification-{row.id}@fuhe>"
    link = f"{settings.base_url.rstrip('/')}/documents/{row.document_id}" if row.document_id else ""
    message.set_content(f"{text}\n\n{link}\n")
    return message


def deliver(
    session: Session,
    send: Send | None,
    settings: MailSettings,
    batch: int = 20,
    now: dt.datetime | None = None,
) -> int:
    """Mail up to `batch` due notifications; returns how many were sent. Safe on many hosts.
    With mail off (`send` None) they are marked `off`: shown in the app only."""
    now = now or utcnow()
    stmt = (
        select(Notification)
        .where(and_(Notification.email_state == "pending", Notification.next_attempt_at <= now))
        .order_by(Notification.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    rows = list(session.scalars(stmt))
    sent = 0
    for row in rows:
        user = session.get(User, row.user_id)
        if send is None or user is None or not user.email:
            row.email_state = "off"  # in the app only: this person has no mail address
            continue
        try:
            send(message_for(row, user, settings))
        except Exception:  # a mail server down: retry later, with backoff
            row.attempts += 1
            row.next_attempt_at = now + dt.timedelta(minutes=2**row.attempts)
            if row.attempts >= MAX_ATTEMPTS:
                row.email_state = "failed"
            continue
        row.email_state = "sent"
        row.delivered_at = utcnow()
        sent += 1
    session.commit()
    return sent
