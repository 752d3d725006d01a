"""Read paths: inbox, my documents, history, audit search, overdue — with their indexes in mind."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.orm import Session, defer, joinedload

from workflow import deadlines, delegation, policy
from workflow.calendar import CHINA
from workflow.db import as_utc, utcnow
from workflow.errors import InvalidData
from workflow.models import (
    Attachment,
    AuditEvent,
    Document,
    DocumentRevision,
    FlowVersion,
    Review,
    TaskClaim,
    User,
)
from workflow.process import PERSON_COLUMNS, DocumentProcess, compiled
from workflow.services import get_document, list_flows

MAX_PAGE = 200
BLIND_ACTIONS = ("approve", "reject", "comment")


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next: str | None


def encode_cursor(*values: Any) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, dt.datetime) else v for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, arity: int) -> list[Any] | None:
    if not cursor:
        return None
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError) as exc:
        raise InvalidData({"cursor": ["is not a cursor this server gave out"]}) from exc
    if not isinstance(values, list) or len(values) != arity:
        raise InvalidData({"cursor": ["is not a cursor this server gave out"]})
    return values


def _cursor_id(value: Any) -> int:
    """A cursor's id part: a forged cursor is a bad request, never a database error."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise InvalidData({"cursor": ["is not a cursor this server gave out"]})
    return value


def _cursor_time(value: Any) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise InvalidData({"cursor": ["is not a cursor this server gave out"]}) from exc


def _limit(limit: int | None, default: int = 50) -> int:
    if limit is None:
        return default
    if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidData({"limit": [f"must be between 1 and {MAX_PAGE}"]})
    return limit


# The pairs of a `_TaskStates` as one hashable value: what a cached statement is built for.
Shape = tuple[tuple[tuple[int, str], ...], ...]


@dataclass
class _TaskStates:
    """(flow_version_id, state) pairs where a user's roles can act, by the kind of rule."""

    review: list[tuple[int, str]]  # review states: four-eyes rules apply
    review_relaxed: list[tuple[int, str]]  # … that allow earlier reviewers
    shared: list[tuple[int, str]]  # transitions anyone with the role may take
    owned: list[tuple[int, str]]  # transitions of owner-only states: the creator's alone

    def __bool__(self) -> bool:
        return bool(self.review or self.review_relaxed or self.shared or self.owned)

    def shape(self) -> Shape:
        """The pairs as one hashable value: what a cached statement is built for."""
        return tuple(tuple(pairs) for pairs in (self.review, self.review_relaxed, self.shared,
                                                 self.owned))  # fmt: skip

    @classmethod
    def from_shape(cls, shape: Shape) -> _TaskStates:
        return cls(*(list(pairs) for pairs in shape))


def _task_states(session: Session, user: User) -> _TaskStates:
    found = _TaskStates([], [], [], [])
    roles = delegation.effective_roles(session, user)  # a delegate's tasks are theirs too
    versions = session.scalars(select(FlowVersion).options(defer(FlowVersion.yaml_text)))
    for version in versions:
        spec = compiled(version).spec
        for state in spec.states:
            pair = (version.id, state.name)
            if state.review is not None:
                if set(state.review.roles) & roles:
                    relaxed = state.review.allow_earlier_reviewers
                    (found.review_relaxed if relaxed else found.review).append(pair)
                continue
            if any(set(t.roles) & roles for t in spec.transitions_from(state.name)):
                (found.owned if state.owner_only else found.shared).append(pair)
    return found


# Who a rule is about: a user's id, or a bound parameter of a statement built once (`task_keys`).
UserId = int | ColumnElement[Any]


def _reviewer(user_id: UserId) -> ColumnElement[bool]:
    """Four eyes in SQL: not the creator, not who moved it here, never edited it, and has not
    decided in this round."""
    decided = (
        select(Review.id)
        .where(
            Review.document_id == Document.id,
            Review.user_id == user_id,
            Review.state == Document.state,
            Review.round == Document.review_round,
        )
        .exists()
    )
    edited = (
        select(DocumentRevision.id)
        .where(DocumentRevision.document_id == Document.id, DocumentRevision.author_id == user_id)
        .exists()
    )
    return and_(
        Document.created_by_id != user_id,
        Document.entered_by_id != user_id,
        ~edited,
        ~decided,
    )


