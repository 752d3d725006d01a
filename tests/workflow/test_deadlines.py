"""Deadlines: working days by the Chinese calendar (holidays, adjusted working Saturdays),
`documents.due_at` kept with the state, and `tick` — overdue, reminders and escalations, each
once per deadline, also when two hosts tick at the same instant."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from freezegun import freeze_time
from sqlalchemy import and_, func, select, text, update

from tests.workflow.test_concurrency import submitted
from tests.workflow.test_review import SHIPMENT
from workflow import audit, deadlines, notify, queries, tasklist
from workflow.calendar import CHINA, WorkCalendar, parse_duration
from workflow.db import as_utc
from workflow.models import AuditEvent, DeadlineNotice, Document, Notification, User

CALENDAR = WorkCalendar()


def china(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=CHINA).astimezone(dt.UTC)


# --- the calendar ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "duration", "due"),
    [
        # Wed 30 Sep 2026 + 1 working day: 1–7 Oct is the National Day holiday → Thu 8 Oct
        (china(2026, 9, 30, 10), "1d", china(2026, 10, 8, 10)),
        (china(2026, 9, 30, 10), "2d", china(2026, 10, 9, 10)),
        # Fri 9 Oct + 1 working day: Saturday 10 Oct is an adjusted working day (调休上班)
        (china(2026, 10, 9, 10), "1d", china(2026, 10, 10, 10)),
        # … and Sunday 11 Oct is not: Sat 10 Oct + 1 → Mon 12 Oct
        (china(2026, 10, 10, 10), "1d", china(2026, 10, 12, 10)),
        # an ordinary week: Fri + 1 working day → Mon
        (china(2026, 11, 20, 9), "1d", china(2026, 11, 23, 9)),
        # calendar days ignore the holiday
        (china(2026, 9, 30, 10), "3cd", china(2026, 10, 3, 10)),
    ],
)
def test_working_days_follow_the_chinese_calendar(start, duration, due):
    assert CALENDAR.after(start, parse_duration(duration)) == due


def test_a_company_adds_its_own_holidays_and_working_days():
    company = WorkCalendar.from_settings("2026-11-23", "2026-11-22")  # closed Mon, works Sun
    assert not company.is_workday(dt.date(2026, 11, 23))
    assert company.is_workday(dt.date(2026, 11, 22))
    assert company.after(china(2026, 11, 20, 9), parse_duration("1d")) == china(2026, 11, 22, 9)
    assert company.after(china(2026, 11, 22, 9), parse_duration("1d")) == china(2026, 11, 24, 9)


# --- due_at kept with the state -------------------------------------------------------------------
def test_entering_a_state_with_an_sla_stores_its_due_time(session, rules_flows, people):
    with freeze_time(china(2026, 9, 30, 10)):
        doc_id = submitted(session, people)
    document = session.get(Document, doc_id)
    assert document.state == "double_check"
    assert as_utc(document.due_at) == china(2026, 10, 8, 10)


def test_a_state_without_a_deadline_has_no_due_time(session, rules_flows, people):
    from tests.workflow.test_review import SHIPMENT
    from workflow import services

    doc = services.create_document(session, people["zhang"], "shipment", SHIPMENT).document
    assert doc.due_at is None


# --- tick ---------------------------------------------------------------------------------------
def events(session, doc_id: int, action: str) -> list[AuditEvent]:
    stmt = select(AuditEvent).where(AuditEvent.document_id == doc_id, AuditEvent.action == action)
    return list(session.scalars(stmt))


def reached(session, doc_id: int, kind: str) -> list[str]:
    """Who the document's `kind` notifications are for, one name per (notification, person)."""
    stmt = select(Notification).where(Notification.document_id == doc_id, Notification.kind == kind)
    ids = [u for row in session.scalars(stmt) for u in session.scalars(notify.audience(row))]
    return sorted(session.get(User, u).username for u in ids)


def told(session, doc_id: int, kind: str) -> set[str]:
    return set(reached(session, doc_id, kind))


