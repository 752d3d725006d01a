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

from workflow import audit
from workflow.calendar import CHINA
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
# 繁體中文 (zh_Hant) wording of KINDS, for readers in Taiwan and Hong Kong; titles and states
# stay as the definition's `zh` labels.
KINDS_HANT = {
    "task_waiting": "待你處理：{title} #{id}（{state}）",
    "rejected": "已被駁回：{title} #{id}，原因：{reason}",
    "overdue": "已逾期：{title} #{id}（{state}）",
    "escalated": "逾期升級：{title} #{id}（{state}）仍未處理",
    "delegated": "{principal} 將 {roles} 角色委託給你（{start} 至 {end}）",
}
HANT = ("zh_hant", "zh-hant", "zh_tw", "zh-tw", "zh_hk", "zh-hk")


def language_of(lang: str | None) -> str:
    """`en`, `zh_Hant` or `zh` (the default) for a user's language setting."""
    value = (lang or "zh").lower()
    if value.startswith("en"):
        return "en"
    return "zh_Hant" if value in HANT else "zh"


def subject(kind: str, details: dict[str, Any], lang: str = "zh") -> str:
    """The one-line text of a notification in a language (zh, zh_Hant or en)."""
    zh, en = KINDS.get(kind, ("{kind}", "{kind}"))
    language = language_of(lang)
    english = language == "en"
    if language == "zh_Hant":
        zh = KINDS_HANT.get(kind, zh)
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
    document_id: int | None,
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
    session: Session, kind: str, document_id: int | None, user_id: int, details: dict[str, Any]
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


MAIL_TEXT = {
    "zh": {
        "greeting": "{name}，您好：",
        "open": "打开单据",
        "settings": "不想收邮件或改为每日汇总：",
        "digest": "[复核] 每日汇总：{count} 条通知",
        "digest_intro": "以下是您昨天以来的通知：",
    },
    "zh_Hant": {
        "greeting": "{name}，您好：",
        "open": "打開單據",
        "settings": "不想收郵件或改為每日匯總：",
        "digest": "[復核] 每日匯總：{count} 則通知",
        "digest_intro": "以下是您昨天以來的通知：",
    },
    "en": {
        "greeting": "Hello {name},",
        "open": "Open the document",
        "settings": "To stop these mails or get one daily digest:",
        "digest": "[复核] Daily digest: {count} notification(s)",
        "digest_intro": "Your notifications since the last digest:",
    },
}


def link_of(row: Notification, settings: MailSettings) -> str:
    """Where a notification leads: its document (or, for a delegation, the delegations page)."""
    base = settings.base_url.rstrip("/")
    if row.document_id:
        return f"{base}/documents/{row.document_id}"
    return f"{base}/delegations" if row.kind == "delegated" else f"{base}/notifications"


def message_for(row: Notification, user: User, settings: MailSettings) -> EmailMessage:
    """The mail for one notification, in the person's language, with a link to the document."""
    language = language_of(user.language)
    words = MAIL_TEXT[language]
    text = subject(row.kind, row.details or {}, language)
    message = EmailMessage()
    message["Subject"] = f"[复核] {text}"
    message["From"] = settings.sender
    message["To"] = user.email or ""
    # A stable id: a message re-sent after a crash is recognisable as the same one.
    message["Message-ID"] = f"<notification-{row.id}@fuhe>"
    message["X-Fuhe-Notification"] = str(row.id)
    base = settings.base_url.rstrip("/")
    message.set_content(
        f"{words['greeting'].format(name=user.name)}\n\n{text}\n\n"
        f"{words['open']}: {link_of(row, settings)}\n\n"
        f"-- \n{words['settings']} {base}/notifications\n"
    )
    return message


def digest_for(rows: list[Notification], user: User, settings: MailSettings) -> EmailMessage:
    """One mail listing several notifications, each with its link."""
    language = language_of(user.language)
    words = MAIL_TEXT[language]
    message = EmailMessage()
    message["Subject"] = words["digest"].format(count=len(rows))
    message["From"] = settings.sender
    message["To"] = user.email or ""
    ids = ",".join(str(r.id) for r in rows)
    message["Message-ID"] = f"<digest-{rows[0].id}-{rows[-1].id}@fuhe>"
    message["X-Fuhe-Notification"] = ids
    lines = [words["greeting"].format(name=user.name), "", words["digest_intro"], ""]
    for row in rows:
        lines.append(f"- {subject(row.kind, row.details or {}, language)}")
        lines.append(f"  {link_of(row, settings)}")
    base = settings.base_url.rstrip("/")
    lines += ["", f"-- \n{words['settings']} {base}/notifications"]
    message.set_content("\n".join(lines) + "\n")
    return message