def _approved_elsewhere(user_id: UserId) -> ColumnElement[bool]:
    return (
        select(Review.id)
        .where(
            Review.document_id == Document.id,
            Review.user_id == user_id,
            Review.decision == "approve",
            Review.state != Document.state,
        )
        .exists()
    )


def _task_condition(user_id: UserId, states: _TaskStates) -> ColumnElement[bool]:
    """The inbox rules in SQL: a document is a task of `user` only if the engine could let
    them act on it. Rules SQL cannot see (require_each_role, guards on routes) are applied to
    the few rows this lets through, by the engine itself."""
    pair = tuple_(Document.flow_version_id, Document.state)
    return or_(
        *(
            and_(pair.in_(pairs), rule) if rule is not None else pair.in_(pairs)
            for pairs, rule in _task_rules(user_id, states)
        )
    )


def _task_rules(
    user_id: UserId, states: _TaskStates
) -> list[tuple[list[tuple[int, str]], ColumnElement[bool] | None]]:
    """(pairs, the rule a document in one of those pairs must meet) for each kind of state."""
    reviewer = _reviewer(user_id)
    rules: list[tuple[list[tuple[int, str]], ColumnElement[bool] | None]] = []
    if states.review:
        rules.append((states.review, and_(reviewer, ~_approved_elsewhere(user_id))))
    if states.review_relaxed:
        rules.append((states.review_relaxed, reviewer))
    if states.shared:
        rules.append((states.shared, None))
    if states.owned:
        rules.append((states.owned, Document.created_by_id == user_id))
    return rules


# The order of the inbox and of every "waiting" list: overdue first, then longest waiting, as
# (tier, entered_at, id). Each tier is a condition on the document (None: the rest); a tier's
# documents all come before the next tier's. The few overdue documents are found by deadline and
# sorted (`few_in_entry_order`); the rest walk an index in (entered_at, id) order.
def task_tiers(now: dt.datetime | ColumnElement[Any]) -> list[ColumnElement[bool] | None]:
    """The inbox's tiers, in order: work past its deadline (`due_at`), then the rest."""
    # Null-safe, as later tiers are "not an earlier tier": a document without a deadline is
    # never late, and NOT (NULL <= now) would lose it.
    return [and_(Document.due_at.is_not(None), Document.due_at <= now), None]


def in_tier(tiers: list[ColumnElement[bool] | None], tier: int) -> list[ColumnElement[bool]]:
    """What puts a document in tier `tier`: its own condition and none of the tiers before it."""
    own = tiers[tier]
    return ([own] if own is not None else []) + [~c for c in tiers[:tier] if c is not None]


# SQLite learned `AS MATERIALIZED` in 3.35 (2021); an older library runs the same query unfenced.
_SQLITE_MATERIALIZES = sqlite3.sqlite_version_info >= (3, 35)


def few_in_entry_order(
    session: Session, where: ColumnElement[bool], limit: int | ColumnElement[Any]
) -> Select[Any]:
    """(entered_at, id) of the first `limit` documents matching `where` in (entered_at, id)
    order, for a condition an index narrows to few rows: the overdue tier (`ix_documents_due`).

    The matching rows are found first and then sorted. Asked for in that order directly, SQLite
    takes the index that gives the order and tests every document — the whole table when none
    is late (55 ms of a 78 ms list at 100,000 documents). A materialized CTE keeps the two
    steps apart on both databases."""
    return _few_in_entry_order(session.get_bind().dialect.name, where, limit)


def _few_in_entry_order(
    dialect: str, where: ColumnElement[bool], limit: int | ColumnElement[Any]
) -> Select[Any]:
    cte = select(Document.id, Document.entered_at).where(where).cte("few")
    if dialect != "sqlite" or _SQLITE_MATERIALIZES:
        cte = cte.prefix_with("MATERIALIZED")
    return select(cte.c.entered_at, cte.c.id).order_by(cte.c.entered_at, cte.c.id).limit(limit)


