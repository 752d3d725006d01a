"""One list of documents for every view of a reviewer's day: waiting for me (待办), what I acted
on (已办), what I created (我的单据) and everything I may see — the same filters, the same
visibility rule (`policy.can_see`, in SQL), an exact total and keyset pages that never stop
early and neither skip nor repeat a row while documents are added.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, case, column, false, func, literal, or_, select, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, defer

from workflow import delegation, numbering, policy, queries
from workflow.db import as_utc, utcnow
from workflow.errors import InvalidData
from workflow.models import AuditEvent, Document, FlowVersion, User
from workflow.process import DocumentProcess, compiled
from workflow.queries import (
    _cursor_id,
    _cursor_time,
    _limit,
    _task_condition,
    _task_states,
    decode_cursor,
    encode_cursor,
)

PARTS = ("all", "waiting", "acted", "created")
# Longest waiting first, newest first, largest amount first, soonest deadline first.
SORTS = ("waiting", "newest", "amount", "due")
NO_AMOUNT = Decimal(-1)  # documents without an amount sort after every amount (amounts are ≥ 0)
MAX_TEXT = 200


@dataclass(frozen=True)
class Filters:
    """What the list shows; every field is optional and they all combine with AND."""

    part: str = "all"
    flow: str | None = None
    state: str | None = None
    created_by: str | None = None  # a username
    since: dt.datetime | None = None  # created at or after
    until: dt.datetime | None = None  # created before
    q: str | None = None  # number, customer/title, order number, line products
    number: str | None = None  # the number only (FH-2026-000123, its digits, or the id)
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    sort: str = "waiting"

    @property
    def narrowed(self) -> bool:
        """Some filter beyond the part narrows the list (the sort only orders it)."""
        chosen = (self.flow, self.state, self.created_by, self.since, self.until)
        texts = (self.q, self.number)
        amounts = (self.amount_min, self.amount_max)
        return (
            any(chosen)
            or any(t is not None and t.strip() for t in texts)
            or any(a is not None for a in amounts)
        )


# Lists count what matches up to here and then say "more than": counting a million rows for a
# number nobody pages through cost more than the page itself (~0.2 s at 100k documents).
COUNT_CAP = 1000


@dataclass
class ListPage:
    items: list[DocumentProcess]
    next: str | None
    total: int
    extra: dict[str, Any] = field(default_factory=dict)
    total_exact: bool = True

    @property
    def total_label(self) -> str:
        """The count as a person reads it: `53`, or `1,000+` past the cap."""
        return str(self.total) if self.total_exact else f"{COUNT_CAP:,}+"


def _acted(user: User) -> ColumnElement[bool]:
    """The user acted on the document (an audit event with outcome ok): one probe per row, for
    the visibility rule, where it is one alternative of an OR."""
    return (
        select(AuditEvent.id)
        .where(
            AuditEvent.document_id == Document.id,
            AuditEvent.actor == user.username,
            AuditEvent.outcome == "ok",
        )
        .exists()
    )


def _acted_on(session: Session, user: User) -> ColumnElement[bool]:
    """已办: the documents the user acted on (not created), found from their events by actor
    (`ix_audit_events_actor`) — a semi-join, not a probe of every document: someone who acted
    on a few dozen documents made SQLite test all of them (0.3 s of a 0.7 s list at 100,000)."""
    ok = AuditEvent.outcome == "ok"
    if session.get_bind().dialect.name == "sqlite":
        # Not a term an index could serve: without statistics (a database never ANALYZEd)
        # SQLite takes `ix_audit_events_outcome_id` for `outcome = 'ok'` — nearly every event —
        # instead of the actor's few (0.6 s at 100,000 documents). PostgreSQL estimates it.
        ok = func.coalesce(AuditEvent.outcome, "") == "ok"
    acted = select(AuditEvent.document_id).where(
        AuditEvent.actor == user.username,
        ok,
        AuditEvent.action != "create",
        AuditEvent.document_id.is_not(None),
    )
    return Document.id.in_(acted)


def _versions(session: Session) -> list[tuple[FlowVersion, Any]]:
    versions = session.scalars(select(FlowVersion).options(defer(FlowVersion.yaml_text)))
    return [(v, compiled(v).spec) for v in versions]


def visible(session: Session, user: User) -> ColumnElement[bool]:
    """Rule `see` in SQL: the creator, a seeing role of the document's flow version, or the
    user acted on it (an audit event with outcome ok)."""
    if not user.active:
        return false()
    roles = delegation.effective_roles(session, user)  # a delegate sees what those roles see
    versions = _versions(session)
    seeing = [v.id for v, spec in versions if policy.seeing_roles(spec) & roles]
    if len(seeing) == len(versions):  # every flow (an auditor, the GM): no condition at all,
        return true()  # so the list walks an index in its order instead of testing each row
    return or_(
        Document.created_by_id == user.id,
        Document.flow_version_id.in_(seeing),
        _acted(user),
    )


def _text(value: Any) -> ColumnElement[str]:
    return func.lower(value.as_string())


def _line_column(field: Any) -> str | None:
    """The column of a table field that names the line: `product`, else its first text."""
    names = [c.name for c in field.columns if c.type == "string"]
    return "product" if "product" in names else (names[0] if names else None)


def _lines(session: Session, ids: list[int], table: str, name: str, needle: str) -> Any:
    """Some row of table field `table` has `needle` in its column `name` (case-insensitive)."""
    if session.get_bind().dialect.name == "postgresql":
        rows = Document.data[table]
        array = case((func.jsonb_typeof(rows) == "array", rows), else_=literal("[]", JSONB))
        row = func.jsonb_array_elements(array).table_valued(column("value", JSONB)).alias("line")
        text = row.c.value[name].astext
    else:
        row = func.json_each(Document.data, f"$.{table}").table_valued("value").alias("line")
        text = func.json_extract(row.c.value, f"$.{name}")
    found = select(literal(1)).select_from(row).where(func.lower(text).contains(needle))
    return and_(Document.flow_version_id.in_(ids), found.exists())


def _search(session: Session, text: str) -> ColumnElement[bool]:
    """Free text over the number, the customer/title field (the first text field of each flow
    version), the order number and the lines' products (a table's `product` column, else its
    first text column)."""
    text = text.strip()[:MAX_TEXT]
    needle = text.lower()
    conditions = [numbering.number_condition(text)]
    by_field: dict[str, list[int]] = {}
    for version, spec in _versions(session):
        titles = [f.name for f in spec.fields if f.type == "string"][:1]
        for name in {*titles, *(["order_no"] if spec.field("order_no") else [])}:
            by_field.setdefault(name, []).append(version.id)
    by_line: dict[tuple[str, str], list[int]] = {}
    for version, spec in _versions(session):
        for table in (f for f in spec.fields if f.type == "table"):
            line = _line_column(table)
            if line:
                by_line.setdefault((table.name, line), []).append(version.id)
    for name, ids in by_field.items():
        conditions.append(
            and_(Document.flow_version_id.in_(ids), _text(Document.data[name]).contains(needle))
        )
    for (table, line), ids in by_line.items():
        conditions.append(_lines(session, ids, table, line, needle))
    return or_(*conditions)


def _amount_fields(session: Session) -> dict[str, list[int]]:
    """Each version's amount field (`amount`, else its first decimal) → the versions' ids."""
    by_field: dict[str, list[int]] = {}
    for version, spec in _versions(session):
        decimals = [f.name for f in spec.fields if f.type == "decimal"]
        if decimals:
            name = "amount" if "amount" in decimals else decimals[0]
            by_field.setdefault(name, []).append(version.id)
    return by_field


def amount_value(session: Session) -> ColumnElement[Decimal]:
    """The document's amount as a number (NO_AMOUNT when it has none), for sorting."""
    whens = [
        (Document.flow_version_id.in_(ids), Document.data[name].as_numeric(20, 2))
        for name, ids in _amount_fields(session).items()
    ]
    value = case(*whens, else_=None) if whens else literal(None)
    return func.coalesce(value, NO_AMOUNT)


