"""Persistence: typed SQLAlchemy 2 models, no behaviour beyond small helpers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    DDL,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from workflow.db import Base, JSONData, utcnow

Timestamp = DateTime(timezone=True)


def Identifier(length: int) -> String:
    """A name the program compares and never sorts for reading (a login, an action, a state, a
    chain's key): bytewise ("C") on PostgreSQL, as SQLite compares every string.

    The audit log indexes seven such columns over the largest table, and under the database's
    locale every comparison in those indexes goes through `strcoll` (at 1M documents the actor
    index built in 8.9 s, 5.0 s bytewise). Equality answers the same either way; a column
    compared with a locale-collated one takes this collation (a non-default implicit collation
    wins over the default)."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(120), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    # Set when a user administrator resets the password: changed at the next sign-in.
    must_change_password: Mapped[bool] = mapped_column(default=False, server_default=false())
    language: Mapped[str | None] = mapped_column(String(8))
    email: Mapped[str | None] = mapped_column(String(200))  # for notifications; optional
    # Notifications by mail: off (in the app only), each at once, or one daily digest.
    notify_email: Mapped[bool] = mapped_column(default=True, server_default="1")
    notify_digest: Mapped[bool] = mapped_column(default=False, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    # The newest notification id the person has read: newer ones they see are unread.
    notifications_read_id: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    role_rows: Mapped[list[UserRole]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(r.role for r in self.role_rows)

    @property
    def name(self) -> str:
        return self.display_name or self.username


class UserRole(Base):
    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(32), primary_key=True)
    user: Mapped[User] = relationship(back_populates="role_rows")


class ApiToken(Base):
    """An API token; only its SHA-256 is stored, the token itself is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    user: Mapped[User] = relationship(lazy="joined")


class FlowVersion(Base):
    """An immutable published definition; documents are pinned to one."""

    __tablename__ = "flow_versions"
    __table_args__ = (UniqueConstraint("flow_name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    flow_name: Mapped[str] = mapped_column(String(40), index=True)
    version: Mapped[int] = mapped_column(Integer)
    # Deferred: read once per version per process (compiled flows are cached), never dragged
    # along with every document row that joins its version.
    yaml_text: Mapped[str] = mapped_column(Text, deferred=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    title_zh: Mapped[str] = mapped_column(String(200), default="")
    title_en: Mapped[str] = mapped_column(String(200), default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    # The publisher's change note ("raised the expense threshold to 5000").
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Loaded on demand (the flows page): documents join their version, not its publisher.
    created_by: Mapped[User | None] = relationship(lazy="select")


class FlowChange(Base):
    """A published text that weakens review, waiting for a second flow admin (four eyes on the
    rules themselves); approving it publishes it as a FlowVersion."""

    __tablename__ = "flow_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    flow_name: Mapped[str] = mapped_column(String(40), index=True)
    # The version the change was made against: approving it after another publish is refused.
    base_version: Mapped[int] = mapped_column(Integer)
    yaml_text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")
    reasons: Mapped[list[str]] = mapped_column(JSONData)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    proposed_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    proposed_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    proposed_by: Mapped[User] = relationship(foreign_keys=[proposed_by_id], lazy="joined")


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (
        # The inbox: an ordered range per (flow version, state) one can act in (queries.task_keys)
        Index("ix_documents_task_order", "flow_version_id", "state", "entered_at", "id"),
        Index("ix_documents_entered", "entered_at", "id"),  # the task list's order (all parts)
        # The deadline of the current state (sla, or the overdue date): what `tick` scans and
        # what puts overdue work first.
        Index("ix_documents_due", "due_at", "id"),
        # A number is said on the phone: one document per number within its flow.
        UniqueConstraint("flow_name", "number"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    flow_name: Mapped[str] = mapped_column(String(40), index=True)
    # FH-2026-000123: assigned on creation from `DocumentCounter`, never changed or reused.
    # Nullable only for documents created before numbering existed.
    number: Mapped[str | None] = mapped_column(String(64))
    flow_version_id: Mapped[int] = mapped_column(ForeignKey("flow_versions.id"))
    state: Mapped[str] = mapped_column(String(40))
    revision: Mapped[int] = mapped_column(Integer, default=1)
    # Each entry into a review state opens a new round; approvals count within one round.
    review_round: Mapped[int] = mapped_column(Integer, default=0)
    data: Mapped[dict[str, Any]] = mapped_column(JSONData)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    entered_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    entered_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    # When the current state's deadline passes (None: no deadline here); set with the state.
    due_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)

    flow_version: Mapped[FlowVersion] = relationship(lazy="joined")
    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id], lazy="joined")
    # Only its id is read (the rules compare ids; pages show the creator): not joined into
    # every document load, fetched if something ever asks for the person.
    entered_by: Mapped[User] = relationship(foreign_keys=[entered_by_id], lazy="select")
    # Loaded with the document (a join, not a query): who said "I am on it", if anyone.
    claim: Mapped[TaskClaim | None] = relationship(lazy="joined", viewonly=True)
    # The report rows kept with every action (workflow/report_index), loaded with the document
    # by the actions that change it, so keeping them costs no extra lookups.
    report: Mapped[ReportDocument | None] = relationship(
        primaryjoin="Document.id == foreign(ReportDocument.document_id)",
        viewonly=True,
        uselist=False,
    )
    open_step: Mapped[ReportStep | None] = relationship(
        primaryjoin="and_(Document.id == foreign(ReportStep.document_id), "
        "ReportStep.left_at.is_(None))",
        viewonly=True,
        uselist=False,
    )
    # Joined into the statement that loads a document for its process (workflow/process.py),
    # never loaded on its own: reading it unloaded is a bug, so it raises.
    reviews: Mapped[list[Review]] = relationship(
        primaryjoin="Document.id == foreign(Review.document_id)",
        viewonly=True,
        lazy="raise",
        order_by="Review.id",
    )


class DocumentRevision(Base):
    """The data of each revision, so an auditor can see exactly what each approval saw."""

    __tablename__ = "document_revisions"
    __table_args__ = (UniqueConstraint("document_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    number: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSONData)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    author: Mapped[User] = relationship(lazy="joined")


class Review(Base):
    """One decision in one round of one review state; one per person per round."""

    __tablename__ = "reviews"
    __table_args__ = (
        UniqueConstraint("document_id", "state", "round", "user_id"),
        # Approvals per reviewer in a period (workflow/reports.py), read from the index alone.
        Index("ix_reviews_at", "at", "decision", "user_id", "document_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), index=True)
    state: Mapped[str] = mapped_column(String(40))
    round: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decision: Mapped[str] = mapped_column(String(16))  # approve | reject
    comment: Mapped[str] = mapped_column(Text, default="")
    # The checklist as the reviewer answered it: {"confirmed": [ids]} or {"failed": [ids]}.
    checks: Mapped[dict[str, Any] | None] = mapped_column(JSONData)
    at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    # The audit event (its sequence number in the document's chain) that recorded this review.
    event_seq: Mapped[int | None] = mapped_column(Integer)
    # A delegate's decision counts for the principal too (never twice, never the principal's
    # own document): who they stood in for.
    on_behalf_of_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    user: Mapped[User] = relationship(lazy="joined", foreign_keys=[user_id])


class Attachment(Base):
    """A file attached to a document (a receipt, an invoice scan, a signed delivery note).

    The bytes live outside the database, stored once per content hash (workflow/attachments.py);
    the row names them by SHA-256. Attaching starts a new revision (`revision`), and the audit
    event that recorded it carries the same hash, name, size and type (verified by `audit
    verify`). Rows are never updated or deleted (on PostgreSQL a trigger refuses it)."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), index=True)
    revision: Mapped[int] = mapped_column(Integer)  # the revision attaching it started
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(64))
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    uploaded_by: Mapped[User] = relationship(lazy="joined")


class AuditChain(Base):
    """A hash chain of audit events (one per document, plus `system`).

    Chains are themselves registered in a hash-chained registry (`lane`, `position`,
    `prev_hash`, `hash`), so deleting a document's whole history is still detected, while
    appends to different documents never wait for each other and a creation locks only its
    lane's root (one of 16). `length` and `head` are the current tip.
    """

    __tablename__ = "audit_chains"

    __table_args__ = (UniqueConstraint("lane", "position"),)

    key: Mapped[str] = mapped_column(Identifier(40), primary_key=True)
    # The registry lane (0: `system` and the lanes' roots; 1–16: documents' chains) and the
    # place in it: see workflow/audit.py.
    lane: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    position: Mapped[int] = mapped_column(Integer)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(16))
    length: Mapped[int] = mapped_column(Integer, default=0)
    head: Mapped[str] = mapped_column(String(64))
    opened_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)


