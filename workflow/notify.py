"""Notifications: a transactional outbox, delivered in the app at once and by mail by `worker`.

What happens in a transaction (a task now waits for someone, a document was rejected) writes
its notification in that same transaction, so a notification is never lost (the action
committed, the row did too) and never announces what was rolled back. A notification is for
one person (`to_user`) or for the holders of roles (`to_roles`): then it is one row with its
roles and exclusions, however many people hold the roles — readers find it by their roles
(`recent`, `unread_count`), and the worker fans it out for mail (`expand`: one delivery row
per person, written in one transaction under the notification's row lock). `deliver` mails
pending deliveries; several workers may run on several hosts: each delivery is taken under a
row lock that others skip (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite's write lock
serializes them), and marked sent in the transaction that holds it.
"""

from __future__ import annotations

import datetime as dt
import json
import smtplib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from sqlalchemy import (
    Select,
    and_,
    bindparam,
    func,
    insert,
    literal,
    select,
    text,
    union,
    update,
)
from sqlalchemy.orm import Session

from workflow import audit
from workflow.calendar import CHINA
from workflow.db import utcnow
from workflow.models import (
    Notification,
    NotificationDelivery,
    NotificationExclusion,
    NotificationRole,
    User,
    UserRole,
)

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


# PostgreSQL: a notification to roles in one statement (data-modifying CTEs).
ONE_STATEMENT = text(
    "WITH n AS (INSERT INTO notifications (kind, document_id, details, created_at, expanded) "
    "VALUES (:kind, :document_id, :details, :created_at, false) RETURNING id), "
    "r AS (INSERT INTO notification_roles (notification_id, role) "
    "SELECT n.id, role FROM n, unnest(CAST(:roles AS varchar[])) AS role) "
    "INSERT INTO notification_exclusions (notification_id, user_id) "
    "SELECT n.id, person FROM n, unnest(CAST(:exclude AS integer[])) AS person"
).bindparams(
    bindparam("details", type_=Notification.details.type),
    bindparam("created_at", type_=Notification.created_at.type),
)

# SQLite: the same through a view with an INSTEAD OF trigger (roles and exclusions as JSON).
SQLITE_STATEMENT = text(
    "INSERT INTO notification_to_roles (kind, document_id, details, created_at, roles, exclude)"
    " VALUES (:kind, :document_id, :details, :created_at, :roles, :exclude)"
).bindparams(
    bindparam("details", type_=Notification.details.type),
    bindparam("created_at", type_=Notification.created_at.type),
)


def to_roles(
    session: Session,
    kind: str,
    document_id: int | None,
    roles: Collection[str],
    details: dict[str, Any],
    exclude: Collection[int] = (),
) -> None:
    """One notification for the holders of `roles`, but those in `exclude`: one row, a row per
    role and one per excluded person — the same rows however many people hold the roles.
    Readers see it in the app by their roles (`recent`); the worker writes each one's mail
    (`expand`)."""
    if not roles:
        return
    wanted = sorted(set(roles))
    people = sorted({u for u in exclude if u is not None})
    # One round trip on both databases: the row, its roles and its exclusions in one statement
    # (PostgreSQL: data-modifying CTEs, arrays; SQLite: the view whose trigger writes the three
    # tables, JSON arrays — workflow/models.py SQLITE_NOTIFY_TO_ROLES). Flushed first, as an
    # ORM statement would be: what it refers to is written.
    postgres = session.get_bind().dialect.name == "postgresql"
    session.flush()
    session.execute(
        ONE_STATEMENT if postgres else SQLITE_STATEMENT,
        {
            "kind": kind,
            "document_id": document_id,
            "details": details,
            "created_at": utcnow(),
            "roles": wanted if postgres else json.dumps(wanted),
            "exclude": people if postgres else json.dumps(people),
        },
    )


def to_user(
    session: Session, kind: str, document_id: int | None, user_id: int, details: dict[str, Any]
) -> None:
    """One notification for one person."""
    session.add(Notification(user_id=user_id, kind=kind, document_id=document_id, details=details))