def _amount(session: Session, low: Decimal | None, high: Decimal | None) -> ColumnElement[bool]:
    """The amount range over each version's amount field (`amount`, else its first decimal)."""
    by_field = _amount_fields(session)
    conditions = []
    for name, ids in by_field.items():
        value = Document.data[name].as_numeric(20, 2)
        bounds = [Document.flow_version_id.in_(ids), value.is_not(None)]
        if low is not None:
            bounds.append(value >= low)
        if high is not None:
            bounds.append(value <= high)
        conditions.append(and_(*bounds))
    return or_(*conditions) if conditions else false()


def condition(
    session: Session, user: User, filters: Filters, see: bool = True
) -> ColumnElement[bool]:
    """Every filter, and the visibility rule (unless `see` is False), as one SQL condition."""
    if filters.part not in PARTS:
        raise InvalidData({"part": [f"must be one of {', '.join(PARTS)}"]})
    parts = [visible(session, user) if see else true()]
    if filters.part == "waiting":
        states = _task_states(session, user)
        if not user.active or policy.reads_only(user) or not states:
            return false()
        parts.append(_task_condition(user.id, states))
    elif filters.part == "acted":
        parts.append(_acted_on(session, user))
    elif filters.part == "created":
        parts.append(Document.created_by_id == user.id)
    if filters.flow:
        parts.append(Document.flow_name == filters.flow)
    if filters.state:
        parts.append(Document.state == filters.state)
    if filters.created_by:
        creator = select(User.id).where(User.username == filters.created_by).scalar_subquery()
        parts.append(Document.created_by_id == creator)
    if filters.since:
        parts.append(Document.created_at >= filters.since)
    if filters.until:
        parts.append(Document.created_at < filters.until)
    if filters.q and filters.q.strip():
        parts.append(_search(session, filters.q))
    if filters.number and filters.number.strip():
        parts.append(numbering.number_condition(filters.number[:MAX_TEXT]))
    if filters.amount_min is not None or filters.amount_max is not None:
        parts.append(_amount(session, filters.amount_min, filters.amount_max))
    return and_(*parts)