@dataclass(frozen=True)
class TaskKey:
    """Where a page of tasks stops: the page's `now` (so pages agree on what is late) and the
    last row's (tier, entered_at, id)."""

    now: dt.datetime
    tier: int
    at: dt.datetime
    id: int

    def encode(self) -> str:
        return encode_cursor(as_utc(self.now), self.tier, as_utc(self.at), self.id)

    @classmethod
    def decode(cls, cursor: str | None) -> TaskKey | None:
        if not cursor:
            return None
        values = decode_cursor(cursor, 4)
        assert values is not None
        now, at = as_utc(_cursor_time(values[0])), as_utc(_cursor_time(values[2]))
        return cls(now, _cursor_id(values[1]), at, _cursor_id(values[3]))


def after_key(key: TaskKey) -> ColumnElement[bool]:
    """(entered_at, id) > the key's, written so an index on (…, entered_at, id) seeks to it."""
    return _after(key.at, key.id)


def _after(at: Any, doc_id: Any) -> ColumnElement[bool]:
    return and_(Document.entered_at >= at, or_(Document.entered_at > at, Document.id > doc_id))


def task_keys(
    session: Session,
    user: User,
    states: _TaskStates,
    limit: int,
    after: TaskKey | None = None,
    where: ColumnElement[bool] | None = None,
    now: dt.datetime | None = None,
) -> list[TaskKey]:
    """The next `limit` task keys of `user` in the inbox's order, by the inbox rules in SQL.

    The overdue tier is found by deadline and sorted (`few_in_entry_order`). The rest: one
    branch per (flow version, state) pair the user can act in, each an ordered, limited range
    of `ix_documents_task_order` (flow_version_id, state, entered_at, id), merged: the cost
    follows the page size and the number of pairs, not the backlog, and a reviewer who already
    decided many open documents only skips those of the ranges read.

    Without `where` (the inbox) each tier's statement is built once per set of pairs and
    reused with the user, the time and the cursor as parameters: building a union of a dozen
    branches took longer than PostgreSQL took to run it.
    """
    now = after.now if after is not None else (now or dt.datetime.now(dt.UTC))
    dialect = session.get_bind().dialect.name
    params: dict[str, Any] = {"user_id": user.id, "now": now, "branch_limit": limit}
    if after is not None:
        params |= {"after_at": after.at, "after_id": after.id}
    found: list[TaskKey] = []
    tiers = task_tiers  # the order's tiers, passed on: statements are cached per kind of tiers
    for tier in range(len(tiers(now))):  # one query per tier, until the page is full
        if after is not None and tier < after.tier:
            continue
        from_after = after is not None and tier == after.tier
        if where is None:
            stmt = _cached_tier_keys(tiers, states.shape(), tier, from_after, dialect)
        else:
            stmt = _tier_keys(tiers, states.shape(), tier, from_after, dialect, where)
        if stmt is None:  # no pair to act in
            return []
        rows = session.execute(stmt, {**params, "page_limit": limit - len(found)})
        found += [TaskKey(now, tier, as_utc(at), doc_id) for at, doc_id in rows]
        if len(found) >= limit:
            break
    return found


