"""Round trips to the database per request, counted through SQLAlchemy's events so that speed
cannot creep away unnoticed: an approval over HTTP in at most 12, and reads that take no lock."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain
from typing import Any

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from tests.webui.test_api import Api
from webui.extensions import db
from workflow.db import end_reads, only_reads
from workflow.models import User

MAX_APPROVE_ROUND_TRIPS = 12
WRITE = re.compile(r"(INSERT INTO|UPDATE|DELETE FROM) (\w+)")


@contextmanager
def counted(app) -> Iterator[list[str]]:
    """Every round trip: each statement, each BEGIN, COMMIT and ROLLBACK, and each ping of a
    pooled connection (a `SELECT 1` sent outside the statement events)."""
    with app.app_context():
        engine = db.engine
    trips: list[str] = []
    ping = engine.dialect.do_ping

    def counted_ping(dbapi_connection: Any) -> bool:
        trips.append("PING")
        return ping(dbapi_connection)

    def statement(_conn: Any, _cursor: Any, text: str, *_: Any) -> None:
        if not text.startswith("BEGIN"):  # SQLite's BEGIN is counted by the begin event
            trips.append(text.split("\n", 1)[0][:80])

    listeners = [
        ("before_cursor_execute", statement),
        ("begin", lambda _conn: trips.append("BEGIN")),
        ("commit", lambda _conn: trips.append("COMMIT")),
        ("rollback", lambda _conn: trips.append("ROLLBACK")),
    ]
    for name, listener in listeners:
        event.listen(engine, name, listener)
    engine.dialect.do_ping = counted_ping  # type: ignore[method-assign]
    try:
        yield trips
    finally:
        del engine.dialect.do_ping  # the class's method again
        for name, listener in listeners:
            event.remove(engine, name, listener)


def test_an_approval_over_http_takes_at_most_12_round_trips(app, client, api_as):
    api = Api(client, api_as)
    doc = api.submitted()
    api.headers("wang")  # the token exists before counting
    with counted(app) as trips:
        response = api.act(doc, "wang", "approve", revision=doc["revision"])
    assert response.status_code == 200, response.get_json()
    assert len(response.get_json()["review"]["approvals"]) == 1
    assert len(trips) <= MAX_APPROVE_ROUND_TRIPS, "\n".join(trips)
    assert trips.count("BEGIN") == 1 and trips.count("COMMIT") == 1, trips


def test_an_approval_writes_its_review_its_event_and_the_documents_report_row_only(
    app, client, api_as
):
    """What a first approval writes, table by table: the review, the audit event and its
    chain's tip, and the document's report row (last activity). No copy of the decision: the
    reports count approvals from `reviews` (until migration 0100, `report_decisions` cost
    every decision one more row)."""
    api = Api(client, api_as)
    doc = api.submitted()
    api.headers("wang")
    with counted(app) as trips:
        assert api.act(doc, "wang", "approve", revision=doc["revision"]).status_code == 200
    written = sorted(match.groups() for match in map(WRITE.match, trips) if match)
    assert written == [
        ("INSERT INTO", "audit_events"),
        ("INSERT INTO", "reviews"),
        ("UPDATE", "audit_chains"),
        ("UPDATE", "report_documents"),
    ], trips


def test_the_quorum_approval_stays_within_12_round_trips(app, client, api_as):
    api = Api(client, api_as)
    doc = api.submitted()
    assert api.act(doc, "wang", "approve", revision=doc["revision"]).status_code == 200
    api.headers("li")
    with counted(app) as trips:
        response = api.act(doc, "li", "approve", revision=doc["revision"])
    body = response.get_json()
    assert response.status_code == 200 and body["state"] != "double_check", body
    assert len(trips) <= MAX_APPROVE_ROUND_TRIPS, "\n".join(trips)
    assert trips.count("BEGIN") == 1, trips  # no second transaction re-reads the document


def test_reads_on_sqlite_take_no_write_lock(app, client, api_as, db_url):
    api = Api(client, api_as)
    doc = api.create()
    api.headers("zhang")
    with app.app_context():
        engine = db.engine
    begins: list[str] = []

    def seen(_conn: Any, _cursor: Any, text: str, *_: Any) -> None:
        if text.startswith("BEGIN"):
            begins.append(text)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert api.get(f"/documents/{doc['id']}", "zhang").status_code == 200
        assert api.get("/tasks", "zhang").status_code == 200
        read_begins = list(begins)
        begins.clear()
        assert api.act(doc, "zhang", "submit", revision=doc["revision"]).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    if db_url.startswith("sqlite"):
        assert read_begins and all(b == "BEGIN" for b in read_begins), read_begins
        assert "BEGIN IMMEDIATE" in begins  # writers still take the write lock up front


def test_the_inbox_is_paged_in_sql_and_skips_what_the_reviewer_decided(app, client, api_as):
    """wang decided 3 of 7 open documents: his pages hold exactly the other 4, in order, and a
    page costs the same number of statements however many documents there are."""
    api = Api(client, api_as)
    docs = [api.submitted("zhang") for _ in range(7)]
    for doc in docs[:3]:
        assert api.act(doc, "wang", "approve", revision=doc["revision"]).status_code == 200
    seen, cursor, pages = [], None, 0
    while True:
        query = "/tasks?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = api.get(query, "wang").get_json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next"]
        if not cursor:
            break
    assert seen == [d["id"] for d in docs[3:]] and pages <= 3
    api.headers("chen")
    with counted(app) as few:
        assert len(api.get("/tasks?limit=50", "chen").get_json()["items"]) == 7
    for _ in range(8):
        api.submitted("zhang")
    with counted(app) as many:
        assert len(api.get("/tasks?limit=50", "chen").get_json()["items"]) == 15
    assert len(many) == len(few), (few, many)


def test_a_list_of_documents_reviewed_by_different_people_costs_the_same_statements(
    app, client, api_as
):
    """Each document approved by someone else: the list shows every approver (name and role
    read by the rules) and still costs the same statements for 2 documents as for 8 — the
    reviewers come in one query, never one per review."""
    api = Api(client, api_as)
    approvers = ["wang", "chen", "li", "zhou"]
    approved: list[str] = []

    def documents(count: int) -> None:
        for _ in range(count):
            doc = api.submitted("zhang")
            who = approvers[len(approved) % len(approvers)]
            approved.append(who)
            assert api.act(doc, who, "approve", revision=doc["revision"]).status_code == 200

    def listed() -> tuple[int, dict[int, list[str]]]:
        api.headers("shen")
        with counted(app) as trips:
            body = api.get("/documents?limit=50", "shen").get_json()
        names = {
            item["id"]: [a["user"] for a in item["review"]["approvals"]] for item in body["items"]
        }
        return len(trips), names

    documents(2)
    listed()  # caches warm (each flow version compiled once per process)
    few, names = listed()
    assert sorted(chain.from_iterable(names.values())) == ["chen", "wang"]
    documents(6)
    many, names = listed()
    assert len(names) == 8 and sorted(chain.from_iterable(names.values())) == sorted(approved)
    assert many == few


@pytest.mark.postgres_only
def test_a_get_that_only_read_ends_with_commit_and_keeps_its_statements_prepared(
    app, client, api_as
):
    """psycopg deallocates every prepared statement on ROLLBACK: a GET that only read ends
    with COMMIT, so the statements psycopg prepared (after 5 uses) are there the next time."""
    api = Api(client, api_as)
    api.submitted("zhang")
    api.headers("chen")
    used: list[Any] = []

    def remember(conn: Any, *_: Any) -> None:
        used.append(conn.connection.dbapi_connection)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", remember)
    try:
        for _ in range(7):
            with counted(app) as trips:
                assert len(api.get("/tasks?limit=50", "chen").get_json()["items"]) == 1
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    assert trips[-1] == "COMMIT" and "ROLLBACK" not in trips, trips
    connection = used[-1]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        prepared = cursor.fetchone()[0]
    connection.commit()
    assert prepared >= 3, "the inbox's statements were not kept prepared"


def test_only_what_cannot_change_data_counts_as_a_read() -> None:
    reads = [
        "SELECT 1",
        "  select id FROM documents WHERE id = 1 FOR UPDATE",  # a lock ends with either
        "WITH few AS MATERIALIZED (SELECT id FROM documents) SELECT * FROM few",
        "SET LOCAL max_parallel_workers_per_gather = 0",
        "SHOW server_version",
    ]
    writes = [
        "INSERT INTO reviews VALUES (1)",
        "UPDATE documents SET state = 'x'",
        "DELETE FROM task_claims",
        "WITH moved AS (UPDATE documents SET state = 'x' RETURNING id) SELECT * FROM moved",
        "with gone as (delete from task_claims returning id) select 1",
        "SELECTED_NOTHING",  # not a SELECT keyword: counted as a write
        "CREATE TABLE t (id int)",
        "VACUUM",
    ]
    assert all(only_reads(s) for s in reads)
    assert not any(only_reads(s) for s in writes)


def test_end_reads_commits_only_a_postgresql_transaction_that_only_read(session: Any) -> None:
    from workflow.accounts import create_user

    user = create_user(session, "reader", "secret-password-1", ["auditor"])
    postgres = session.get_bind().dialect.name == "postgresql"
    with Session(session.get_bind()) as web:  # expires on commit, as Flask-SQLAlchemy's does
        reader = web.get(User, user.id)
        assert end_reads(web) is postgres  # SQLite has no prepared statements to keep
    assert reader.username == "reader"  # still readable once closed (a streamed response)
    # A write that was flushed but not committed is rolled back, never committed here.
    session.execute(update(User).where(User.id == user.id).values(display_name="changed"))
    assert end_reads(session) is False
    session.rollback()
    assert session.scalar(select(User.display_name).where(User.id == user.id)) != "changed"
    session.rollback()
    user.display_name = "pending"  # a change not yet flushed
    assert end_reads(session) is False
    session.rollback()
    assert session.scalar(select(User.display_name).where(User.id == user.id)) != "pending"


def test_the_inboxs_limits_are_written_into_its_sql_and_the_rest_stay_parameters(
    app, client, api_as
):
    """PostgreSQL costs a LIMIT it cannot see as 10 % of the rows; with the limits in the SQL
    the prepared union's generic plan costs what the custom plans do, and is kept."""
    api = Api(client, api_as)
    api.submitted("zhang")
    api.headers("chen")
    sent: list[tuple[str, Any]] = []

    def remember(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", remember)
    try:
        assert len(api.get("/tasks?limit=20", "chen").get_json()["items"]) == 1
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    keys = [(s, p) for s, p in sent if s.startswith(("SELECT anon_1.entered_at", "WITH few"))]
    assert len(keys) == 2, sent  # the overdue tier, then the union of the rest
    for statement, parameters in keys:
        assert "LIMIT 21" in statement, statement  # the page (20) and one more
        if isinstance(parameters, dict):  # PostgreSQL's named parameters (SQLite: positional)
            names = " ".join(parameters)
            assert "limit" not in names and "user_id" in names and "now" in names, names