class AuditEvent(Base):
    """An append-only, hash-chained record of every action, allowed or refused."""

    __tablename__ = "audit_events"
    __table_args__ = (
        UniqueConstraint("chain_key", "chain_seq"),
        Index("ix_audit_events_at", "at"),
        # the auditors' filters, each with the id the pages are ordered by
        Index("ix_audit_events_outcome_id", "outcome", "id"),
        Index("ix_audit_events_to_state_id", "to_state", "id"),
        Index("ix_audit_events_from_state_id", "from_state", "id"),
        Index("ix_audit_events_document_id_id", "document_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    chain_key: Mapped[str] = mapped_column(Identifier(40))
    chain_seq: Mapped[int] = mapped_column(Integer)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    document_id: Mapped[int | None] = mapped_column(Integer)
    flow: Mapped[str | None] = mapped_column(Identifier(40), index=True)
    flow_version: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str | None] = mapped_column(Identifier(64), index=True)
    action: Mapped[str] = mapped_column(Identifier(40), index=True)
    outcome: Mapped[str] = mapped_column(Identifier(16))
    code: Mapped[str | None] = mapped_column(String(40))
    from_state: Mapped[str | None] = mapped_column(Identifier(40))
    to_state: Mapped[str | None] = mapped_column(Identifier(40))
    revision: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONData)
    key_id: Mapped[str | None] = mapped_column(String(16))  # the audit key that sealed it
    # SHA-256 of the revision data the event acted on (document events)
    data_hash: Mapped[str | None] = mapped_column(String(64))


