"""Deadlines: when a document's current state is due, and the timed work of `tick`.

A state's deadline is its `sla` (working days after entering it, by the company calendar) or,
in the states listed under `overdue`, the day after the named date field. It is stored in
`documents.due_at` whenever the state (or the date) changes, in the same transaction, so lists
put overdue work first and `tick` finds it through an index.

`tick` (any number of hosts, at any time): for each document past its deadline, once per
deadline period, it records `overdue` in the audit log and reminds whoever can act now; then,
as the definition's `escalate` steps fall due, it records `escalate` and tells the roles named.
Each document is handled in its own transaction under its row lock (`FOR UPDATE SKIP LOCKED`
on PostgreSQL: two hosts never wait for each other or do the same document at once; SQLite's
write lock serializes them), and a unique notice row per (document, period, step) makes every
reminder and escalation happen once even when two hosts meet.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workflow import calendar as work_calendar
from workflow import notify, policy
from workflow.calendar import CHINA, WorkCalendar, start_of_day_after
from workflow.db import as_utc, utcnow
from workflow.definitions.spec import Escalation, FlowSpec
from workflow.models import DeadlineNotice, Document, FlowVersion

MAX_PER_TICK = 10_000


def due_at(
    spec: FlowSpec,
    state: str,
    entered_at: dt.datetime,
    data: dict[str, Any],
    calendar: WorkCalendar | None = None,
) -> dt.datetime | None:
    """When `state` is due for a document that entered it at `entered_at` (None: never)."""
    node = spec.state(state)
    if node.final:
        return None
    if node.sla is not None:
        return (calendar or work_calendar.current()).after(as_utc(entered_at), node.sla)
    dated = _date(spec, state, data)
    return start_of_day_after(dated) if dated is not None else None


def _date(spec: FlowSpec, state: str, data: dict[str, Any]) -> dt.date | None:
    if spec.overdue is None or state not in spec.overdue.states:
        return None
    value = data.get(spec.overdue.field)
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) and value else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Deadline:
    """The deadline a document is under now: its period (what makes a reminder "the same
    one"), when it fell due, and when each escalation step falls due."""

    period: str
    due: dt.datetime
    steps: tuple[tuple[Escalation, dt.datetime], ...]
    date: dt.date | None = None


def deadline_of(
    spec: FlowSpec, document: Document, calendar: WorkCalendar | None = None
) -> Deadline | None:
    calendar = calendar or work_calendar.current()
    node = spec.state(document.state)
    if node.final:
        return None
    entered = as_utc(document.entered_at)
    if node.sla is not None:
        period = f"{document.state}@{entered.isoformat(timespec='seconds')}"
        steps = tuple((e, calendar.after(entered, e.after)) for e in node.escalate)
        return Deadline(period, calendar.after(entered, node.sla), steps)
    dated = _date(spec, document.state, document.data)
    if dated is None or spec.overdue is None:
        return None
    start = dt.datetime.combine(dated, dt.time(), CHINA).astimezone(dt.UTC)
    steps = tuple((e, calendar.after(start, e.after)) for e in spec.overdue.escalate)
    return Deadline(
        f"{spec.overdue.field}={dated.isoformat()}", start_of_day_after(dated), steps, dated
    )


def days_overdue(deadline: Deadline, now: dt.datetime) -> int:
    """Whole days since the deadline passed (1 on the first day overdue)."""
    local_due = deadline.due.astimezone(CHINA).date()
    return (now.astimezone(CHINA).date() - local_due).days + 1


def backfill(session: Session) -> int:
    """Give `due_at` to open documents that lack it (those created before deadlines were
    stored) where their state has a deadline; returns how many got one. Run by `setup`."""
    from workflow.process import compiled

    count = 0
    for version in session.scalars(select(FlowVersion)):
        spec = compiled(version).spec
        states = [s.name for s in spec.states if s.sla is not None]
        states += list(spec.overdue.states) if spec.overdue is not None else []
        if not states:
            continue
        stmt = select(Document).where(
            Document.flow_version_id == version.id,
            Document.state.in_(states),
            Document.due_at.is_(None),
        )
        for document in session.scalars(stmt):
            document.due_at = due_at(spec, document.state, document.entered_at, document.data)
            count += document.due_at is not None
    session.commit()
    return count


@dataclass
class TickResult:
    overdue: list[int] = field(default_factory=list)  # documents newly marked overdue
    escalated: list[tuple[int, int]] = field(default_factory=list)  # (document, step number)


def tick(
    session: Session, now: dt.datetime | None = None, calendar: WorkCalendar | None = None
) -> TickResult:
    """Mark overdue, remind and escalate everything due at `now` (see the module docstring)."""
    from workflow.process import DocumentProcess  # the process imports this module

    now = now or utcnow()
    result = TickResult()
    last_id = 0
    # Documents whose every step for their current deadline is taken are not visited again.
    finished = (
        select(DeadlineNotice.id)
        .where(
            DeadlineNotice.document_id == Document.id,
            DeadlineNotice.step == "done",
            DeadlineNotice.due == Document.due_at,
        )
        .exists()
    )
    for _ in range(MAX_PER_TICK):
        stmt = (
            select(Document)
            .where(
                Document.due_at.is_not(None),
                Document.due_at <= now,
                Document.id > last_id,
                ~finished,
            )
            .order_by(Document.id)
            .limit(1)
            .with_for_update(skip_locked=True, of=Document)
        )
        document = session.scalars(stmt).first()
        if document is None:
            session.rollback()
            break
        last_id = document.id
        try:
            _handle(session, DocumentProcess(session, document), now, calendar, result)
            session.commit()
        except IntegrityError:  # another host recorded it first: its transaction won
            session.rollback()
    return result


def _handle(
    session: Session,
    process: Any,
    now: dt.datetime,
    calendar: WorkCalendar | None,
    result: TickResult,
) -> None:
    document, spec = process.document, process.spec
    deadline = deadline_of(spec, document, calendar)
    if deadline is None or deadline.due > now:
        return
    done = set(
        session.scalars(
            select(DeadlineNotice.step).where(
                DeadlineNotice.document_id == document.id,
                DeadlineNotice.period == deadline.period,
            )
        )
    )
    details = notify.about(document, spec, document.state, due=deadline.due.isoformat())
    if deadline.date is not None:
        details["days_overdue"] = days_overdue(deadline, now)
    if "overdue" not in done:
        _notice(session, document.id, deadline.period, "overdue")
        process.record(None, "overdue", document.state, document.state,
                       details={"due": deadline.date.isoformat() if deadline.date else
                                deadline.due.isoformat(), "period": deadline.period})  # fmt: skip
        _remind(session, process, details)
        result.overdue.append(document.id)
        done.add("overdue")
    for number, (step, when) in enumerate(deadline.steps, start=1):
        key = f"escalate:{number}"
        if key in done or when > now:
            continue
        _notice(session, document.id, deadline.period, key)
        process.record(
            None,
            "escalate",
            document.state,
            document.state,
            details={"step": number, "after": str(step.after), "notify": list(step.notify),
                     "period": deadline.period},
        )  # fmt: skip
        notify.to_roles(session, "escalated", document.id, step.notify, details)
        result.escalated.append((document.id, number))
        done.add(key)
    steps = {"overdue", *(f"escalate:{n}" for n in range(1, len(deadline.steps) + 1))}
    if steps <= done and "done" not in done and document.due_at is not None:
        session.add(
            DeadlineNotice(
                document_id=document.id, period=deadline.period, step="done", due=document.due_at
            )
        )
        session.flush()


def _notice(session: Session, document_id: int, period: str, step: str) -> None:
    session.add(DeadlineNotice(document_id=document_id, period=period, step=step))
    session.flush()  # the unique row first: a second host fails here, before anything else


def _remind(session: Session, process: Any, details: dict[str, Any]) -> None:
    """An `overdue` reminder for whoever can act on the document now."""
    document, spec = process.document, process.spec
    node = spec.state(document.state)
    if node.review is not None:
        decided = {r.user_id for r in process.reviews if r.round == document.review_round
                   and r.state == document.state}  # fmt: skip
        exclude = {document.created_by_id, document.entered_by_id, *process.editors, *decided}
        notify.to_roles(session, "overdue", document.id, node.review.roles, details, exclude)
    elif node.owner_only:
        notify.to_user(session, "overdue", document.id, document.created_by_id, details)
    else:
        roles = policy.acting_roles(spec, document.state)
        notify.to_roles(session, "overdue", document.id, roles, details)
