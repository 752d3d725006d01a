"""`GET /api/v1/tasks` pages merge the reviewer's (flow version, state) ranges in one order,
never stop early and never repeat or skip a task while documents are added (issue 15)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from tests.webui.test_api import Api
from webui.extensions import db
from workflow import queries
from workflow.models import Document


def _pages(api: Api, who: str, between=None, limit: int = 2) -> list[int]:
    seen: list[int] = []
    cursor, page_no = None, 0
    while True:
        response = api.get(f"/tasks?limit={limit}" + (f"&cursor={cursor}" if cursor else ""), who)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["items"] or not body["next"], "an empty page that says there is more"
        seen += [item["id"] for item in body["items"]]
        page_no += 1
        if between:
            between(page_no)
        cursor = body["next"]
        if not cursor:
            return seen


def test_tasks_of_two_states_merge_in_order_with_documents_added_while_paging(client, api_as):
    api = Api(client, api_as)
    docs = [api.submitted("zhang")["id"] for _ in range(6)]
    for doc in (docs[0], docs[2]):  # on to ready_to_ship, where li (warehouse) ships
        assert api.act(doc, "wang", "approve").status_code == 200
        moved = api.act(doc, "zhou", "approve")
        assert moved.status_code == 200 and moved.get_json()["state"] == "ready_to_ship"
    assert api.act(docs[1], "li", "approve").status_code == 200  # decided: not li's any more
    added: list[int] = []

    def add(page_no: int) -> None:
        if page_no in (1, 2):  # the newest wait the shortest: they belong at the end
            added.append(api.submitted("zhang")["id"])

    seen = _pages(api, "li", add)
    # double_check since submission (3, 4, 5), then ready_to_ship since the second approval
    # (0, 2), then the newcomers: two index ranges merged by (entered_at, id).
    assert seen == [docs[3], docs[4], docs[5], docs[0], docs[2], *added]
    assert len(seen) == len(set(seen))
    assert _pages(api, "li", limit=50) == seen


def test_a_reviewer_who_decided_most_open_documents_still_gets_full_pages(client, api_as):
    api = Api(client, api_as)
    docs = [api.submitted("zhang")["id"] for _ in range(9)]
    for doc in docs[:7]:
        assert api.act(doc, "wang", "approve").status_code == 200
    first = api.get("/tasks?limit=2", "wang").get_json()
    assert [item["id"] for item in first["items"]] == docs[7:9] and first["next"] is None
    assert _pages(api, "chen", limit=4) == docs  # chen decided none of them


def test_a_leading_tier_comes_first_and_pages_cross_it(client, api_as, monkeypatch):
    """How "overdue first" plugs in: one more tier in front (here: chosen documents)."""
    api = Api(client, api_as)
    docs = [api.submitted("zhang")["id"] for _ in range(5)]
    urgent = [docs[1], docs[4]]
    monkeypatch.setattr(queries, "task_tiers", lambda now: [Document.id.in_(urgent), None])
    assert _pages(api, "li", limit=2) == [docs[1], docs[4], docs[0], docs[2], docs[3]]
    assert _pages(api, "li", limit=3) == [docs[1], docs[4], docs[0], docs[2], docs[3]]


@pytest.mark.parametrize("path", ["/tasks?limit=50", "/documents?part=waiting&limit=50"])
def test_a_task_page_reads_no_yaml_and_no_password_hashes_with_the_documents(
    app, client, api_as, path
):
    api = Api(client, api_as)
    for _ in range(3):
        api.submitted("zhang")
    api.headers("li")
    with app.app_context():
        engine = db.engine
    seen: list[str] = []

    def statement(_conn: Any, _cursor: Any, text: str, *_: Any) -> None:
        seen.append(text)

    event.listen(engine, "before_cursor_execute", statement)
    try:
        body = api.get(path, "li").get_json()
    finally:
        event.remove(engine, "before_cursor_execute", statement)
    assert len(body["items"]) == 3
    with_documents = [s for s in seen if "FROM documents" in s]
    assert with_documents
    for text in with_documents:
        assert "yaml_text" not in text and "password_hash" not in text, text
