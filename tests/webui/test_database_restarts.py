"""A database restart (or failover) seen by the app: its connections are closed under it.

Simulated by ending this app's server processes (`pg_terminate_backend`, waiting until they
are gone), either between requests or in the middle of one, at a chosen statement. Nothing may
answer 500, nothing may be half-applied, and the next request must simply work.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text

from tests.conftest import _postgres_engine, seeded_app
from tests.webui.test_api import Api
from workflow import db as database
from workflow.models import Review

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def named_app(db_url: str, tmp_path: Path) -> Iterator[tuple[Any, str]]:
    """The app, its connections named so that exactly they can be ended."""
    name = f"fuhe_restart_{uuid.uuid4().hex[:8]}"
    options = {"connect_args": {"application_name": name}}
    with seeded_app(db_url, tmp_path, SQLALCHEMY_ENGINE_OPTIONS=options) as application:
        yield application, name


@pytest.fixture
def api(named_app: tuple[Any, str]) -> Api:
    from webui.extensions import db
    from workflow.accounts import issue_token

    app, _name = named_app

    def token_for(username: str) -> dict[str, str]:
        with app.app_context():
            token = issue_token(db.session, username)
            db.session.remove()
        return {"Authorization": f"Bearer {token}"}

    return Api(app.test_client(), token_for)


def restart(name: str) -> int:
    """End every server process of the app's connections (what a restart does to them)."""
    with _postgres_engine().connect() as conn:
        ended = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) "
                "FROM pg_stat_activity WHERE application_name = :name"
            ),
            {"name": name},
        ).scalar_one()
        conn.commit()
    return int(ended)


def die_before(app: Any, fragment: str) -> Callable[[], None]:
    """Make the app's connection die just before its next statement containing `fragment`."""
    from webui.extensions import db

    with app.app_context():
        engine = db.engine

    def before(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if fragment not in statement:
            return
        event.remove(engine, "before_cursor_execute", before)
        pid = conn.connection.dbapi_connection.info.backend_pid
        with _postgres_engine().connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
            admin.commit()

    event.listen(engine, "before_cursor_execute", before)
    return lambda: (
        event.contains(engine, "before_cursor_execute", before)
        and event.remove(engine, "before_cursor_execute", before)
    )


def reviews_of(document_id: int) -> list[tuple[str, str]]:
    with _postgres_engine().connect() as conn:
        rows = conn.execute(
            select(Review.decision, Review.user_id).where(Review.document_id == document_id)
        )
        return [(decision, str(user)) for decision, user in rows]


def assert_outage(response: Any) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "database_unavailable"
    assert response.headers["Retry-After"] == "1"


def test_a_restart_between_requests_goes_unnoticed(named_app, api, monkeypatch) -> None:
    """A connection idle past PING_AFTER_IDLE is pinged before use: the dead pool is replaced
    and the request is answered as if nothing happened."""
    _app, name = named_app
    doc = api.submitted()
    assert api.get(f"/documents/{doc['id']}", "chen").status_code == 200
    assert restart(name) >= 1
    monkeypatch.setattr(database, "PING_AFTER_IDLE", 0.0)  # "idle long enough", without a wait
    response = api.get(f"/documents/{doc['id']}", "chen")
    assert response.status_code == 200, response.get_json()
    assert api.act(doc, "chen", "approve").status_code == 200


def test_a_read_whose_connection_died_answers_503_then_recovers(named_app, api) -> None:
    """Within the ping window (a busy worker) the read meets the dead connection itself: an
    outage to retry (503 with Retry-After), never a 500; the next read works."""
    _app, name = named_app
    doc = api.submitted()
    assert api.get(f"/documents/{doc['id']}", "chen").status_code == 200
    assert restart(name) >= 1
    assert_outage(api.get(f"/documents/{doc['id']}", "chen"))
    response = api.get(f"/documents/{doc['id']}", "chen")
    assert response.status_code == 200, response.get_json()


def test_an_action_whose_document_load_dies_is_an_outage_not_a_conflict(named_app, api) -> None:
    """The connection dies at the action's locked load: 503 (retry), not "the document is
    busy" (409), which would send the reviewer to reload a document nobody changed."""
    app, _name = named_app
    doc = api.submitted()
    api.headers("chen")  # the token first: the death must meet the load, not the sign-in
    undo = die_before(app, "FOR UPDATE")
    try:
        assert_outage(api.act(doc, "chen", "approve"))
    finally:
        undo()
    assert reviews_of(doc["id"]) == []
    response = api.act(doc, "chen", "approve")
    assert response.status_code == 200, response.get_json()
    assert len(reviews_of(doc["id"])) == 1


def test_an_action_whose_write_dies_answers_503_and_changes_nothing(named_app, api) -> None:
    """The connection dies at the review's INSERT, inside the unit of work: nothing of the
    action is stored (no review, no event), the answer is 503, and the retry counts once."""
    app, _name = named_app
    doc = api.submitted()
    api.headers("chen")
    before = api.get(f"/documents/{doc['id']}/history", "chen").get_json()
    undo = die_before(app, "INSERT INTO reviews")
    try:
        assert_outage(api.act(doc, "chen", "approve"))
    finally:
        undo()
    assert reviews_of(doc["id"]) == []
    assert api.get(f"/documents/{doc['id']}/history", "chen").get_json() == before
    response = api.act(doc, "chen", "approve")
    assert response.status_code == 200, response.get_json()
    assert len(reviews_of(doc["id"])) == 1