def _tier_keys(
    tiers_at: Callable[[Any], list[ColumnElement[bool] | None]],
    shape: Shape,
    tier: int,
    from_after: bool,
    dialect: str,
    where: ColumnElement[bool] | None = None,
) -> Select[Any] | None:
    """(entered_at, id) of one tier's next tasks, in order (`tiers_at`: `task_tiers`):
    parameters `user_id`, `now`, `page_limit`, `branch_limit` and, `from_after`, `after_at`
    and `after_id`."""
    states = _TaskStates.from_shape(shape)
    user_id = bindparam("user_id", type_=Integer)
    tiers = tiers_at(bindparam("now", type_=Document.due_at.type))
    # The limits are written into the SQL at execution (`literal_execute`), the other values
    # stay parameters. psycopg prepares a statement on its 5th use; PostgreSQL then keeps a
    # generic plan only if it costs no more than the custom ones, and a LIMIT it cannot see
    # is costed as 10 % of the rows, so the union was planned anew each time (4.7 of 7 ms
    # for the busy reviewer at 1M). With the limit in sight the generic plan wins on cost.
    page_limit = bindparam("page_limit", type_=Integer, literal_execute=True)
    conditions = in_tier(tiers, tier)
    if where is not None:
        conditions.append(where)
    if from_after:
        at = bindparam("after_at", type_=Document.entered_at.type)
        conditions.append(_after(at, bindparam("after_id", type_=Integer)))
    if tiers[tier] is not None:  # overdue: few documents, found by their deadline
        if not states:
            return None
        late = and_(*conditions, _task_condition(user_id, states))
        return _few_in_entry_order(dialect, late, page_limit)
    branches = []
    for pairs, rule in _task_rules(user_id, states):
        for version_id, state in pairs:
            stmt = select(Document.entered_at, Document.id).where(
                Document.flow_version_id == version_id, Document.state == state, *conditions
            )
            if rule is not None:
                stmt = stmt.where(rule)
            ordered = stmt.order_by(Document.entered_at, Document.id).limit(
                bindparam("branch_limit", type_=Integer, literal_execute=True)
            )
            branches.append(select(ordered.subquery()))
    if not branches:
        return None
    merged = union_all(*branches).subquery() if len(branches) > 1 else branches[0].subquery()
    # Ordered like every branch, so PostgreSQL merges them (Merge Append) and stops each
    # branch as soon as the page is full.
    return (
        select(merged.c.entered_at, merged.c.id)
        .order_by(merged.c.entered_at, merged.c.id)
        .limit(page_limit)
    )


_cached_tier_keys = functools.lru_cache(maxsize=256)(_tier_keys)


def task_count(
    session: Session,
    user: User,
    states: _TaskStates,
    where: ColumnElement[bool] | None,
    cap: int,
) -> int:
    """How many tasks `user` has (matching `where`), exact up to `cap` (then `cap` + 1: "more
    than `cap`"): one branch per (flow version, state) pair, each over that pair's range of
    ix_documents_task_order — never one scan of every document with the pairs ORed together.

    The branches are read one after another until `cap` + 1 rows are found in all (a LIMIT
    over the UNION ALL), not `cap` + 1 per pair: for a reviewer who already decided
    most of the open documents, each row found costs several skipped ones, and reading every
    pair to its own cap cost ~1.2 s at a million documents.

    Without `where` the statement is built once per set of pairs (as `task_keys`' are)."""
    if where is None:
        stmt = _cached_task_count(states.shape())
    else:
        stmt = _task_count(states.shape(), where)
    if stmt is None:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        # A capped count is small by design, and PostgreSQL read it with parallel workers,
        # whose start-up cost more than the count itself (at 100k documents, 14-21 ms with
        # them, 4-8 ms without). For the rest of this read's transaction only.
        session.execute(_SERIAL)
    return int(session.scalar(stmt, {"user_id": user.id, "cap": cap + 1}) or 0)


_SERIAL = text("SET LOCAL max_parallel_workers_per_gather = 0")


def _task_count(shape: Shape, where: ColumnElement[bool] | None = None) -> Select[Any] | None:
    """`task_count`'s statement; parameters `user_id` and `cap` (how many rows to count at
    most)."""
    states = _TaskStates.from_shape(shape)
    cap = bindparam("cap", type_=Integer)
    # Pairs without a rule first: each of their rows costs one index entry, while a review
    # pair's rows are probed for four eyes and, for a reviewer who decided most of them, each
    # found costs several skipped. The count stops at `cap`, so the cheap rows are read first.
    rules = sorted(_task_rules(bindparam("user_id", type_=Integer), states), key=_has_rule)
    branches = []
    for pairs, rule in rules:
        for version_id, state in pairs:
            stmt = select(Document.id).where(
                Document.flow_version_id == version_id, Document.state == state
            )
            if rule is not None:
                stmt = stmt.where(rule)
            if where is not None:
                stmt = stmt.where(where)
            branches.append(stmt)
    if not branches:
        return None
    found = union_all(*branches).limit(cap).subquery()
    return select(func.count()).select_from(found)


