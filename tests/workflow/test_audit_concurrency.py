"""The audit chain under concurrent writers, and tampering with it afterwards.

Measured on this stack: 16 concurrent writers appending to one chain on PostgreSQL produced 187
forks without serialization. Each chain's row lock serializes its appends; chains of different
documents must not wait for each other. Tampering by raw SQL must be caught by `verify`.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from tests.conftest import DEFINITIONS, RULES_DEFINITIONS
from tests.test_shipped_flows import spec_of
from tests.workflow.test_review import SHIPMENT
from workflow import audit, services
from workflow.errors import SelfReview
from workflow.models import AuditChain, AuditEvent, Document, User


@pytest.fixture
def flows(rules_flows):
    """The rules are tested on the frozen shipment (tests/data/flows/rules/shipment.yaml)."""
    return rules_flows


WRITERS = 16
ROUNDS = 10
JOIN_TIMEOUT = 60


def run_threads(targets: list) -> None:
    threads = [threading.Thread(target=t, daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a writer is still waiting"


def chain_events(session: Session, key: str) -> list[AuditEvent]:
    return list(
        session.scalars(
            select(AuditEvent).where(AuditEvent.chain_key == key).order_by(AuditEvent.chain_seq)
        )
    )


def assert_linear(session: Session, key: str, length: int) -> None:
    """No fork: every event follows exactly the one before it, numbered 1..length."""
    events = chain_events(session, key)
    assert [e.chain_seq for e in events] == list(range(1, length + 1))
    assert len({e.prev_hash for e in events}) == len(events), "two events share a predecessor"
    previous = audit.GENESIS
    for event in events:
        assert event.prev_hash == previous
        previous = event.hash
    chain = session.get(AuditChain, key)
    assert (chain.length, chain.head) == (length, previous)


def assert_verifies(session: Session) -> audit.VerifyResult:
    session.expire_all()
    result = audit.verify(session)
    session.rollback()
    assert result.ok, result.problem
    return result


# --- concurrent writers ---------------------------------------------------------------------------
def test_sixteen_writers_on_one_chain_do_not_fork(db_url, session, session_factory):
    audit.ensure_system_chain(session)
    session.commit()
    barrier = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            with session_factory() as s:
                for i in range(ROUNDS):
                    barrier.wait(timeout=JOIN_TIMEOUT)
                    audit.append(
                        s, audit.SYSTEM_CHAIN, actor=None, action="tick", outcome="ok",
                        details={"writer": number, "round": i},
                    )  # fmt: skip
                    s.commit()
        except BaseException as exc:  # reported below
            errors.append(exc)
            barrier.abort()

    run_threads([lambda n=n: writer(n) for n in range(WRITERS)])
    assert not errors, errors
    assert_linear(session, audit.SYSTEM_CHAIN, WRITERS * ROUNDS)
    assert assert_verifies(session).events == WRITERS * ROUNDS


def test_sixteen_writers_on_sixteen_documents(db_url, session, session_factory, flows, people):
    docs = [
        services.create_document(session, people["zhang"], "shipment", SHIPMENT).document.id
        for _ in range(WRITERS)
    ]
    barrier = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def writer(doc_id: int) -> None:
        try:
            with session_factory() as s:
                for _ in range(ROUNDS):
                    barrier.wait(timeout=JOIN_TIMEOUT)
                    audit.append(
                        s, audit.document_chain(doc_id), document_id=doc_id, actor="zhang",
                        action="note", outcome="ok",
                    )  # fmt: skip
                    s.commit()
        except BaseException as exc:  # reported below
            errors.append(exc)
            barrier.abort()

    run_threads([lambda d=d: writer(d) for d in docs])
    assert not errors, errors
    for doc_id in docs:
        assert_linear(session, audit.document_chain(doc_id), 1 + ROUNDS)  # create + notes
    assert_verifies(session)


@pytest.mark.postgres_only
def test_one_documents_lock_does_not_hold_up_another(db_url, engine, session, session_factory,
                                                     flows, people):  # fmt: skip
    """While one transaction holds document A's chain (an approval in progress), appends to
    fifteen other documents commit at once; an append to A itself waits for the lock."""
    assert db_url.startswith("postgresql")  # SQLite has one writer at a time by design
    docs = [
        services.create_document(session, people["zhang"], "shipment", SHIPMENT).document.id
        for _ in range(WRITERS)
    ]
    held, others = docs[0], docs[1:]
    with session_factory() as holder:
        audit.append(holder, audit.document_chain(held), document_id=held, actor="zhang",
                     action="note", outcome="ok")  # fmt: skip
        # holder now owns A's chain row lock, uncommitted
        finished: list[float] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(len(others))
        start = time.monotonic()

        def writer(doc_id: int) -> None:
            try:
                with session_factory() as s:
                    s.execute(text("SET LOCAL lock_timeout = '5s'"))
                    barrier.wait(timeout=JOIN_TIMEOUT)
                    audit.append(s, audit.document_chain(doc_id), document_id=doc_id,
                                 actor="wang", action="note", outcome="ok")  # fmt: skip
                    s.commit()
                    finished.append(time.monotonic() - start)
            except BaseException as exc:  # reported below
                errors.append(exc)

        run_threads([lambda d=d: writer(d) for d in others])
        assert not errors, errors
        assert len(finished) == len(others)
        assert max(finished) < 5

        with session_factory() as blocked:  # the same chain must wait: the lock is real
            blocked.execute(text("SET LOCAL lock_timeout = '300ms'"))
            with pytest.raises(OperationalError, match="lock timeout"):
                audit.append(blocked, audit.document_chain(held), document_id=held,
                             actor="li", action="note", outcome="ok")  # fmt: skip
            blocked.rollback()
        holder.commit()
    assert_linear(session, audit.document_chain(held), 2)
    assert_verifies(session)


@pytest.mark.postgres_only
def test_creations_of_different_documents_do_not_wait_for_each_other(
    db_url, session, session_factory, people
):
    """While one creation is still in its transaction (its chain registered, its lane's root
    locked), a creation in another flow commits at once: no creation waits on one shared row
    (before lanes, every creation locked the `system` chain's row)."""
    assert db_url.startswith("postgresql")  # SQLite has one writer at a time by design
    services.publish_files(session, DEFINITIONS)  # two flows: their number counters differ
    audit.ensure_registry(session)
    session.commit()
    inside, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold(_process) -> None:
        inside.set()
        release.wait(JOIN_TIMEOUT)

    def first_creation() -> None:
        try:
            with session_factory() as s:
                zhang = s.get(User, people["zhang"].id)
                example = spec_of("shipment").example
                services.create_document(s, zhang, "shipment", example, before_commit=hold)
        except BaseException as exc:  # reported below
            errors.append(exc)

    holder = threading.Thread(target=first_creation, daemon=True)
    holder.start()
    try:
        assert inside.wait(JOIN_TIMEOUT)
        with session_factory() as s:
            s.execute(text("SET lock_timeout = '2s'"))  # the connection's, reset below
            s.commit()
            try:
                started = time.monotonic()
                other = services.create_document(
                    s, s.get(User, people["xu"].id), "expense", spec_of("expense").example
                )
                assert time.monotonic() - started < 2
            finally:
                s.execute(text("RESET lock_timeout"))
                s.commit()
    finally:
        release.set()
        holder.join(JOIN_TIMEOUT)
    assert not errors, errors
    lanes = {row.key: row.lane for row in session.execute(select(AuditChain.key, AuditChain.lane))}
    assert lanes[audit.document_chain(other.document.id)] == audit.lane_of(
        audit.document_chain(other.document.id)
    )
    assert_verifies(session)


@pytest.mark.postgres_only
def test_writers_creating_documents_together_on_a_new_registry(
    db_url, session, session_factory, flows, people
):
    """Sixteen creations at once on a registry whose lanes have no roots yet (a database set up
    before lanes): each lane's root is registered once, every chain once, and it verifies."""
    assert db_url.startswith("postgresql")  # SQLite has one writer at a time by design
    audit.ensure_system_chain(session)
    session.commit()
    barrier = threading.Barrier(WRITERS)
    errors: list[BaseException] = []
    created: list[int] = []

    def writer() -> None:
        try:
            with session_factory() as s:
                zhang = s.get(User, people["zhang"].id)
                for _ in range(3):
                    barrier.wait(timeout=JOIN_TIMEOUT)
                    process = services.create_document(s, zhang, "shipment", SHIPMENT)
                    created.append(process.document.id)
        except BaseException as exc:  # reported below
            errors.append(exc)
            barrier.abort()

    run_threads([writer for _ in range(WRITERS)])
    assert not errors, errors
    assert len(set(created)) == 3 * WRITERS
    rows = session.execute(select(AuditChain.key, AuditChain.lane, AuditChain.position)).all()
    roots = sorted(r.key for r in rows if r.key.startswith(audit.LANE_ROOT))
    assert roots == sorted({audit.lane_root(audit.lane_of(audit.document_chain(d)))
                            for d in created})  # fmt: skip
    for lane in {r.lane for r in rows}:
        positions = sorted(r.position for r in rows if r.lane == lane)
        first = 0 if lane == 0 else 1  # lane 0 starts with `system`, the others after a root
        assert positions == list(range(first, first + len(positions)))
    assert assert_verifies(session).chains == len(rows)


def test_a_registry_from_before_lanes_still_verifies_and_grows_into_lanes(
    session, flows, people, monkeypatch
):
    """Chains registered before lanes existed (all in lane 0, sealed as they were then) verify
    as they are; new documents after them go to their lanes, whose roots follow in lane 0."""
    with monkeypatch.context() as before_lanes:
        before_lanes.setattr(audit, "lane_of", lambda key: 0)
        old = [
            services.create_document(session, people["zhang"], "shipment", SHIPMENT).document.id
            for _ in range(3)
        ]
    new = [
        services.create_document(session, people["zhang"], "shipment", SHIPMENT).document.id
        for _ in range(3)
    ]
    where = {
        row.key: (row.lane, row.position)
        for row in session.execute(select(AuditChain.key, AuditChain.lane, AuditChain.position))
    }
    assert [where[audit.document_chain(d)] for d in old] == [(0, 1), (0, 2), (0, 3)]
    for doc_id in new:
        lane = audit.lane_of(audit.document_chain(doc_id))
        assert where[audit.document_chain(doc_id)] == (lane, 1)
        assert where[audit.lane_root(lane)][0] == 0 and where[audit.lane_root(lane)][1] > 3
    assert assert_verifies(session).chains == len(where)


# --- tampering ------------------------------------------------------------------------------------
@pytest.fixture
def walked(session, flows, people) -> list[int]:
    """Three shipments: one shipped on, one waiting for a second reviewer, one rejected."""
    docs = []
    for _ in range(3):
        doc_id = services.create_document(session, people["zhang"], "shipment", SHIPMENT)
        docs.append(doc_id.document.id)
        services.act(session, docs[-1], people["zhang"], "submit", 1)
    services.act(session, docs[0], people["wang"], "approve", 1, "核对无误")
    services.act(session, docs[0], people["li"], "approve", 1, "数量规格一致")
    services.act(session, docs[1], people["wang"], "approve", 1)
    services.act(session, docs[2], people["li"], "reject", 1, "规格不符")
    with pytest.raises(SelfReview):
        services.act(session, docs[1], people["zhang"], "approve", 1)  # refused, and logged
    result = assert_verifies(session)
    assert len(result.root) == 64 and int(result.root, 16) >= 0
    return docs


def sql(engine: Engine, statement: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def doc_events(session: Session, doc_id: int) -> list[AuditEvent]:
    events = chain_events(session, audit.document_chain(doc_id))
    session.commit()  # end the read without expiring them (a rollback would, and on SQLite
    return events  # the reload would start a transaction that holds the write lock)


def failed(session: Session) -> audit.VerifyResult:
    session.expire_all()
    result = audit.verify(session)
    session.rollback()
    assert not result.ok, "tampering went unnoticed"
    return result


def test_altered_comment_is_named(engine, session, walked):
    victim = doc_events(session, walked[0])[2]  # wang's approval
    sql(engine, "UPDATE audit_events SET comment = :c WHERE id = :id", c="随便看看", id=victim.id)
    result = failed(session)
    assert result.bad_event == victim.id
    assert f"event {victim.id}" in result.problem and "altered" in result.problem


def test_altered_outcome_or_actor_is_named(engine, session, walked):
    victim = next(e for e in doc_events(session, walked[1]) if e.outcome == "refused")
    sql(engine, "UPDATE audit_events SET outcome = 'ok', actor = 'wang' WHERE id = :id",
        id=victim.id)  # fmt: skip
    assert failed(session).bad_event == victim.id


def test_deleted_middle_event(engine, session, walked):
    events = doc_events(session, walked[0])
    sql(engine, "DELETE FROM audit_events WHERE id = :id", id=events[2].id)
    result = failed(session)
    assert result.bad_event == events[3].id and "missing" in result.problem


@pytest.mark.parametrize("which", [0, 1, 2])
def test_deleted_whole_history_of_a_document(engine, session, walked, which):
    """All of a document's events and its chain row: caught even for the newest document."""
    key = audit.document_chain(walked[which])
    before = audit.verify(session).root
    session.rollback()
    sql(engine, "DELETE FROM audit_events WHERE chain_key = :k", k=key)
    sql(engine, "DELETE FROM audit_chains WHERE key = :k", k=key)
    result = failed(session)
    assert result.root != before
    assert key in result.report or f"document {walked[which]}" in result.report


def test_deleted_document_and_its_whole_history_changes_the_kept_head(engine, session, walked):
    """Removing the newest document with everything it touched leaves a consistent database;
    only the head the auditors kept outside (`verify`'s root) shows it. That is what it is for."""
    before = audit.verify(session).root
    session.rollback()
    doc_id, key = walked[-1], audit.document_chain(walked[-1])
    for table in ("reviews", "document_revisions", "notifications", "unique_claims", "task_claims"):
        sql(engine, f"DELETE FROM {table} WHERE document_id = :d", d=doc_id)
    sql(engine, "DELETE FROM documents WHERE id = :d", d=doc_id)
    sql(engine, "DELETE FROM audit_events WHERE chain_key = :k", k=key)
    sql(engine, "DELETE FROM audit_chains WHERE key = :k", k=key)
    session.expire_all()
    result = audit.verify(session)
    session.rollback()
    assert result.root != before


def test_swapped_ids(engine, session, walked):
    first, second = doc_events(session, walked[0])[1:3]
    sql(engine, "UPDATE audit_events SET id = -1 WHERE id = :a", a=first.id)
    sql(engine, "UPDATE audit_events SET id = :a WHERE id = :b", a=first.id, b=second.id)
    sql(engine, "UPDATE audit_events SET id = :b WHERE id = -1", b=second.id)
    assert failed(session).bad_event in (first.id, second.id)


def test_swapped_chain_positions(engine, session, walked):
    first, second = doc_events(session, walked[0])[1:3]
    sql(engine, "UPDATE audit_events SET chain_seq = -1 WHERE id = :a", a=first.id)
    sql(engine, "UPDATE audit_events SET chain_seq = :s WHERE id = :b", s=first.chain_seq,
        b=second.id)  # fmt: skip
    sql(engine, "UPDATE audit_events SET chain_seq = :s WHERE id = :a", s=second.chain_seq,
        a=first.id)  # fmt: skip
    assert failed(session).bad_event in (first.id, second.id)


def test_swapped_times(engine, session, walked):
    first, second = doc_events(session, walked[0])[1:3]
    sql(engine, "UPDATE audit_events SET at = (SELECT at FROM audit_events WHERE id = :b) "
        "WHERE id = :a", a=first.id, b=second.id)  # fmt: skip
    assert failed(session).bad_event == first.id


def test_deleted_last_event_without_fixing_the_head(engine, session, walked):
    events = doc_events(session, walked[1])
    sql(engine, "DELETE FROM audit_events WHERE id = :id", id=events[-1].id)
    result = failed(session)
    assert audit.document_chain(walked[1]) in result.problem
    assert "deleted at its end" in result.problem


def test_rebuilt_chain_changes_the_kept_head(engine, session, walked):
    """A database administrator who deletes the last event and rewinds the head leaves a chain
    that verifies; the root printed earlier (kept outside the database) no longer matches."""
    before = audit.verify(session).root
    session.rollback()
    key = audit.document_chain(walked[1])
    events = doc_events(session, walked[1])
    sql(engine, "DELETE FROM audit_events WHERE id = :id", id=events[-1].id)
    sql(engine, "UPDATE audit_chains SET length = :n, head = :h WHERE key = :k",
        n=len(events) - 1, h=events[-2].hash, k=key)  # fmt: skip
    after = assert_verifies(session)
    assert after.root != before


def test_altered_registry_entry(engine, session, walked):
    sql(engine, "UPDATE audit_chains SET position = position + 100 WHERE key = :k",
        k=audit.document_chain(walked[1]))  # fmt: skip
    assert "registry" in failed(session).report


@pytest.fixture
def laned(session, flows, people) -> list[int]:
    """Forty documents: their chains spread over the registry's lanes, two or more in each."""
    docs = [
        services.create_document(session, people["zhang"], "shipment", SHIPMENT).document.id
        for _ in range(2 * audit.REGISTRY_LANES + 8)
    ]
    lanes = {row.key: row.lane for row in session.execute(select(AuditChain.key, AuditChain.lane))}
    assert {lanes[audit.document_chain(d)] for d in docs} == set(range(1, audit.REGISTRY_LANES + 1))
    assert_verifies(session)
    return docs


def test_a_chain_deleted_from_the_middle_of_a_lane(engine, session, laned):
    key = audit.document_chain(laned[0])  # the first of its lane: others follow it
    sql(engine, "DELETE FROM audit_events WHERE chain_key = :k", k=key)
    sql(engine, "DELETE FROM audit_chains WHERE key = :k", k=key)
    assert "a chain is missing" in failed(session).report


def test_a_chain_moved_to_another_lane(engine, session, laned):
    key = audit.document_chain(laned[-1])  # the last of its lane: nothing follows it there
    sql(engine, "UPDATE audit_chains SET lane = 0, position = 1000 WHERE key = :k", k=key)
    report = failed(session).report
    assert f"chain registry entry `{key}` was altered" in report


def test_a_whole_lane_deleted(engine, session, laned):
    """A lane's root and every chain in it, events and all: lane 0 names the missing root."""
    lane = audit.lane_of(audit.document_chain(laned[0]))
    keys = [
        audit.document_chain(d) for d in laned if audit.lane_of(audit.document_chain(d)) == lane
    ]
    for key in keys:
        sql(engine, "DELETE FROM audit_events WHERE chain_key = :k", k=key)
    sql(engine, "DELETE FROM audit_chains WHERE lane = :l OR key = :r", l=lane,
        r=audit.lane_root(lane))  # fmt: skip
    report = failed(session).report
    assert "chain registry broken" in report
    assert f"document {laned[0]} has no audit history" in report


def test_a_lane_root_deleted(engine, session, laned):
    root = audit.lane_root(audit.REGISTRY_LANES)
    sql(engine, "DELETE FROM audit_chains WHERE key = :r", r=root)
    report = failed(session).report
    assert f"lane {audit.REGISTRY_LANES} has no root `{root}`" in report


# --- the CLI --------------------------------------------------------------------------------------
def test_cli_audit_verify(app):
    from webui.extensions import db

    with app.app_context():
        users = {u.username: u for u in db.session.scalars(select(User))}
        services.publish_files(db.session, RULES_DEFINITIONS)  # the frozen rules shipment
        doc_id = services.create_document(db.session, users["zhang"], "shipment", SHIPMENT)
        doc_id = doc_id.document.id
        services.act(db.session, doc_id, users["zhang"], "submit", 1)
        services.act(db.session, doc_id, users["wang"], "approve", 1, "核对无误")
        expected = audit.verify(db.session)
        victim = chain_events(db.session, audit.document_chain(doc_id))[-1].id
        db.session.remove()
    runner = app.test_cli_runner()

    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"OK {expected.events} events"
    assert lines[1].startswith(f"head {expected.root}")

    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE audit_events SET comment = 'x' WHERE id = :id"),
                         {"id": victim})  # fmt: skip
        assert db.session.get(Document, doc_id) is not None
        db.session.remove()
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"event {victim}" in result.output
    assert "FAILED" in result.output


def test_a_kept_anchor_catches_a_rebuilt_chain(engine, session, walked, people):
    """A database administrator who rewrites an event and re-hashes the rest of its chain
    fools `verify`; the anchor the auditors kept outside the database does not."""
    kept = audit.anchor(session)
    session.rollback()
    doc_id = walked[0]
    more = services.create_document(session, people["zhang"], "shipment", SHIPMENT)
    assert audit.check_anchor(session, kept) is None  # new events since the anchor are fine
    session.rollback()
    first = doc_events(session, doc_id)[1]  # the submit
    sql(engine, "UPDATE audit_events SET comment = 'rewritten' WHERE id = :i", i=first.id)
    # re-hash the chain from the altered event on, as someone with database access could
    session.expire_all()
    prev = first.prev_hash
    for event in chain_events(session, audit.document_chain(doc_id))[1:]:
        event.prev_hash = prev
        event.hash = audit.event_hash(event)
        prev = event.hash
    chain = session.get(AuditChain, audit.document_chain(doc_id))
    chain.head = prev
    session.commit()
    assert audit.verify(session).ok  # the rebuilt chain is consistent in itself
    session.rollback()
    problem = audit.check_anchor(session, kept)
    assert problem is not None and "differs from the anchored history" in problem
    assert more.document.id not in walked