class LoginAttempt(Base):
    """Failed sign-ins, kept in the database so throttling holds across worker processes."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    remote_addr: Mapped[str] = mapped_column(String(64), default="")
    at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow, index=True)


class OverdueNotice(Base):
    """One notice per document and due date: any number of hosts may run `tick` at once."""

    __tablename__ = "overdue_notices"
    __table_args__ = (UniqueConstraint("document_id", "due_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    due_date: Mapped[str] = mapped_column(String(10))
    noticed_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)


class DeadlineNotice(Base):
    """One row per document, deadline period and step (`overdue`, `escalate:1`, …): whoever
    inserts it sends that reminder or escalation; any number of hosts may run `tick` at once."""

    __tablename__ = "deadline_notices"
    __table_args__ = (UniqueConstraint("document_id", "period", "step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    # The deadline this is about: `<state>@<entered_at>` (sla) or `<field>=<date>` (overdue).
    period: Mapped[str] = mapped_column(String(120))
    step: Mapped[str] = mapped_column(String(40))
    at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    # The document's due_at when written: a `done` row (every step taken) with the current
    # due_at keeps `tick` from visiting the document again until it gets a new deadline.
    due: Mapped[dt.datetime | None] = mapped_column(Timestamp)


class Delegation(Base):
    """Someone away lets a colleague act in some of their roles from one day to another."""

    __tablename__ = "delegations"
    __table_args__ = (Index("ix_delegations_to", "to_user_id", "ends_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    from_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    to_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    roles: Mapped[list[str]] = mapped_column(JSONData)
    starts_on: Mapped[dt.date] = mapped_column(Date)
    ends_on: Mapped[dt.date] = mapped_column(Date)  # inclusive
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    principal: Mapped[User] = relationship(foreign_keys=[from_user_id], lazy="joined")
    delegate: Mapped[User] = relationship(foreign_keys=[to_user_id], lazy="joined")


class UserSession(Base):
    """A signed-in browser session; logout revokes it, so a copied cookie dies with it."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)