def test_tick_marks_overdue_reminds_and_escalates_each_once(session, rules_flows, people):
    with freeze_time(china(2026, 9, 30, 10)):
        doc_id = submitted(session, people)
    # still on time during the holiday: nothing happens
    assert deadlines.tick(session, china(2026, 10, 7, 23)).overdue == []
    # due Thu 8 Oct 10:00: overdue, the reviewers who can act are reminded
    result = deadlines.tick(session, china(2026, 10, 8, 10, 1))
    assert result.overdue == [doc_id] and result.escalated == []
    assert told(session, doc_id, "overdue") == {"wang", "chen", "li", "zhou", "duo"}
    # a second tick the same day, and the next: nothing new
    assert deadlines.tick(session, china(2026, 10, 8, 18)).overdue == []
    assert len(events(session, doc_id, "overdue")) == 1
    # two working days in review (Fri 9 Oct 10:00): the sales managers are told
    result = deadlines.tick(session, china(2026, 10, 9, 10))
    assert result.escalated == [(doc_id, 1)]
    assert told(session, doc_id, "escalated") == {"liu", "sun"}
    assert deadlines.tick(session, china(2026, 10, 12, 10)).escalated == []
    assert len(events(session, doc_id, "escalate")) == 1
    steps = session.scalars(select(DeadlineNotice.step).where(DeadlineNotice.document_id == doc_id))
    assert sorted(steps) == ["done", "escalate:1", "overdue"]
    (event,) = events(session, doc_id, "escalate")
    assert event.actor is None and event.details["notify"] == ["sales_manager"]
    assert audit.verify(session).ok


def test_a_new_entry_into_the_state_is_a_new_deadline(session, rules_flows, people):
    from workflow import services

    with freeze_time(china(2026, 11, 23, 9)):
        doc_id = submitted(session, people)
    assert deadlines.tick(session, china(2026, 11, 24, 10)).overdue == [doc_id]
    with freeze_time(china(2026, 11, 24, 11)):
        services.act(session, doc_id, people["li"], "reject", 1, "数量不符")
        services.act(session, doc_id, people["zhang"], "submit", 1)
    assert deadlines.tick(session, china(2026, 11, 24, 12)).overdue == []
    assert deadlines.tick(session, china(2026, 11, 25, 11, 30)).overdue == [doc_id]
    assert len(events(session, doc_id, "overdue")) == 2


def test_a_deposit_past_its_refund_date_escalates_after_thirty_days(session, rules_flows, people):
    from workflow import services

    data = {
        "tender_name": "安庆市立医院医疗设备采购",
        "tender_no": "AQZB-2026-118",
        "agency": "安庆某招标代理有限公司",
        "amount": "50000.00",
        "bid_date": "2026-10-10",
        "cycle_end": "2026-10-30",
        "expected_refund_date": "2026-11-20",
        "payee_account": "安庆某招标代理有限公司 1308 0101 0902 4567 890",
    }
    doc = services.create_document(session, people["zhang"], "tender_deposit", data).document
    services.act(session, doc.id, people["zhang"], "submit", 1)
    checks = dict.fromkeys(("amount", "account", "dates"), True)  # the deposit check's points
    services.act(session, doc.id, people["liu"], "approve", 1, checks=checks)
    services.act(session, doc.id, people["zhao"], "approve", 1, checks=checks)
    document = session.get(Document, doc.id)
    assert document.state == "awaiting_payment"
    assert as_utc(document.due_at) == china(2026, 11, 21)
    assert deadlines.tick(session, china(2026, 11, 20, 23, 59)).overdue == []
    assert deadlines.tick(session, china(2026, 11, 21, 8)).overdue == [doc.id]
    assert told(session, doc.id, "overdue") == {"zhao", "qian", "wu"}  # finance pays it
    assert deadlines.tick(session, china(2026, 12, 19)).escalated == []
    assert deadlines.tick(session, china(2026, 12, 20)).escalated == [(doc.id, 1)]
    assert told(session, doc.id, "escalated") == {"zhao", "qian", "wu", "ma", "he"}
    # a new refund date is a new deadline: overdue again when it passes, not before
    services.edit_document(
        session, doc.id, people["zhao"], {"payment_ref": "P-1", "paid_on": "2026-10-09"}, 1
    )
    document = session.get(Document, doc.id)
    assert as_utc(document.due_at) == china(2026, 11, 21)
    assert deadlines.tick(session, china(2026, 12, 21)).overdue == []
    assert audit.verify(session).ok