def _page_ids(
    session: Session, where: ColumnElement[bool], sort: str, limit: int, cursor: str | None
) -> tuple[list[int], str | None]:
    """One page's ids in the chosen order, and the next cursor; the documents themselves are
    loaded afterwards, for those ids only."""
    if sort == "waiting":
        return _waiting_page(session, where, limit, cursor)
    if sort == "amount":  # largest first: (amount, id) descending
        value = amount_value(session)
        stmt = select(Document.id, value).where(where)
        after = decode_cursor(cursor, 2)
        if after:
            amount, last = _cursor_amount(after[0]), _cursor_id(after[1])
            stmt = stmt.where(or_(value < amount, and_(value == amount, Document.id < last)))
        stmt = stmt.order_by(value.desc(), Document.id.desc())
    elif sort == "due":  # soonest deadline first, those without one last
        undated = case((Document.due_at.is_(None), 1), else_=0)
        stmt = select(Document.id, Document.due_at).where(where)
        after = decode_cursor(cursor, 3)
        if after:
            last = _cursor_id(after[2])
            if after[0]:
                stmt = stmt.where(Document.due_at.is_(None), Document.id > last)
            else:
                due = as_utc(_cursor_time(after[1]))
                stmt = stmt.where(
                    or_(
                        Document.due_at.is_(None),
                        Document.due_at > due,
                        and_(Document.due_at == due, Document.id > last),
                    )
                )
        stmt = stmt.order_by(undated, Document.due_at, Document.id)
    else:  # newest first: ids only grow, so new documents never shift a later page
        stmt = select(Document.id).where(where)
        after = decode_cursor(cursor, 1)
        if after:
            stmt = stmt.where(Document.id < _cursor_id(after[0]))
        stmt = stmt.order_by(Document.id.desc())
    rows = session.execute(stmt.limit(limit + 1)).all()
    next_cursor = None
    if len(rows) > limit:
        row = rows[limit - 1]
        if sort == "amount":
            next_cursor = encode_cursor(str(row[1]), row.id)  # Numeric(20, 2): a Decimal
        elif sort == "due":
            due = row.due_at
            next_cursor = encode_cursor(due is None, as_utc(due) if due else 0, row.id)
        else:
            next_cursor = encode_cursor(row.id)
    return [r[0] for r in rows[:limit]], next_cursor