DIGEST_HOUR = 8  # the daily digest goes out at 08:00 China time


def next_digest_time(now: dt.datetime) -> dt.datetime:
    local = now.astimezone(CHINA)
    moment = local.replace(hour=DIGEST_HOUR, minute=0, second=0, microsecond=0)
    if moment <= local:
        moment += dt.timedelta(days=1)
    return moment.astimezone(dt.UTC)


def set_preferences(session: Session, user: User, email: bool | None, digest: bool | None) -> User:
    """The user's mail settings (None: unchanged); audited."""
    from workflow.uow import unit_of_work

    with unit_of_work(session, user, "notification_settings", target=user.username):
        if email is not None:
            user.notify_email = email
        if digest is not None:
            user.notify_digest = digest
        audit.append(
            session,
            audit.SYSTEM_CHAIN,
            actor=user.username,
            action="notification_settings",
            outcome="ok",
            details={"email": user.notify_email, "digest": user.notify_digest},
        )
    return user


def _take_one(session: Session, now: dt.datetime) -> Notification | None:
    stmt = (
        select(Notification)
        .where(and_(Notification.email_state == "pending", Notification.next_attempt_at <= now))
        .order_by(Notification.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return session.scalars(stmt).first()


def deliver(
    session: Session,
    send: Send | None,
    settings: MailSettings,
    batch: int = 20,
    now: dt.datetime | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> int:
    """Mail up to `batch` due notifications; returns how many were sent. Safe on many hosts.

    Each notification is taken, mailed and marked sent in a transaction of its own, under its
    row lock (`FOR UPDATE SKIP LOCKED`): two workers never mail the same row. A worker asked to
    stop (`stopping()` true: SIGTERM, as systemd and deploys stop it) finishes and marks the
    message in flight and takes no other, so it leaves nothing to send twice. Only a worker
    that cannot finish (SIGKILL, power loss) between the mail server's acceptance and its own
    commit leaves that one message unmarked; the next worker mails it again with the same
    Message-ID (SMTP offers no two-phase commit; a mail system drops the copy by Message-ID).
    With mail off (`send` None), for a person without an address or who opted out, rows are
    marked `off`: in the app only. Digest readers' rows wait for the daily digest
    (`deliver_digests`)."""
    now = now or utcnow()
    sent = 0
    for _ in range(batch):
        if stopping():
            break
        row = _take_one(session, now)
        if row is None:
            break
        user = session.get(User, row.user_id)
        if send is None or user is None or not user.email or not user.notify_email:
            row.email_state = "off"  # in the app only
        elif user.notify_digest:
            row.email_state = "digest"
            row.next_attempt_at = next_digest_time(now)
        else:
            try:
                send(message_for(row, user, settings))
            except Exception:  # a mail server down: retry later, with backoff
                row.attempts += 1
                row.next_attempt_at = now + dt.timedelta(minutes=2**row.attempts)
                if row.attempts >= MAX_ATTEMPTS:
                    row.email_state = "failed"
            else:
                row.email_state = "sent"
                row.delivered_at = utcnow()
                sent += 1
        session.commit()
    session.rollback()
    return sent


def deliver_digests(
    session: Session, send: Send | None, settings: MailSettings, now: dt.datetime | None = None
) -> int:
    """Send each digest reader whose digest is due one mail with everything waiting for them;
    returns how many digests went out. One person's rows are taken together under row locks."""
    now = now or utcnow()
    due = and_(Notification.email_state == "digest", Notification.next_attempt_at <= now)
    count = 0
    done: set[int] = set()
    while True:
        stmt = select(Notification.user_id).where(due)
        if done:
            stmt = stmt.where(Notification.user_id.not_in(sorted(done)))
        user_id = session.scalar(stmt.order_by(Notification.user_id).limit(1))
        if user_id is None:
            session.rollback()
            return count
        done.add(user_id)
        rows = list(
            session.scalars(
                select(Notification)
                .where(due, Notification.user_id == user_id)
                .order_by(Notification.id)
                .with_for_update(skip_locked=True)
            )
        )
        user = session.get(User, user_id)
        if not rows or user is None:
            session.rollback()
            continue
        if send is None or not user.email or not user.notify_email:
            for row in rows:
                row.email_state = "off"
        else:
            try:
                send(digest_for(rows, user, settings))
            except Exception:
                for row in rows:
                    row.next_attempt_at = now + dt.timedelta(minutes=15)
                session.commit()
                continue
            stamp = utcnow()
            for row in rows:
                row.email_state, row.delivered_at = "sent", stamp
            count += 1
        session.commit()