def test_two_hosts_ticking_at_once_send_each_reminder_once(
    db_url, session, session_factory, rules_flows, people
):
    with freeze_time(china(2026, 9, 30, 10)):
        ids = [submitted(session, people) for _ in range(12)]
    barrier = threading.Barrier(2)
    results: list[deadlines.TickResult] = []
    errors: list[BaseException] = []

    def host() -> None:
        with session_factory() as own:
            try:
                barrier.wait(timeout=30)
                results.append(deadlines.tick(own, china(2026, 10, 9, 11)))
            except BaseException as exc:  # reported below
                errors.append(exc)

    threads = [threading.Thread(target=host) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and len(results) == 2
    overdue = sorted(i for r in results for i in r.overdue)
    escalated = sorted(i for r in results for i, _ in r.escalated)
    assert overdue == ids and escalated == ids  # each document once, by one host or the other
    session.expire_all()
    for doc_id in ids:
        assert len(events(session, doc_id, "overdue")) == 1
        assert len(events(session, doc_id, "escalate")) == 1
        reminders = session.scalar(
            select(func.count()).where(
                Notification.document_id == doc_id, Notification.kind == "overdue"
            )
        )
        assert reminders == 1  # one notification to the reviewers' roles …
        # … for wang, chen, li, zhou, duo: each reminded once
        assert reached(session, doc_id, "overdue") == ["chen", "duo", "li", "wang", "zhou"]
    # per document: overdue, escalate:1, and `done` (tick visits it no more until a new deadline)
    assert session.scalar(select(func.count(DeadlineNotice.id))) == 36
    assert audit.verify(session).ok


def test_setup_gives_older_documents_their_deadline(session, rules_flows, people):
    from workflow import services

    with freeze_time(china(2026, 11, 23, 9)):
        doc_id = submitted(session, people)
    document = session.get(Document, doc_id)
    document.due_at = None  # as if created before deadlines were stored
    session.commit()
    assert deadlines.backfill(session) == 1
    assert as_utc(session.get(Document, doc_id).due_at) == china(2026, 11, 24, 9)
    assert deadlines.backfill(session) == 0
    draft = services.create_document(session, people["zhang"], "shipment", {**SHIPMENT})
    assert draft.document.due_at is None and deadlines.backfill(session) == 0


# --- the overdue tier of lists ------------------------------------------------------------------
def test_the_overdue_tier_is_found_by_deadline_then_ordered(session, rules_flows, people):
    """`few_in_entry_order`: the overdue documents in (entered_at, id) order, found first and
    then sorted — never by walking every document in entry order (SQLite's choice when the
    query asks for that order itself: the whole table when none is late)."""
    ids = [submitted(session, people) for _ in range(4)]
    now = audit.utcnow()
    entered = {ids[0]: 3, ids[1]: 1, ids[2]: 2, ids[3]: 4}  # days ago
    for doc_id, days in entered.items():
        session.execute(
            update(Document)
            .where(Document.id == doc_id)
            .values(
                entered_at=now - dt.timedelta(days=days),
                # ids[3] is not late: its deadline is still ahead
                due_at=now + dt.timedelta(hours=1 if doc_id == ids[3] else -1),
            )
        )
    session.commit()
    # what a list asks: the visibility rule (with its "acted on it" EXISTS, which no index
    # serves) and lateness
    where = and_(Document.due_at <= now, tasklist.visible(session, people["zhang"]))
    stmt = queries.few_in_entry_order(session, where, 2)
    assert [doc_id for _, doc_id in session.execute(stmt)] == [ids[0], ids[2]]
    stmt = queries.few_in_entry_order(session, where, 50)
    assert [doc_id for _, doc_id in session.execute(stmt)] == [ids[0], ids[2], ids[1]]
    session.rollback()
    if session.get_bind().dialect.name == "sqlite":
        sql = str(stmt.compile(session.get_bind(), compile_kwargs={"literal_binds": True}))
        plan = " / ".join(r[-1] for r in session.execute(text("EXPLAIN QUERY PLAN " + sql)))
        assert "ix_documents_due" in plan and "ix_documents_entered" not in plan, plan