def _waiting_page(
    session: Session, where: ColumnElement[bool], limit: int, cursor: str | None
) -> tuple[list[int], str | None]:
    """Overdue first, then longest waiting: the inbox's tiers and keys (`queries.task_tiers`,
    `TaskKey`), one query per tier — the few overdue documents found by deadline and sorted,
    the rest ordered by (entered_at, id) alone, so it walks `ix_documents_entered` and stops when
    the page is full (an ORDER BY on the late flag itself would sort every matching row)."""
    after = queries.TaskKey.decode(cursor)
    now = after.now if after is not None else utcnow()
    tiers = queries.task_tiers(now)
    found: list[queries.TaskKey] = []
    for tier, tier_condition in enumerate(tiers):
        if after is not None and tier < after.tier:
            continue
        conditions = [where, *queries.in_tier(tiers, tier)]
        if after is not None and tier == after.tier:
            conditions.append(queries.after_key(after))
        want = limit + 1 - len(found)
        if tier_condition is not None:  # overdue: few documents, found by deadline, then ordered
            stmt = queries.few_in_entry_order(session, and_(*conditions), want)
        else:
            stmt = (
                select(Document.entered_at, Document.id)
                .where(*conditions)
                .order_by(Document.entered_at, Document.id)
                .limit(want)
            )
        rows = session.execute(stmt)
        found += [queries.TaskKey(now, tier, as_utc(at), doc_id) for at, doc_id in rows]
        if len(found) > limit:
            break
    next_cursor = found[limit - 1].encode() if len(found) > limit else None
    return [key.id for key in found[:limit]], next_cursor


def documents(
    session: Session,
    user: User,
    filters: Filters = Filters(),
    limit: int | None = None,
    cursor: str | None = None,
) -> ListPage:
    """One page of the documents `user` may see that match `filters`, with the total: exact
    up to COUNT_CAP, beyond it COUNT_CAP + 1 and `total_exact` false ("more than 1,000")."""
    if filters.sort not in SORTS:
        raise InvalidData({"sort": [f"must be one of {', '.join(SORTS)}"]})
    limit = _limit(limit)
    states = None
    if filters.part == "waiting" and user.active and not policy.reads_only(user):
        states = _task_states(session, user) or None
    next_cursor = None
    if states is not None:
        # Counted and paged per (flow version, state) pair, one index range each. The filters
        # alone: whoever can act on a document sees it (policy.seeing_roles holds every role
        # that reviews or moves it, and owner-only states are the creator's). Without filters
        # the statements are the inbox's own, built once and reused.
        others = None
        if filters.narrowed:
            others = condition(session, user, replace(filters, part="all"), see=False)
        total = queries.task_count(session, user, states, others, cap=COUNT_CAP)
        if not total:  # counted over the same branches the pages read: nothing to page
            ids = []
        elif filters.sort == "waiting":
            keys = queries.task_keys(
                session, user, states, limit + 1, queries.TaskKey.decode(cursor), others
            )
            if len(keys) > limit:
                next_cursor = keys[limit - 1].encode()
            ids = [k.id for k in keys[:limit]]
        else:  # the pairs are known: `condition` would read them again
            seen = condition(session, user, replace(filters, part="all"))
            where = and_(seen, _task_condition(user.id, states))
            ids, next_cursor = _page_ids(session, where, filters.sort, limit, cursor)
    else:
        where = condition(session, user, filters)
        matching = select(Document.id).where(where).limit(COUNT_CAP + 1).subquery()
        total = session.scalar(select(func.count()).select_from(matching)) or 0
        ids, next_cursor = _page_ids(session, where, filters.sort, limit, cursor)
    rows = queries.load_documents(session, ids)
    processes = DocumentProcess.prefetch(session, rows)
    return ListPage(processes, next_cursor, total, total_exact=total <= COUNT_CAP)


def _cursor_amount(value: Any) -> Decimal:
    """A cursor's amount part: decimal text within the range of money; else a bad request."""
    try:
        amount = Decimal(value) if isinstance(value, str) and len(value) <= 30 else None
    except ArithmeticError:
        amount = None
    if amount is None or not amount.is_finite() or abs(amount) >= 10**15:
        raise InvalidData({"cursor": ["is not a cursor this server gave out"]})
    return amount