def audience(row: Notification) -> Select[tuple[int]]:
    """Who a notification is for (user ids): its person, or the people who hold one of its
    roles now, had their account when it was written and are not excluded. The same rule as
    `recent`, seen from the notification's side; the worker mails the active ones."""
    if row.user_id is not None:
        return select(User.id).where(User.id == row.user_id)
    holders = (
        select(UserRole.user_id)
        .join(NotificationRole, NotificationRole.role == UserRole.role)
        .where(NotificationRole.notification_id == row.id)
    )
    excluded = select(NotificationExclusion.user_id).where(
        NotificationExclusion.notification_id == row.id
    )
    return select(User.id).where(
        User.id.in_(holders), User.id.not_in(excluded), User.created_at <= row.created_at
    )


# --- reading -------------------------------------------------------------------------------------
# A person sees their own notifications and those addressed to a role they hold now, written
# since their account exists (a new colleague's bell is not flooded with history), unless they
# are excluded from it. What is read is one watermark per person (`users.notifications_read_id`,
# the newest id they have read): newer visible notifications are unread.
def _visible(user: User, newer_than: int = 0, each: int | None = None) -> Any:
    """The ids of the notifications `user` sees (newer than `newer_than`; the newest `each` of
    each part when given): one indexed range per part — their own rows (user_id, id), and
    per role they hold (role, notification_id) — as one UNION."""
    parts = [
        select(Notification.id.label("id")).where(
            Notification.user_id == user.id, Notification.id > newer_than
        )
    ]
    for role in sorted(user.roles):
        excluded = (
            select(NotificationExclusion.user_id)
            .where(
                NotificationExclusion.notification_id == NotificationRole.notification_id,
                NotificationExclusion.user_id == user.id,
            )
            .exists()
        )
        parts.append(
            select(NotificationRole.notification_id.label("id"))
            .join(Notification, Notification.id == NotificationRole.notification_id)
            .where(
                NotificationRole.role == role,
                NotificationRole.notification_id > newer_than,
                Notification.created_at >= user.created_at,
                ~excluded,
            )
        )
    if each is not None:
        parts = [part.order_by(part.selected_columns.id.desc()).limit(each) for part in parts]
    if len(parts) == 1:  # no role: their own rows only
        return parts[0].subquery()
    wrapped = [select(part.subquery().c.id) for part in parts]  # SQLite: LIMIT inside a UNION
    return union(*wrapped).subquery()


# The bell counts up to here and then says "99+": it is on every page, and someone who never
# opens the notifications would otherwise have every one since their last visit counted on
# each page they open (~40 ms at 24,000).
UNREAD_CAP = 99


def unread_count(session: Session, user: User) -> int:
    """How many notifications `user` has not read: exact up to UNREAD_CAP, else UNREAD_CAP + 1.
    Each part of `_visible` stops after UNREAD_CAP + 1 rows: one part that long is enough."""
    visible = _visible(user, newer_than=user.notifications_read_id or 0, each=UNREAD_CAP + 1)
    found = session.scalar(select(func.count()).select_from(visible)) or 0
    return min(found, UNREAD_CAP + 1)


def unread_label(count: int) -> str:
    """The bell's badge: `3`, or `99+` past the cap; empty when nothing is unread."""
    if count > UNREAD_CAP:
        return f"{UNREAD_CAP}+"
    return str(count) if count else ""


def recent(session: Session, user: User, limit: int = 50) -> list[Notification]:
    """The user's newest notifications, unread ones included; each one's `read` set for them."""
    visible = _visible(user, each=limit)
    stmt = (
        select(Notification)
        .where(Notification.id.in_(select(visible.c.id)))
        .order_by(Notification.id.desc())
        .limit(limit)
    )
    found = list(session.scalars(stmt))
    watermark = user.notifications_read_id or 0
    for row in found:
        row.read = row.id <= watermark
    return found