_cached_task_count = functools.lru_cache(maxsize=256)(_task_count)


def _has_rule(kind: tuple[list[tuple[int, str]], ColumnElement[bool] | None]) -> bool:
    return kind[1] is not None


def load_documents(session: Session, ids: list[int]) -> list[Document]:
    """Documents by id, in that order, for a list: the creator's and a claimant's names only
    (no password hashes, no roles), the flow version without its YAML."""
    if not ids:
        return []
    found = {d.id: d for d in session.scalars(_documents_by_id(), {"ids": ids})}
    return [found[i] for i in ids if i in found]


@functools.cache
def _documents_by_id() -> Select[Any]:
    """`load_documents`'s statement, built once (parameter: `ids`)."""
    return (
        select(Document)
        .where(Document.id.in_(bindparam("ids", expanding=True)))
        .options(
            joinedload(Document.created_by).load_only(*PERSON_COLUMNS).lazyload(User.role_rows),
            joinedload(Document.flow_version).defer(FlowVersion.yaml_text),
            joinedload(Document.claim)
            .joinedload(TaskClaim.user)
            .load_only(*PERSON_COLUMNS)
            .lazyload(User.role_rows),
        )
    )


def late_first(now: dt.datetime) -> ColumnElement[int]:
    """The inbox's leading order term: 0 for work past its deadline (`due_at`), 1 otherwise."""
    return case((Document.due_at <= now, 0), else_=1)


def late_flag(document: Document, now: dt.datetime) -> int:
    """`late_first` of a loaded row (for the next page's cursor)."""
    return 0 if document.due_at is not None and as_utc(document.due_at) <= now else 1


def after_in_inbox(
    now: dt.datetime, flag: int, at: dt.datetime, last_id: int
) -> ColumnElement[bool]:
    """Rows after (flag, entered_at, id) in the inbox order (keyset pages)."""
    late = late_first(now)
    later = or_(Document.entered_at > at, and_(Document.entered_at == at, Document.id > last_id))
    return or_(late > flag, and_(late == flag, later))


def inbox(
    session: Session, user: User, limit: int | None = None, cursor: str | None = None
) -> Page:
    """Documents where `user` has an action now: overdue ones first, then longest-waiting
    first (keyset pages; the cursor keeps the page's `now`, so pages agree on what is late)."""
    limit = _limit(limit)
    after = TaskKey.decode(cursor)
    if not user.active or policy.reads_only(user):
        return Page([], None)
    states = _task_states(session, user)
    if not states:
        return Page([], None)
    items: list[DocumentProcess] = []
    more = False
    while len(items) < limit:
        want = limit - len(items)
        keys = task_keys(session, user, states, want + 1, after)
        more = len(keys) > want
        keys = keys[:want]
        batch = load_documents(session, [k.id for k in keys])
        # The engine's own word on each candidate (rules SQL cannot see); rarely drops one.
        items.extend(p for p in DocumentProcess.prefetch(session, batch) if p.actions_for(user))
        if keys:
            after = keys[-1]
        if not more:
            break
    next_cursor = after.encode() if more and after is not None else None
    return Page(items, next_cursor)


def my_documents(session: Session, user: User, limit: int = 100) -> list[DocumentProcess]:
    """Documents started by `user`, newest first."""
    stmt = (
        select(Document)
        .where(Document.created_by_id == user.id)
        .order_by(Document.id.desc())
        .limit(limit)
    )
    return [DocumentProcess(session, d) for d in session.scalars(stmt)]


