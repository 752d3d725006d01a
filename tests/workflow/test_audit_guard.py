"""The audit history cannot be rewritten by the application's own database role (PostgreSQL
triggers), and `verify` gives no false alarm while people keep approving."""

from __future__ import annotations

import contextlib
import threading
import uuid

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import PASSWORD, PEOPLE, PG_URL

# The review rules are tested on the frozen shipment (tests/data/flows/rules/shipment.yaml).
from tests.conftest import RULES_DEFINITIONS as DEFINITIONS
from tests.workflow.test_review import SHIPMENT
from workflow import audit, services
from workflow.accounts import create_user
from workflow.db import Base, make_engine, normalize_url
from workflow.errors import Conflict, Refused

JOIN_TIMEOUT = 120


# --- PostgreSQL triggers --------------------------------------------------------------------------
@pytest.fixture
def guarded_as_app_role(db_url):
    """A schema with the tables and migration 0005's triggers, owned by the test superuser, and
    a session factory whose connections run as a plain role with every DML privilege (even
    DELETE and TRUNCATE): only the triggers stand in the way."""
    assert db_url.startswith("postgresql")
    tag = uuid.uuid4().hex[:8]
    schema, role = f"fuhe_guard_{tag}", f"fuhe_app_{tag}"
    admin = make_engine(PG_URL or "")
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        conn.execute(text(f'CREATE ROLE "{role}" NOLOGIN'))
    url = make_url(normalize_url(PG_URL or "")).update_query_dict(
        {"options": f"-csearch_path={schema}"}
    )
    owner = make_engine(url.render_as_string(hide_password=False))
    Base.metadata.create_all(owner)
    with owner.begin() as conn:
        for statement in audit.POSTGRES_GUARD_SQL:
            conn.execute(text(statement))
        conn.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
        conn.execute(text(f'GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN '
                          f'SCHEMA "{schema}" TO "{role}"'))  # fmt: skip
        conn.execute(text(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"'))
    app_engine = make_engine(url.render_as_string(hide_password=False))

    @event.listens_for(app_engine, "connect")
    def _as_app_role(dbapi_connection, _record) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f'SET ROLE "{role}"')
        dbapi_connection.commit()

    try:
        yield sessionmaker(app_engine, expire_on_commit=False)
    finally:
        app_engine.dispose()
        owner.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()


def refused(session: Session, statement: str, match: str = "append-only") -> None:
    with pytest.raises((ProgrammingError, DBAPIError), match=match):
        session.execute(text(statement))
    session.rollback()


@pytest.mark.postgres_only
def test_app_role_cannot_rewrite_the_audit_history(guarded_as_app_role):
    with guarded_as_app_role() as s:
        services.publish_files(s, DEFINITIONS)
        people = {n: create_user(s, n, PASSWORD, r) for n, r in PEOPLE.items()}
        doc = services.create_document(s, people["zhang"], "shipment", SHIPMENT).document.id
        services.act(s, doc, people["zhang"], "submit", 1)
        services.act(s, doc, people["wang"], "approve", 1, "核对无误")  # appends still work
        with pytest.raises(Refused):
            services.act(s, doc, people["zhang"], "approve", 1)  # a refusal is appended too

        for table in ("audit_events", "reviews", "document_revisions"):
            refused(s, f"UPDATE {table} SET id = id")
            refused(s, f"DELETE FROM {table}")
            refused(s, f"TRUNCATE {table} CASCADE")
        refused(s, "UPDATE audit_events SET comment = 'x' WHERE action = 'approve'")
        refused(s, "DELETE FROM documents")
        refused(s, "TRUNCATE documents CASCADE")
        refused(s, "DELETE FROM audit_chains")
        refused(s, "TRUNCATE audit_chains CASCADE")
        refused(s, "UPDATE audit_chains SET length = length - 1", "may only grow")
        refused(s, "UPDATE audit_chains SET head = 'x'", "may only grow")
        # an entry cannot change lanes either, even while its chain grows by one
        refused(s, "UPDATE audit_chains SET lane = lane + 1, length = length + 1", "may only grow")
        # nor can the role switch the guard off
        refused(s, "ALTER TABLE audit_events DISABLE TRIGGER ALL", "must be owner")
        refused(s, "DROP TRIGGER fuhe_audit_events_append_only ON audit_events", "must be owner")
        refused(s, "SET session_replication_role = replica", "permission denied")

        result = audit.verify(s)
        assert result.ok, result.report
        assert result.events == s.scalar(text("SELECT count(*) FROM audit_events"))
        assert s.scalar(text("SELECT count(*) FROM reviews WHERE event_seq IS NOT NULL")) == 1


# --- verify while people approve ------------------------------------------------------------------
REVIEWERS = ("wang", "chen", "li", "zhou", "duo")
THREADS = 8
DOCUMENTS = 24


def test_verify_in_a_loop_while_eight_threads_approve(
    session, session_factory, rules_flows, people
):
    """The first verify takes its snapshot, then waits until approvals have committed: a verify
    that read the chain heads and the events in different snapshots reported events "deleted at
    its end". Every run while the writers go on must be clean."""
    docs = []
    for _ in range(DOCUMENTS):
        doc = services.create_document(session, people["zhang"], "shipment", SHIPMENT).document.id
        services.act(session, doc, people["zhang"], "submit", 1)
        docs.append(doc)
    start, committed, done = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []
    runs: list[audit.VerifyResult] = []

    def writer(number: int) -> None:
        try:
            start.wait(JOIN_TIMEOUT)
            name = REVIEWERS[number % len(REVIEWERS)]
            order = docs[number % 3 :: 1] + docs[: number % 3]
            with session_factory() as s:
                user = s.get(type(people[name]), people[name].id)
                for doc in order:
                    # quorum already met, or already reviewed: refused (and logged)
                    with contextlib.suppress(Refused, Conflict):
                        services.act(s, doc, user, "approve", 1, f"{name} 看过")
                    committed.set()
        except BaseException as exc:  # reported below
            errors.append(exc)
            committed.set()

    def hold_snapshot(_total: int) -> None:
        if not start.is_set():
            start.set()  # the snapshot is taken: let the writers commit behind it
            assert committed.wait(JOIN_TIMEOUT), "no writer committed"

    def verifier() -> None:
        try:
            with session_factory() as s:
                runs.append(audit.verify(s, batch=50, total=hold_snapshot))
                while not done.is_set():
                    runs.append(audit.verify(s, batch=50))
                runs.append(audit.verify(s, batch=50))
        except BaseException as exc:  # reported below
            errors.append(exc)
            start.set()

    threads = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(THREADS)]
    checker = threading.Thread(target=verifier, daemon=True)
    checker.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    done.set()
    checker.join(JOIN_TIMEOUT)
    assert not checker.is_alive() and not any(t.is_alive() for t in threads)
    assert not errors, errors
    alarms = [r.report for r in runs if not r.ok]
    assert alarms == [], alarms
    assert len(runs) >= 2
    assert runs[-1].events > runs[0].events  # the first run saw its snapshot, not the end
    session.expire_all()
    states = session.scalars(text("SELECT state FROM documents")).all()
    assert set(states) == {"ready_to_ship"}  # each moved on exactly once, by two approvals