def mark_read(session: Session, user: User, upto: int | None = None) -> None:
    """Everything `user` sees up to notification `upto` is read (None: all they see now)."""
    if upto is None:
        visible = _visible(user, newer_than=user.notifications_read_id or 0)
        upto = session.scalar(select(func.max(visible.c.id)))
    if upto:
        session.execute(
            update(User)
            .where(User.id == user.id, User.notifications_read_id < upto)
            .values(notifications_read_id=upto)
            .execution_options(synchronize_session=False)
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
    # Unique per (notification, person): one notification to a role is mailed to many.
    message["Message-ID"] = f"<notification-{row.id}-{user.id}@fuhe>"
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
    message["Message-ID"] = f"<digest-{rows[0].id}-{rows[-1].id}-{user.id}@fuhe>"
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


def expand(session: Session, now: dt.datetime | None = None) -> Notification | None:
    """Write the mail deliveries of one notification not yet expanded: one row for each person
    it is for at this moment (its person, or the active holders of its roles but those
    excluded), in one statement, and mark it expanded — all in one transaction, under the
    notification's row lock (`FOR UPDATE SKIP LOCKED`; SQLite's write lock serializes), so two
    workers never expand one twice and nothing is lost. Returns it, or None when none is left."""
    row = session.scalars(
        select(Notification)
        .where(Notification.expanded.is_(False))
        .order_by(Notification.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if row is None:
        session.rollback()
        return None
    people = audience(row)
    if row.user_id is None:
        people = people.where(User.active.is_(True))
    when = now or utcnow()
    session.execute(
        insert(NotificationDelivery).from_select(
            ["notification_id", "user_id", "email_state", "attempts", "next_attempt_at"],
            select(
                literal(row.id),
                people.subquery().c.id,
                literal("pending"),
                literal(0),
                literal(when, NotificationDelivery.next_attempt_at.type),
            ),
        )
    )
    row.expanded = True
    session.commit()
    return row


def _take_one(session: Session, now: dt.datetime) -> NotificationDelivery | None:
    stmt = (
        select(NotificationDelivery)
        .where(
            and_(
                NotificationDelivery.email_state == "pending",
                NotificationDelivery.next_attempt_at <= now,
            )
        )
        .order_by(NotificationDelivery.id)
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
    """Expand the new notifications into deliveries (`expand`), then mail up to `batch` due
    deliveries; returns how many were sent. Safe on many hosts.

    Each delivery (one notification to one person) is taken, mailed and marked sent in a
    transaction of its own, under its row lock (`FOR UPDATE SKIP LOCKED`): two workers never
    mail the same one. A worker asked to stop (`stopping()` true: SIGTERM, as systemd and
    deploys stop it) finishes and marks the message in flight and takes no other, so it leaves
    nothing to send twice. Only a worker that cannot finish (SIGKILL, power loss) between the
    mail server's acceptance and its own commit leaves that one message unmarked; the next
    worker mails it again with the same Message-ID (SMTP offers no two-phase commit; a mail
    system drops the copy by Message-ID). With mail off (`send` None), for a person without an
    address or who opted out, deliveries are marked `off`: in the app only. Digest readers'
    deliveries wait for the daily digest (`deliver_digests`)."""
    now = now or utcnow()
    while not stopping() and expand(session, now) is not None:
        pass
    sent = 0
    for _ in range(batch):
        if stopping():
            break
        row = _take_one(session, now)
        if row is None:
            break
        note = session.get(Notification, row.notification_id)
        user = session.get(User, row.user_id)
        if send is None or note is None or user is None or not user.email or not user.notify_email:
            row.email_state = "off"  # in the app only
        elif user.notify_digest:
            row.email_state = "digest"
            row.next_attempt_at = next_digest_time(now)
        else:
            try:
                send(message_for(note, user, settings))
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
    returns how many digests went out. One person's deliveries are taken together under row
    locks."""
    now = now or utcnow()
    due = and_(
        NotificationDelivery.email_state == "digest", NotificationDelivery.next_attempt_at <= now
    )
    count = 0
    done: set[int] = set()
    while True:
        stmt = select(NotificationDelivery.user_id).where(due)
        if done:
            stmt = stmt.where(NotificationDelivery.user_id.not_in(sorted(done)))
        user_id = session.scalar(stmt.order_by(NotificationDelivery.user_id).limit(1))
        if user_id is None:
            session.rollback()
            return count
        done.add(user_id)
        rows = list(
            session.scalars(
                select(NotificationDelivery)
                .where(due, NotificationDelivery.user_id == user_id)
                .order_by(NotificationDelivery.notification_id)
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
            notes = list(
                session.scalars(
                    select(Notification)
                    .where(Notification.id.in_([r.notification_id for r in rows]))
                    .order_by(Notification.id)
                )
            )
            try:
                send(digest_for(notes, user, settings))
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