def history(session: Session, document_id: int, user: User) -> list[AuditEvent]:
    """The audit events of one document, oldest first (NotFound if the user may not see it)."""
    process = get_document(session, document_id, user)
    events = list(
        session.scalars(
            select(AuditEvent).where(AuditEvent.document_id == document_id).order_by(AuditEvent.id)
        )
    )
    return _unblinded(events, process, user)


def comments(session: Session, process: DocumentProcess, user: User) -> list[AuditEvent]:
    """The comments (questions without an action) on a document the user sees, oldest first;
    in a blind review the others' comments of the current round stay hidden."""
    events = list(
        session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.document_id == process.document.id,
                AuditEvent.action == "comment",
                AuditEvent.outcome == "ok",
            )
            .order_by(AuditEvent.id)
        )
    )
    return _unblinded(events, process, user)


def _unblinded(events: list[AuditEvent], process: DocumentProcess, user: User) -> list[AuditEvent]:
    if policy.sees_decisions(user, process):
        return events
    # A blind review: the others' decisions and comments of this round stay hidden.
    document = process.document
    since = as_utc(document.entered_at)
    return [
        e
        for e in events
        if not (
            e.action in BLIND_ACTIONS
            and e.from_state == document.state
            and as_utc(e.at) >= since
            and e.actor != user.username
        )
    ]


def attachments(session: Session, process: DocumentProcess) -> list[Attachment]:
    """The files attached to a document the caller sees (loaded already), oldest first."""
    return list(
        session.scalars(
            select(Attachment)
            .where(Attachment.document_id == process.document.id)
            .order_by(Attachment.id)
        )
    )


def audit_events(
    session: Session,
    user: User,
    *,
    flow: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Page:
    """Audit search for auditors, oldest first, by id cursor."""
    policy.can_audit(user).enforce()
    limit = _limit(limit, 100)
    stmt = select(AuditEvent).order_by(AuditEvent.id)
    for column, value in (
        (AuditEvent.flow, flow),
        (AuditEvent.actor, actor),
        (AuditEvent.action, action),
    ):
        if value:
            stmt = stmt.where(column == value)
    if since:
        stmt = stmt.where(AuditEvent.at >= since)
    if until:
        stmt = stmt.where(AuditEvent.at < until)
    after = decode_cursor(cursor, 1)
    if after:
        stmt = stmt.where(AuditEvent.id > _cursor_id(after[0]))
    rows = list(session.scalars(stmt.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1].id) if more else None)


def overdue(session: Session, today: dt.date | None = None) -> list[DocumentProcess]:
    """Documents past their flow's overdue date in one of its overdue states."""
    today = today or dt.date.today()
    result = []
    for version in session.scalars(select(FlowVersion)):
        spec = compiled(version).spec
        if spec.overdue is None:
            continue
        stmt = select(Document).where(
            Document.flow_version_id == version.id, Document.state.in_(spec.overdue.states)
        )
        processes = (DocumentProcess(session, d) for d in session.scalars(stmt))
        result.extend(p for p in processes if is_overdue(p, today))
    return result


def is_overdue(
    process: DocumentProcess, today: dt.date | None = None, now: dt.datetime | None = None
) -> bool:
    """Past the deadline of its current state (`documents.due_at`: an `sla`, or the `overdue`
    date field); documents from before due_at existed fall back to the date field."""
    due = process.document.due_at
    if due is not None:
        if today is not None:
            now = dt.datetime.combine(today, dt.time(), CHINA).astimezone(dt.UTC)
        return as_utc(due) <= (now or utcnow())
    spec = process.spec.overdue
    if spec is None or process.document.state not in spec.states:
        return False
    value = process.document.data.get(spec.field)
    return bool(value) and value < (today or dt.date.today()).isoformat()


@dataclass(frozen=True)
class OverdueItem:
    """One row of the overdue deposits list: the document, since when, and how much."""

    process: DocumentProcess
    due_date: dt.date
    days_overdue: int
    amount: Decimal | None
    title: str = ""