class IdempotencyKey(Base):
    """A request's Idempotency-Key and the response it got, stored in the action's transaction:
    a retry with the same key and body gets this response again instead of acting twice."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of method, path and body
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow, index=True)


class UniqueClaim(Base):
    """A value of a `unique` field held by one live document (an invoice or receipt number).

    The unique index is what makes "at most one" true under concurrent requests: the second
    claim of a value waits for the first transaction and then fails, never both succeed.
    """

    __tablename__ = "unique_claims"
    __table_args__ = (UniqueConstraint("scope", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(200))  # flows sharing the register, and the field
    value: Mapped[str] = mapped_column(String(200))
    field: Mapped[str] = mapped_column(
        String(120)
    )  # where in the document, e.g. receipts.receipt_no
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), index=True)


class DocumentReference(Base):
    """One document referring to another (an invoice line billing a shipment), with what it takes.

    Kept in step with the referring document's data on create and edit and deleted when it ends
    void, so "what is already billed" is one indexed sum. The limit is checked with the
    referenced document's row locked, so two referrers never both take the last of it.
    """

    __tablename__ = "document_references"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), index=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), index=True)
    field: Mapped[str] = mapped_column(String(120))  # where in the referring document
    # What this reference takes from the target's limit, as exact decimal text (null: nothing).
    amount: Mapped[str | None] = mapped_column(String(40))


class Notification(Base):
    """A message, written in the same transaction as what it reports (a transactional outbox):
    shown in the app at once, and mailed by `worker` when mail is on.

    Personal (`user_id` set: a rejection, a delegation) or addressed to roles (`user_id` None,
    its roles in `notification_roles`, the people it must not reach in
    `notification_exclusions`): one row however many people hold the roles. Readers see the
    role rows for the roles they hold (`workflow.notify.recent`); the worker expands each
    notification into one `notification_deliveries` row per person (`expanded`)."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user", "user_id", "id"),
        Index("ix_notifications_expand", "expanded", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: to roles
    kind: Mapped[str] = mapped_column(String(32))  # task_waiting | rejected | …
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONData)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    # The worker wrote its delivery rows (one per person it reaches by mail).
    expanded: Mapped[bool] = mapped_column(default=False, server_default=false())
    role_rows: Mapped[list[NotificationRole]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )
    exclusions: Mapped[list[NotificationExclusion]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )
    # Not stored: whether the person reading it has read it (set by notify.recent).
    read = False


class NotificationRole(Base):
    """A role a notification is addressed to: every holder of the role sees it."""

    __tablename__ = "notification_roles"
    __table_args__ = (Index("ix_notification_roles_role", "role", "notification_id"),)

    notification_id: Mapped[int] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(32), primary_key=True)


class NotificationExclusion(Base):
    """Someone a role notification does not reach (the actor, the creator, the editors)."""

    __tablename__ = "notification_exclusions"

    notification_id: Mapped[int] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)


# SQLite cannot insert into three tables in one statement (PostgreSQL does it with
# data-modifying CTEs, `notify.ONE_STATEMENT`): a view whose INSTEAD OF trigger writes the
# notification, its roles and its exclusions (JSON arrays) makes it one statement there too, so
# an approval that announces a task stays within its round trips on both databases. Writers on
# SQLite are serialized, so the newest notification id is the one just written.
SQLITE_NOTIFY_TO_ROLES = (
    "CREATE VIEW IF NOT EXISTS notification_to_roles"
    " (kind, document_id, details, created_at, roles, exclude)"
    " AS SELECT NULL, NULL, NULL, NULL, NULL, NULL WHERE 0",
    "CREATE TRIGGER IF NOT EXISTS notification_to_roles_insert"
    " INSTEAD OF INSERT ON notification_to_roles BEGIN"
    " INSERT INTO notifications (kind, document_id, details, created_at, expanded)"
    " VALUES (NEW.kind, NEW.document_id, NEW.details, NEW.created_at, 0);"
    " INSERT INTO notification_roles (notification_id, role)"
    " SELECT (SELECT max(id) FROM notifications), value FROM json_each(NEW.roles);"
    " INSERT INTO notification_exclusions (notification_id, user_id)"
    " SELECT (SELECT max(id) FROM notifications), value FROM json_each(NEW.exclude);"
    " END",
)
for _statement in SQLITE_NOTIFY_TO_ROLES:
    event.listen(Base.metadata, "after_create", DDL(_statement).execute_if(dialect="sqlite"))


