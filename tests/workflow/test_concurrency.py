"""Rule 5 under real concurrency: reviewers released at the same instant, each on their own
session (so their own database connection), as separate gunicorn workers would be.

Runs on SQLite (BEGIN IMMEDIATE) and, when TEST_DATABASE_URL is set, on PostgreSQL (row locks),
where it matters most: the measured failure there is documents stuck or advanced twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import PASSWORD
from tests.workflow.test_review import SHIPMENT
from workflow import accounts, audit, services
from workflow.errors import (
    ActionNotAllowed,
    AlreadyReviewed,
    Conflict,
    InvalidData,
    Refused,
    RoleNotAllowed,
    StaleRevision,
)
from workflow.models import AuditEvent, Document, Review, User


@pytest.fixture
def flows(rules_flows):
    """The rules are tested on the frozen shipment (tests/data/flows/rules/shipment.yaml)."""
    return rules_flows


JOIN_TIMEOUT = 60


@dataclass
class Outcome:
    user: str
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def at_once(
    factory: sessionmaker[Session], calls: list[tuple[str, Callable[[Session, User], Any]]]
) -> list[Outcome]:
    """Run each call on its own thread and session, all released by one barrier."""
    barrier = threading.Barrier(len(calls))
    outcomes = [Outcome(user) for user, _ in calls]

    def run(index: int, username: str, call: Callable[[Session, User], Any]) -> None:
        with factory() as session:
            user = session.scalars(select(User).where(User.username == username)).one()
            user.roles  # noqa: B018 - loaded now, not during the race
            session.commit()  # start the race with no transaction (and no lock) held
            try:
                barrier.wait(timeout=JOIN_TIMEOUT)
                call(session, user)
            except BaseException as exc:  # reported to the test thread
                outcomes[index].error = exc

    threads = [
        threading.Thread(target=run, args=(i, user, call), daemon=True)
        for i, (user, call) in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a reviewer is still waiting (deadlock?)"
    for outcome in outcomes:  # only the engine's own refusals may come out of a race
        if outcome.error is not None and not isinstance(outcome.error, Refused):
            raise AssertionError(f"{outcome.user}: {outcome.error!r}") from outcome.error
    return outcomes


def action(doc_id: int, name: str, revision: int = 1, comment: str = "") -> Callable[..., Any]:
    return lambda s, u: services.act(s, doc_id, u, name, revision, comment)


def edit(doc_id: int, data: dict[str, Any], revision: int = 1) -> Callable[..., Any]:
    return lambda s, u: services.edit_document(s, doc_id, u, data, revision)


def submitted(session: Session, people: dict[str, User], paid: bool = True) -> int:
    """A shipment created and submitted by zhang: in a 2-of-2 review at revision 1."""
    doc_id = services.create_document(
        session, people["zhang"], "shipment", {**SHIPMENT, "paid": paid}
    ).document.id
    services.act(session, doc_id, people["zhang"], "submit", 1)
    return doc_id


def reviewers(session: Session, count: int) -> list[str]:
    """`count` extra people, alternately 内勤 and 库管, eligible for the double check."""
    names = []
    for i in range(count):
        name = f"rev{i}"
        role = "sales_admin" if i % 2 == 0 else "warehouse"
        accounts.create_user(session, name, PASSWORD, [role])
        names.append(name)
    return names


def people_roles(session: Session, username: str) -> str:
    (role,) = session.scalars(select(User).where(User.username == username)).one().roles
    session.rollback()
    return role


def check_document(session: Session, doc_id: int, *, state: str, approvals: int) -> None:
    """Read back: one departure at most, `approvals` distinct approvers, and a sound log."""
    session.expire_all()
    document = session.get(Document, doc_id)
    assert document.state == state
    reviews = list(
        session.scalars(
            select(Review).where(
                Review.document_id == doc_id,
                Review.state == "double_check",
                Review.decision == "approve",
            )
        )
    )
    assert len(reviews) == approvals, [r.user.username for r in reviews]
    assert len({r.user_id for r in reviews}) == approvals
    moves = list(
        session.scalars(
            select(AuditEvent).where(
                AuditEvent.document_id == doc_id,
                AuditEvent.action == "approve",
                AuditEvent.outcome == "ok",
                AuditEvent.from_state == "double_check",
                AuditEvent.to_state != "double_check",
            )
        )
    )
    assert len(moves) == (1 if state == "ready_to_ship" else 0), "advanced more than once"
    session.rollback()


def verify(session: Session) -> None:
    session.expire_all()
    result = audit.verify(session)
    session.rollback()
    assert result.ok, result.problem


def rounds(db_url: str, postgres: int, sqlite: int) -> int:
    return postgres if db_url.startswith("postgresql") else sqlite


# --- many reviewers, one document -----------------------------------------------------------------
def test_eight_reviewers_at_once_advance_the_document_exactly_once(
    db_url, session, session_factory, flows, people
):
    names = reviewers(session, 8)
    for _ in range(rounds(db_url, postgres=20, sqlite=3)):
        doc_id = submitted(session, people)
        outcomes = at_once(session_factory, [(n, action(doc_id, "approve")) for n in names])
        winners = [o.user for o in outcomes if o.ok]
        losers = [o.error for o in outcomes if not o.ok]
        # The first 内勤 and the first 库管 through the lock reach the quorum (require_each_role
        # refuses a second of the same role meanwhile); everyone after finds it moved on.
        assert len(winners) == 2, winners
        assert {people_roles(session, n) for n in winners} == {"sales_admin", "warehouse"}
        assert all(isinstance(e, ActionNotAllowed | RoleNotAllowed | Conflict) for e in losers)
        check_document(session, doc_id, state="ready_to_ship", approvals=2)
        refused = session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.document_id == doc_id, AuditEvent.outcome == "refused")
        )
        assert refused == 6  # every refusal is in the log too
        session.rollback()
    verify(session)


def test_last_two_reviewers_at_the_same_instant(db_url, session, session_factory, flows, people):
    """A 2-of-2 double check; both approve at once. Never stuck, never advanced twice."""
    for _ in range(rounds(db_url, postgres=50, sqlite=10)):
        doc_id = submitted(session, people)
        outcomes = at_once(
            session_factory,
            [("wang", action(doc_id, "approve")), ("li", action(doc_id, "approve"))],
        )
        assert all(o.ok for o in outcomes), [o.error for o in outcomes]
        check_document(session, doc_id, state="ready_to_ship", approvals=2)
    stuck = session.scalar(
        select(func.count()).select_from(Document).where(Document.state == "double_check")
    )
    assert stuck == 0
    verify(session)


def test_gm_exception_then_double_check_at_the_same_instant(
    db_url, session, session_factory, flows, people
):
    """Two levels, each signed by its last two reviewers at once; the doc climbs exactly once."""
    for _ in range(rounds(db_url, postgres=10, sqlite=3)):
        doc_id = submitted(session, people, paid=False)
        assert session.get(Document, doc_id).state == "gm_exception"
        session.rollback()  # hold no transaction (on SQLite: the write lock) during the race
        outcomes = at_once(
            session_factory, [("ma", action(doc_id, "approve")), ("liu", action(doc_id, "approve"))]
        )
        assert all(o.ok for o in outcomes)
        outcomes = at_once(
            session_factory,
            [("wang", action(doc_id, "approve")), ("li", action(doc_id, "approve"))],
        )
        assert all(o.ok for o in outcomes)
        check_document(session, doc_id, state="ready_to_ship", approvals=2)
        document = session.get(Document, doc_id)
        assert document.review_round == 2
        session.rollback()
    verify(session)


def test_same_reviewer_double_click(db_url, session, session_factory, flows, people):
    """One person presses approve twice at once (two tabs, a retrying client): counts once."""
    for _ in range(rounds(db_url, postgres=10, sqlite=3)):
        doc_id = submitted(session, people)
        outcomes = at_once(
            session_factory,
            [("wang", action(doc_id, "approve")), ("wang", action(doc_id, "approve"))],
        )
        assert sum(o.ok for o in outcomes) == 1
        loser = next(o.error for o in outcomes if not o.ok)
        assert isinstance(loser, AlreadyReviewed | Conflict), loser
        check_document(session, doc_id, state="double_check", approvals=1)
    verify(session)


def test_approve_and_reject_at_the_same_instant(db_url, session, session_factory, flows, people):
    """With one approval in, li approves and chen rejects at once: exactly one decides."""
    for _ in range(rounds(db_url, postgres=10, sqlite=3)):
        doc_id = submitted(session, people)
        services.act(session, doc_id, people["wang"], "approve", 1)
        outcomes = at_once(
            session_factory,
            [("li", action(doc_id, "approve")), ("chen", action(doc_id, "reject", comment="不符"))],
        )
        winners = [o for o in outcomes if o.ok]
        assert len(winners) == 1, [o.error for o in outcomes]
        assert isinstance(next(o.error for o in outcomes if not o.ok), ActionNotAllowed | Conflict)
        if winners[0].user == "li":
            check_document(session, doc_id, state="ready_to_ship", approvals=2)
        else:
            check_document(session, doc_id, state="draft", approvals=1)
    verify(session)


def test_submit_and_edit_at_the_same_instant(db_url, session, session_factory, flows, people):
    """Reviewers approve what they saw: an edit racing a submit (the owner, in two tabs) either
    lands first (and the submit of the old revision is stale) or is refused because the
    document is in review."""
    for _ in range(rounds(db_url, postgres=10, sqlite=3)):
        doc_id = services.create_document(
            session, people["zhang"], "shipment", SHIPMENT
        ).document.id
        outcomes = at_once(
            session_factory,
            [
                ("zhang", action(doc_id, "submit")),
                ("zhang", edit(doc_id, {"samples": "样品 2 盒"})),
            ],
        )
        submit, change = outcomes
        assert submit.ok != change.ok, (submit.error, change.error)
        session.expire_all()
        document = session.get(Document, doc_id)
        if submit.ok:
            assert isinstance(change.error, ActionNotAllowed | Conflict)
            assert (document.state, document.revision) == ("double_check", 1)
        else:
            assert isinstance(submit.error, StaleRevision)
            assert (document.state, document.revision) == ("draft", 2)
        session.rollback()
    verify(session)


def test_documents_in_parallel(db_url, session, session_factory, flows, people):
    """Eight documents, each signed by its two reviewers, all sixteen at once: the compiled flow
    (one shared state machine) answers every document correctly."""
    names = reviewers(session, 8)
    docs = [submitted(session, people) for _ in range(8)]
    calls = []
    for i, doc_id in enumerate(docs):
        calls.append((names[(2 * i) % 8], action(doc_id, "approve")))  # a 内勤
        calls.append((names[(2 * i + 1) % 8], action(doc_id, "approve")))  # a 库管
    outcomes = at_once(session_factory, calls)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
    for doc_id in docs:
        check_document(session, doc_id, state="ready_to_ship", approvals=2)
    verify(session)


def test_invalid_request_releases_the_document(db_url, session, session_factory, flows, people):
    """A refused-as-invalid request (a rejection without a reason) must not keep the document
    locked: another reviewer can act at once while the first session stays open."""
    doc_id = submitted(session, people)
    with session_factory() as first:
        wang = first.get(User, people["wang"].id)
        with pytest.raises(InvalidData):
            services.act(first, doc_id, wang, "reject", 1, "  ")
        assert not first.in_transaction()
        done = threading.Event()

        def other() -> None:
            with session_factory() as second:
                services.act(second, doc_id, second.get(User, people["li"].id), "approve", 1)
            done.set()

        thread = threading.Thread(target=other, daemon=True)
        thread.start()
        finished = done.wait(10)
        first.close()  # let it through if it was blocked, then fail
        thread.join(JOIN_TIMEOUT)
        assert finished, "the invalid request kept the document locked"
    check_document(session, doc_id, state="double_check", approvals=1)
