"""Overdue, visibly: overdue work at the top of the inboxes that can act on it, and the overdue
deposits list (days overdue, amount) for 内勤 and 财务."""

from __future__ import annotations

import datetime as dt

import pytest
from freezegun import freeze_time
from sqlalchemy import update

from tests.conftest import DEFINITIONS
from tests.webui.test_api import Api
from webui.extensions import db
from workflow.definitions.build import load_flow_file
from workflow.models import Document


@pytest.fixture
def api(client, api_as) -> Api:
    return Api(client, api_as)


def deposit(api: Api, refund: str) -> dict:
    """A tender deposit through its dual review, waiting for payment, refund due `refund`."""
    data = dict(load_flow_file(DEFINITIONS[0].parent / "tender_deposit.yaml").example)
    data.update(bid_date="2020-01-10", cycle_end="2020-02-10", expected_refund_date=refund)
    doc = api.create("zhang", "tender_deposit", data)
    assert api.act(doc, "zhang", "submit").status_code == 200
    for name in ("liu", "zhao"):
        assert api.act(doc, name, "approve").status_code == 200
    return doc


def test_overdue_work_comes_first_in_the_inbox_and_the_task_api(app, api, login_as):
    first = api.submitted("zhang")  # longest waiting, on time
    second = api.submitted("zhang")
    late = api.submitted("zhang")  # newest, but past its deadline
    with app.app_context():
        past = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
        db.session.execute(update(Document).where(Document.id == late["id"]).values(due_at=past))
        db.session.commit()
        db.session.remove()
    ids = [d["id"] for d in api.get("/tasks", "li").get_json()["items"]]
    assert ids == [late["id"], first["id"], second["id"]]
    # keyset pages keep that order and neither skip nor repeat
    page1 = api.get("/tasks?limit=2", "li").get_json()
    page2 = api.get(f"/tasks?limit=2&cursor={page1['next']}", "li").get_json()
    assert [d["id"] for d in page1["items"] + page2["items"]] == ids and page2["next"] is None
    listed = api.get("/documents?part=waiting", "li").get_json()["items"]
    assert [d["id"] for d in listed] == ids
    pages = api.get("/documents?part=waiting&limit=1", "li").get_json()
    seen = [d["id"] for d in pages["items"]]
    while pages["next"]:
        pages = api.get(f"/documents?part=waiting&limit=1&cursor={pages['next']}", "li").get_json()
        seen += [d["id"] for d in pages["items"]]
    assert seen == ids
    page = login_as("li").get("/inbox").get_data(as_text=True)
    assert page.index(f'href="/documents/{late["id"]}"') < page.index(
        f'href="/documents/{first["id"]}"'
    )


def test_the_overdue_deposits_list_shows_days_overdue_and_amount(app, api, login_as):
    with freeze_time("2026-11-10 02:00:00"):
        older = deposit(api, "2026-10-01")
        newer = deposit(api, "2026-11-01")
        deposit(api, "2026-12-31")  # not due yet
    with freeze_time("2026-11-24 04:00:00"):  # 12:00 in China
        body = api.get("/overdue", "zhang").get_json()
        assert [(i["id"], i["days_overdue"], i["amount"]) for i in body["items"]] == [
            (older["id"], 54, "50000.00"),
            (newer["id"], 23, "50000.00"),
        ]
        assert body["items"][0]["due_date"] == "2026-10-01"
        assert api.get("/overdue", "zhao").status_code == 200  # 财务
        page = login_as("zhao").get("/overdue").get_data(as_text=True)
        assert "逾期保证金" in page and ">54<" in page and "50,000.00" in page
    for name in ("li", "xu", "shen"):
        response = api.get("/overdue", name)
        assert response.status_code == 403 and response.get_json()["error"]["code"] == "forbidden"


def test_the_tick_command_marks_a_deposit_overdue_once(app, api):
    with freeze_time("2026-11-10 02:00:00"):
        doc = deposit(api, "2026-11-20")
    runner = app.test_cli_runner()
    before = runner.invoke(args=["tick", "--today", "2026-11-20"])
    assert before.exit_code == 0 and "0 newly overdue" in before.output
    first = runner.invoke(args=["tick", "--today", "2026-11-24"])
    assert first.exit_code == 0 and f"1 newly overdue document(s): [{doc['id']}]" in first.output
    again = runner.invoke(args=["tick", "--today", "2026-11-24"])
    assert "0 newly overdue" in again.output and "0 escalation(s)" in again.output
    later = runner.invoke(args=["tick", "--today", "2026-12-20"])
    assert "1 escalation(s)" in later.output
    texts = [n["text"] for n in api.get("/notifications", "ma").get_json()["items"]]
    assert any("逾期升级" in t for t in texts)  # the GM is told 30 days on
    assert api.get("/audit/verify", "shen").get_json()["ok"] is True


def test_the_tick_keeps_sqlite_planner_statistics(app, api, db_url):
    """SQLite has no autovacuum: the tick runs a bounded ANALYZE there, so the planner knows the
    tables' sizes (lists stay on their indexes as the data grows); PostgreSQL does it itself."""
    from sqlalchemy import text

    from webui.extensions import db

    api.submitted()
    result = app.test_cli_runner().invoke(args=["tick"])
    assert result.exit_code == 0, result.output
    refreshed = "planner statistics refreshed" in result.output
    assert refreshed is db_url.startswith("sqlite")
    if refreshed:
        with app.app_context():
            tables = set(db.session.scalars(text("SELECT DISTINCT tbl FROM sqlite_stat1")))
            assert {"documents", "audit_events", "users"} <= tables