class NotificationDelivery(Base):
    """One notification's mail to one person: written by the worker when it expands the
    notification, then taken, mailed and marked under its row lock."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("notification_id", "user_id"),
        Index("ix_notification_deliveries_outbox", "email_state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # pending → sent, or failed after the retries; `off` when the worker runs without mail, for
    # people without an address or who opted out; `digest` waiting for the daily digest.
    email_state: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)


class DocumentSeen(Base):
    """When a person last opened a document, and what it was then: the task list marks what
    changed since (a new revision) or came back (resubmitted into the same review state). A
    reading aid, not a record: not audited, and gone with the document."""

    __tablename__ = "document_seen"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    document_id: Mapped[int] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    revision: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(40))
    review_round: Mapped[int] = mapped_column(Integer)
    seen_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)


class TaskClaim(Base):
    """ "I am on it": a reviewer's soft, expiring claim on a document. It never blocks anyone
    from acting; it only tells colleagues someone is already looking."""

    __tablename__ = "task_claims"

    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # A claim is on one step: it lapses when the document moves on (or a new round opens).
    state: Mapped[str] = mapped_column(String(40))
    round: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    until: Mapped[dt.datetime] = mapped_column(Timestamp)
    user: Mapped[User] = relationship(lazy="joined")


class DocumentCounter(Base):
    """The last number given out per flow and year; the create transaction bumps its row, so
    two concurrent creations never get the same number (the second waits for the first)."""

    __tablename__ = "document_counters"

    flow_name: Mapped[str] = mapped_column(String(40), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class ReportDocument(Base):
    """One row per document: the indexed columns the reports read (kept by workflow/report_index
    in the same transaction as every action), so no report scans the documents' JSON."""

    __tablename__ = "report_documents"
    __table_args__ = (
        # Each period filter is a range on one of these (all flows, or one flow); they also
        # hold what the counts and sums read, so a figure never visits the table itself.
        Index("ix_report_documents_created", "created_at", "flow", "amount_fen"),
        Index(
            "ix_report_documents_finished",
            "finished_at",
            "status",
            "flow",
            "created_at",
            "amount_fen",
        ),
        Index("ix_report_documents_flow_created", "flow", "created_at", "amount_fen"),
        Index(
            "ix_report_documents_flow_finished",
            "flow",
            "finished_at",
            "status",
            "created_at",
            "amount_fen",
        ),
        Index("ix_report_documents_contract", "contract_no", "flow"),
    )

    # No foreign keys on the report tables: they are derived (rebuildable from the audit log)
    # and must never stand in the way of the business tables.
    document_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    flow: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))  # open | completed | withdrawn
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    # When the document reached a final state (null while open).
    finished_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    # When the business step the flow exists for happened: shipped, invoice issued, paid.
    milestone_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    last_activity_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    # Money in fen (integer): exact on every database (SQLite stores Numeric as a float).
    amount_fen: Mapped[int | None] = mapped_column(BigInteger)
    contract_amount_fen: Mapped[int | None] = mapped_column(BigInteger)
    customer: Mapped[str | None] = mapped_column(String(200))
    contract_no: Mapped[str | None] = mapped_column(String(60))
    sales_rep: Mapped[str | None] = mapped_column(String(60))
    paid: Mapped[bool | None] = mapped_column()
    due_date: Mapped[str | None] = mapped_column(String(10))


class ReportStep(Base):
    """One pass of a document through a review state: entered, left, how (approved/rejected)."""

    __tablename__ = "report_steps"
    __table_args__ = (
        # Covering: the per-period figures read the index only.
        Index(
            "ix_report_steps_left", "left_at", "flow", "state", "outcome", "document_id", "seconds"
        ),
        Index("ix_report_steps_document", "document_id", "left_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(Integer)
    flow: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(40))
    entered_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    left_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    seconds: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str | None] = mapped_column(String(16))  # approved | rejected | moved
    reason: Mapped[str | None] = mapped_column(String(200))
    decided_by: Mapped[str | None] = mapped_column(String(64))


# Keeps the report tables in step with every flush that writes an audit event.
from workflow import report_index  # noqa: E402, F401