def overdue_deposits(
    session: Session, user: User, now: dt.datetime | None = None, limit: int = 500
) -> list[OverdueItem]:
    """Documents past their `overdue` date (tender deposits not refunded), most overdue first,
    for 内勤 and 财务 (rule `overdue_list`). Reads `documents.due_at` through its index."""
    policy.can_see_overdue_list(user).enforce()
    now = now or utcnow()
    dated = []
    for version in session.scalars(select(FlowVersion).options(defer(FlowVersion.yaml_text))):
        spec = compiled(version).spec
        if spec.overdue is not None:
            dated.extend(tuple_(version.id, state) for state in spec.overdue.states)
    if not dated:
        return []
    stmt = (
        select(Document)
        .where(
            Document.due_at.is_not(None),
            Document.due_at <= now,
            tuple_(Document.flow_version_id, Document.state).in_(dated),
        )
        .order_by(Document.due_at, Document.id)
        .limit(limit)
    )
    items = []
    for process in DocumentProcess.prefetch(session, list(session.scalars(stmt))):
        found = deadlines.deadline_of(process.spec, process.document)
        if found is None or found.date is None:
            continue
        days = deadlines.days_overdue(found, now)
        items.append(OverdueItem(process, found.date, days, amount_of(process), title_of(process)))
    return items


# --- presentation helpers for the web inbox (read-only, no Flask) --------------------------------
def revisions(session: Session, document_id: int, user: User) -> list[DocumentRevision]:
    """Every stored revision of a document, oldest first (NotFound if the user may not see it)."""
    get_document(session, document_id, user)
    return list(
        session.scalars(
            select(DocumentRevision)
            .where(DocumentRevision.document_id == document_id)
            .order_by(DocumentRevision.number)
        )
    )


def field_diff(
    process: DocumentProcess, old: dict[str, Any], new: dict[str, Any]
) -> list[tuple[str, Any, Any]]:
    """(field name, old value, new value) for each field that differs, in definition order."""
    return [
        (f.name, old.get(f.name), new.get(f.name))
        for f in process.spec.fields
        if old.get(f.name) != new.get(f.name)
    ]


def title_of(process: DocumentProcess) -> str:
    """The document's customer/title: its first string field's value."""
    for f in process.spec.fields:
        if f.type == "string":
            return str(process.document.data.get(f.name) or "")
    return ""


def amount_of(process: DocumentProcess) -> Any:
    """The document's amount: a decimal field named `amount`, else its first decimal field."""
    decimals = [f for f in process.spec.fields if f.type == "decimal"]
    chosen = next((f for f in decimals if f.name == "amount"), decimals[0] if decimals else None)
    if chosen is None:
        return None
    value = process.document.data.get(chosen.name)
    return Decimal(value) if value is not None else None


def matches(
    process: DocumentProcess,
    number: int | None = None,
    text: str | None = None,
    amount_min: Decimal | None = None,
    amount_max: Decimal | None = None,
) -> bool:
    """Whether a document fits an inbox search (number, customer/title text, amount range)."""
    if number is not None and process.document.id != number:
        return False
    if text and text.casefold() not in title_of(process).casefold():
        return False
    amount = amount_of(process)
    if amount_min is not None and (amount is None or amount < amount_min):
        return False
    return not (amount_max is not None and (amount is None or amount > amount_max))


def search_inbox(
    session: Session,
    user: User,
    number: int | None = None,
    text: str | None = None,
    amount_min: Decimal | None = None,
    amount_max: Decimal | None = None,
    limit: int = MAX_PAGE,
) -> list[DocumentProcess]:
    """The user's inbox (oldest first), narrowed by number, customer/title and amount range."""
    found: list[DocumentProcess] = []
    cursor = None
    while True:
        page = inbox(session, user, MAX_PAGE, cursor)
        found.extend(p for p in page.items if matches(p, number, text, amount_min, amount_max))
        if len(found) >= limit or page.next is None:
            return found[:limit]
        cursor = page.next


def startable_flows(session: Session, user: User) -> list[FlowVersion]:
    """Published flows `user` may start (the same rule create_document enforces)."""
    return [v for v in list_flows(session) if policy.can_start(user, compiled(v).spec)]
