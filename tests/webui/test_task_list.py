"""The task list and `GET /api/v1/documents`: exact totals, keyset pages with neither gaps nor
repeats while documents are added, each filter and sort, and the visibility rule — on SQLite
and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import html
import re
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select, text

from tests.conftest import PASSWORD, ROOT
from tests.webui.test_api import SHIPMENT, SPECS, Api
from webui.extensions import db
from workflow import accounts, numbering, queries, services, tasklist
from workflow.definitions.build import load_flow_file
from workflow.models import Document, User

EXPENSE = SPECS["expense"].example
FROZEN_SHIPMENT = ROOT / "tests/data/flows/rules/shipment.yaml"
INVOICE = SPECS["invoicing"].example


@pytest.fixture
def api(client, api_as) -> Api:
    return Api(client, api_as)


def user(name: str) -> User:
    return db.session.scalars(select(User).where(User.username == name)).one()


# A shipment in its double check is at revision 2: submitted at 1, then finance recorded the
# payment (款到发货) and confirmed it.
CHECKED = 2
PAID = {"paid": True, "held_orders": 0, "payment_ref": "HD-2026-1128"}


def shipments(
    app, count: int, creator: str = "zhang", submit: bool = True, **data: Any
) -> list[int]:
    """`count` shipments by `creator`, submitted and their payment confirmed by finance, so
    they wait in the double check at revision CHECKED (each its own transaction, like real
    use)."""
    ids = []
    with app.app_context():
        actor, payer = user(creator), user("zhao")
        for _ in range(count):
            doc = services.create_document(db.session, actor, "shipment", {**SHIPMENT, **data})
            doc_id = doc.document.id
            ids.append(doc_id)
            if submit:
                services.act(db.session, doc_id, actor, "submit", 1)
                services.edit_document(db.session, doc_id, payer, PAID, 1)
                services.act(db.session, doc_id, payer, "confirm_payment", CHECKED)
        db.session.remove()
    return ids


# Every point of the shipment double check's checklist, confirmed.
CHECKS = {point: True for point in ("customer", "product", "spec", "qty", "batch")}


def listing(api: Api, who: str, **params: Any) -> dict:
    response = api.get("/documents?" + urlencode(params), who)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def every_page(api: Api, who: str, between=None, **params: Any) -> tuple[list[int], int]:
    """All ids over all pages (`between(page_no)` runs after each page), and the first total."""
    seen: list[int] = []
    cursor, total, page_no = None, None, 0
    while True:
        body = listing(api, who, **params, **({"cursor": cursor} if cursor else {}))
        total = body["total"] if total is None else total
        seen += [item["id"] for item in body["items"]]
        page_no += 1
        if between:
            between(page_no)
        cursor = body["next"]
        if not cursor:
            return seen, total


def test_250_tasks_are_counted_and_all_reachable_while_documents_are_added(app, api):
    ids = shipments(app, 250)
    added: list[int] = []

    def add_some(page_no: int) -> None:
        if page_no in (1, 2):  # newcomers wait the shortest: they belong at the end
            added.extend(shipments(app, 3))

    seen, total = every_page(api, "li", between=add_some, part="waiting", limit=100)
    assert total == 250
    assert len(seen) == len(set(seen)), "a task appeared twice"
    assert seen == ids + added  # longest waiting first, no gap, nothing lost
    assert listing(api, "li", part="waiting", limit=1)["total"] == 256


def test_lists_count_up_to_the_cap_then_say_more_and_still_page_through_everything(
    app, api, login_as, monkeypatch
):
    """Beyond COUNT_CAP a list stops counting ("more than"), for the task list and for "all I
    may see" alike, and paging still reaches every document, in order."""
    ids = shipments(app, 12)
    monkeypatch.setattr(tasklist, "COUNT_CAP", 5)
    for part in ("waiting", "all"):
        seen, _ = every_page(api, "li", part=part, limit=4)
        body = listing(api, "li", part=part, limit=4)
        assert (body["total"], body["total_exact"]) == (6, False), part
        assert seen == ids, part  # longest waiting first, none lost to the cap
    monkeypatch.setattr(tasklist, "COUNT_CAP", 12)
    body = listing(api, "li", part="waiting", limit=4)
    assert (body["total"], body["total_exact"]) == (12, True)
    monkeypatch.setattr(tasklist, "COUNT_CAP", 5)
    page = login_as("li").get("/inbox").get_data(as_text=True)
    assert 'data-total="6">5+</span>' in page


def test_the_count_reaches_the_cap_over_tasks_to_review_and_tasks_to_move_alike(
    app, api, monkeypatch
):
    """li (warehouse) reviews the double check and ships what is ready: both kinds count, in
    whichever order the capped count reads them, and what li already decided does not."""
    reviewing = shipments(app, 4)
    ready = shipments(app, 2)
    with app.app_context():
        for doc_id in [*ready, reviewing[0]]:
            services.act(db.session, doc_id, user("zhou"), "approve", CHECKED, checks=CHECKS)
        for doc_id in ready:
            services.act(db.session, doc_id, user("chen"), "approve", CHECKED, checks=CHECKS)
        services.act(db.session, reviewing[1], user("li"), "approve", CHECKED, checks=CHECKS)
        db.session.remove()
    tasks = [reviewing[0], reviewing[2], reviewing[3], *ready]
    for cap, total, exact in ((10, 5, True), (5, 5, True), (4, 5, False), (1, 2, False)):
        monkeypatch.setattr(tasklist, "COUNT_CAP", cap)
        body = listing(api, "li", part="waiting", limit=50)
        assert (body["total"], body["total_exact"]) == (total, exact), cap
        assert sorted(item["id"] for item in body["items"]) == sorted(tasks), cap
    monkeypatch.setattr(tasklist, "COUNT_CAP", 10)
    body = listing(api, "li", part="waiting", state="ready_to_ship")
    assert (body["total"], sorted(i["id"] for i in body["items"])) == (2, sorted(ready))
    # ma (gm) reviews GM exceptions, and there are none: counted 0, so no page is read.
    body = listing(api, "ma", part="waiting")
    assert (body["total"], body["items"], body["next"]) == (0, [], None)


def test_the_plain_waiting_list_reuses_the_inboxs_statements_and_filters_build_their_own(app, api):
    """Without filters the waiting list's count and keys are the inbox's statements, built
    once per set of (flow version, state) pairs; a filter enters its own statement."""
    ids = shipments(app, 3, customer="合肥某药房")
    others = shipments(app, 2)
    listing(api, "li", part="waiting")
    counts, keys = queries._cached_task_count, queries._cached_tier_keys
    before = counts.cache_info(), keys.cache_info()
    body = listing(api, "zhou", part="waiting")  # another warehouse user: the same pairs
    assert counts.cache_info().hits == before[0].hits + 1
    assert keys.cache_info().hits > before[1].hits
    assert (counts.cache_info().misses, keys.cache_info().misses) == (
        before[0].misses,
        before[1].misses,
    )
    assert body["total"] == 5 and [i["id"] for i in body["items"]] == ids + others
    before = counts.cache_info(), keys.cache_info()
    body = listing(api, "zhou", part="waiting", q="合肥")
    assert (counts.cache_info(), keys.cache_info()) == before
    assert body["total"] == 3 and [i["id"] for i in body["items"]] == ids


@pytest.mark.postgres_only
def test_the_capped_count_reads_without_parallel_workers_in_its_own_transaction_only(app):
    """Parallel workers cost more to start than a capped count costs: the waiting list's
    count turns them off with SET LOCAL, which ends with the read's transaction."""
    shipments(app, 2)
    show = text("SHOW max_parallel_workers_per_gather")
    with app.app_context():
        default = db.session.scalar(show)
        db.session.commit()
        assert default != "0"
        page = tasklist.documents(db.session, user("li"), tasklist.Filters(part="waiting"))
        assert page.total == 2
        assert db.session.scalar(show) == "0"
        db.session.commit()
        assert db.session.scalar(show) == default  # the next transaction plans as before
        db.session.remove()


def test_the_inbox_page_counts_everything_and_pages_through_it(app, login_as):
    ids = shipments(app, 53)
    li = login_as("li")
    first = li.get("/inbox").get_data(as_text=True)
    assert 'data-total="53"' in first  # the true number, not the length of a page
    found = set(map(int, re.findall(r'href="/documents/(\d+)"', first)))
    assert len(found) == 50
    following = re.search(r'rel="next" href="([^"]+)"', first)
    assert following
    second = li.get(html.unescape(following.group(1))).get_data(as_text=True)
    assert 'rel="next"' not in second
    found |= set(map(int, re.findall(r'href="/documents/(\d+)"', second)))
    assert found == set(ids)


def test_the_inbox_tabs_and_filters_come_from_the_url(app, login_as):
    ids = shipments(app, 2)
    shipments(app, 1, customer="合肥某药房")
    wang = login_as("wang")
    with app.app_context():
        services.act(db.session, ids[0], user("wang"), "approve", CHECKED, checks=CHECKS)
        user("zhang").display_name = "张伟"
        db.session.commit()
        db.session.remove()
    acted = wang.get("/inbox?part=acted").get_data(as_text=True)
    assert 'data-total="1"' in acted and f'href="/documents/{ids[0]}"' in acted
    assert 'aria-current="page"' in acted
    waiting = wang.get("/inbox?part=waiting&q=合肥").get_data(as_text=True)
    assert 'data-total="1"' in waiting and "合肥某药房" in waiting
    everything = wang.get("/inbox?part=all&submitter=zhang&sort=newest").get_data(as_text=True)
    assert 'data-total="3"' in everything
    assert "<td>张伟</td>" in everything  # the creator, by name
    assert "zhang" not in re.sub(r'value="zhang"|submitter=zhang', "", everything)
    bad = wang.get("/inbox?part=everything&since=yesterday&cursor=zzz").get_data(as_text=True)
    assert "搜索条件有误" in bad and "日期从" in bad and "范围" in bad


def test_newest_first_pages_do_not_repeat_when_documents_are_added(app, api):
    ids = shipments(app, 7, submit=False)
    seen, total = every_page(
        api, "zhang", between=lambda n: shipments(app, 1, submit=False), sort="newest", limit=3
    )
    assert total == 7
    assert seen[:7] == ids[::-1] and len(seen) == len(set(seen))


def test_visibility_a_sales_rep_never_sees_a_colleagues_claim(app, api):
    with app.app_context():
        accounts.create_user(db.session, "xu2", PASSWORD, ("sales",))
        db.session.remove()
    claim = api.create("xu", "expense", EXPENSE)
    shipment = api.create("zhang")
    assert [i["id"] for i in listing(api, "xu")["items"]] == [claim["id"]]
    assert listing(api, "xu2") == {"items": [], "next": None, "total": 0, "total_exact": True}
    assert listing(api, "xu2", q=claim["number"])["total"] == 0  # not found by number either
    for seer in ("liu", "shen"):  # the flow's reviewer, the auditor
        assert claim["id"] in [i["id"] for i in listing(api, seer)["items"]]
    assert shipment["id"] not in [i["id"] for i in listing(api, "xu")["items"]]


def test_acting_on_a_document_makes_it_visible_and_listed_as_acted(app, api):
    doc = api.submitted("zhang")
    other = api.submitted("zhang")
    assert api.act(doc, "wang", "approve", revision=doc["revision"]).status_code == 200
    acted = listing(api, "wang", part="acted")
    assert [i["id"] for i in acted["items"]] == [doc["id"]] and acted["total"] == 1
    waiting = [i["id"] for i in listing(api, "wang", part="waiting")["items"]]
    assert waiting == [other["id"]]
    created = listing(api, "zhang", part="created")
    assert created["total"] == 2
    assert listing(api, "wang", part="created")["total"] == 0


def test_acted_is_found_from_the_actors_events_not_by_testing_every_document(app, api):
    """已办 starts from the person's audit events (by actor) and looks the documents up by id:
    testing every document for an event of theirs read the whole table for someone who acted
    on a few (SQLite: 0.3 s at 100,000 documents). Read from SQLite's plan."""
    doc = api.submitted("zhang")
    assert api.act(doc, "wang", "approve", revision=doc["revision"]).status_code == 200
    with app.app_context():
        wang = db.session.scalar(select(User).where(User.username == "wang"))
        where = tasklist.condition(db.session, wang, tasklist.Filters(part="acted"), see=False)
        stmt = select(Document.id).where(where)
        assert db.session.scalars(stmt).all() == [doc["id"]]
        if db.session.get_bind().dialect.name == "sqlite":
            sql = str(stmt.compile(db.engine, compile_kwargs={"literal_binds": True}))
            plan = " / ".join(r[-1] for r in db.session.execute(text("EXPLAIN QUERY PLAN " + sql)))
            assert "ix_audit_events_actor" in plan and "SCAN documents" not in plan, plan
        db.session.remove()


def test_filters(app, api):
    first = api.create("zhang")
    second = api.create("zhang", data={**SHIPMENT, "customer": "合肥某药房", "order_no": "SO-77-A"})
    wang = api.create("wang")
    invoice = api.create("zhang", "invoicing", INVOICE)

    def ids(**params: Any) -> list[int]:
        body = listing(api, "shen", sort="newest", **params)
        assert body["total"] == len(body["items"])
        return [i["id"] for i in body["items"]]

    everything = ids()
    assert set(everything) == {first["id"], second["id"], wang["id"], invoice["id"]}
    assert ids(flow="invoicing") == [invoice["id"]]
    assert ids(created_by="wang") == [wang["id"]]
    assert ids(created_by="nobody") == []
    assert ids(state="draft", flow="shipment") == [wang["id"], second["id"], first["id"]]
    assert ids(q="合肥") == [second["id"]]
    assert ids(q="so-77") == [second["id"]]  # order number, any case
    assert ids(q=second["number"]) == [second["id"]]
    sequence = str(int(second["number"].rsplit("-", 1)[1]))
    assert second["id"] in ids(q=sequence)
    amount = SHIPMENT["amount"]
    assert set(ids(min=amount, max=amount, flow="shipment")) == {
        first["id"],
        second["id"],
        wang["id"],
    }
    assert ids(min="99999999") == []
    today = dt.datetime.now(numbering.ZONE).date()
    assert len(ids(since=today.isoformat(), until=today.isoformat())) == 4
    assert ids(until=(today - dt.timedelta(days=1)).isoformat()) == []


@pytest.mark.parametrize(
    "query",
    ["part=mine", "sort=cheapest", "cursor=xyz", "limit=0", "min=abc", "since=yesterday", "q="],
)
def test_bad_list_queries_are_422(api, query):
    assert api.get("/documents?" + query, "zhang").status_code == 422


def test_the_document_carries_its_number(app, api):
    doc = api.create("zhang")
    year = dt.datetime.now(numbering.ZONE).year
    assert doc["number"] == f"FH-{year}-000001"
    assert api.get(f"/documents/{doc['id']}", "zhang").get_json()["number"] == doc["number"]
    invoice = api.create("zhang", "invoicing", INVOICE)
    assert invoice["number"] == f"KP-{year}-000001"


def test_the_pages_show_the_number(app, api, login_as):
    doc = api.submitted("zhang")
    li = login_as("li")
    assert doc["number"] in li.get("/inbox").get_data(as_text=True)
    assert doc["number"] in li.get(f"/documents/{doc['id']}").get_data(as_text=True)


# --- fast approving -------------------------------------------------------------------------
def post_action(client, doc_id: int, revision: int, field: str = "do", **extra: str) -> Any:
    page = client.get(f"/documents/{doc_id}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token, page[:300]
    data = {"csrf_token": token.group(1), "revision": str(revision), field: "approve", **extra}
    # A reviewer who checked every point of the checklist the page shows.
    data |= {name: "1" for name in re.findall(r'name="(check-[a-z0-9_]+)"', page)}
    return client.post(f"/documents/{doc_id}/act", data=data)


def test_approve_and_open_next_goes_to_the_longest_waiting_task(app, login_as):
    ids = shipments(app, 3)
    li = login_as("li")
    page = li.get(f"/documents/{ids[1]}").get_data(as_text=True)
    assert 'name="do" value="approve"' in page and 'name="action"' not in page
    assert 'name="then" value="next"' in page and "js/submit-once.js" in page
    response = post_action(li, ids[1], CHECKED, then="next")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/documents/{ids[0]}")
    assert (
        post_action(li, ids[0], CHECKED, then="next")
        .headers["Location"]
        .endswith(f"/documents/{ids[2]}")
    )
    last = post_action(li, ids[2], CHECKED, then="next")
    assert last.headers["Location"].endswith("/inbox")  # nothing left
    assert post_action(li, ids[2], CHECKED).status_code >= 400  # decided already: refused


def test_the_old_action_field_is_still_accepted(app, login_as):
    (doc_id,) = shipments(app, 1)
    li = login_as("li")
    response = post_action(li, doc_id, CHECKED, field="action")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/documents/{doc_id}")
    with app.app_context():
        assert [
            r.user.username for r in services.get_document(db.session, doc_id, user("shen")).reviews
        ] == ["li"]


# --- bulk approve ----------------------------------------------------------------------------
def bulk(api: Api, who: str, items: list[tuple[int, int]], **body: Any) -> Any:
    """A bulk approve; the shipment double check's checklist confirmed unless `checks` is
    given (None: sent without)."""
    body.setdefault("checks", CHECKS)
    if body["checks"] is None:
        del body["checks"]
    payload = {"action": "approve", "items": [{"id": i, "revision": r} for i, r in items], **body}
    return api.post("/tasks/bulk", who, json=payload)


def approvals(app, doc_id: int, who: str) -> int:
    from workflow.models import AuditEvent

    with app.app_context():
        stmt = select(AuditEvent).where(
            AuditEvent.document_id == doc_id,
            AuditEvent.actor == who,
            AuditEvent.action == "approve",
            AuditEvent.outcome == "ok",
        )
        found = len(list(db.session.scalars(stmt)))
        db.session.remove()
    return found


def test_bulk_approve_answers_each_item_and_approves_the_rest_once(app, api):
    a, b, c, d = shipments(app, 4)
    (own,) = shipments(app, 1, creator="wang")
    assert api.act(b, "wang", "approve", revision=CHECKED).status_code == 200
    items = [(a, CHECKED), (b, CHECKED), (c, 9), (d, CHECKED), (own, CHECKED), (999999, 1)]
    response = bulk(api, "wang", items, comment="核对无误")
    assert response.status_code == 200, response.get_json()
    results = {r["id"]: r for r in response.get_json()["results"]}
    assert [r["id"] for r in response.get_json()["results"]] == [a, b, c, d, own, 999999]
    assert response.get_json()["done"] == 2
    assert results[a]["ok"] and results[d]["ok"] and results[a]["error"] is None
    assert results[b]["error"]["code"] == "already_reviewed" and results[b]["status"] == 403
    assert results[c]["error"]["code"] == "stale_revision" and results[c]["status"] == 409
    assert results[own]["error"]["code"] == "self_review"
    assert results[999999]["error"]["code"] == "not_found" and results[999999]["status"] == 404
    for doc_id, expected in ((a, 1), (b, 1), (c, 0), (d, 1), (own, 0)):
        assert approvals(app, doc_id, "wang") == expected  # each its own event, once
    history = api.get(f"/documents/{a}/history", "wang").get_json()["items"]
    assert [e["comment"] for e in history if e["action"] == "approve"] == ["核对无误"]
    again = bulk(api, "wang", [(a, CHECKED), (d, CHECKED)]).get_json()
    assert again["done"] == 0  # a second bulk approve decides nothing twice


@pytest.mark.parametrize(
    "body",
    [
        {"action": "approve", "items": [{"id": i, "revision": 1} for i in range(1, 52)]},
        {"action": "approve", "items": []},
        {"action": "reject", "items": [{"id": 1, "revision": 1}], "comment": "no"},
        {"action": "approve", "items": [{"id": "1", "revision": 1}]},
        {"action": "approve", "items": [{"id": 1}]},
    ],
)
def test_bad_bulk_requests_are_422_and_change_nothing(app, api, body):
    (doc_id,) = shipments(app, 1)
    assert api.post("/tasks/bulk", "wang", json=body).status_code == 422
    assert approvals(app, doc_id, "wang") == 0


def test_a_flow_may_forbid_bulk_approval(app, api):
    from tests.webui.test_api import put_yaml, shipment_yaml

    text = shipment_yaml().replace("\ntitle:", "\nbulk: false\ntitle:", 1)
    assert put_yaml(api, "admin", text).status_code == 201
    (doc_id,) = shipments(app, 1)
    result = bulk(api, "wang", [(doc_id, CHECKED)]).get_json()["results"][0]
    assert result["error"]["code"] == "bulk_not_allowed" and not result["ok"]
    assert approvals(app, doc_id, "wang") == 0
    assert refused_events(app, "bulk_not_allowed") == [("wang", doc_id, "approve")]  # rule 6
    assert api.act(doc_id, "wang", "approve", revision=CHECKED).status_code == 200  # one by one


def test_bulk_approve_from_the_inbox_page(app, login_as):
    ids = shipments(app, 3)
    (own,) = shipments(app, 1, creator="wang")
    wang = login_as("wang")
    page = wang.get("/inbox?part=waiting&sort=newest").get_data(as_text=True)
    assert 'action="/inbox/bulk"' in page and f'value="{ids[0]}:{CHECKED}"' in page
    # The double check's checklist, confirmed once for every selected document.
    boxes = re.findall(r'name="(check-[a-z0-9_]+)" value="1" required', page)
    assert boxes == [f"check-{point}" for point in CHECKS]
    assert "复核要点（对所选每张单据逐项确认）" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    items = [f"{ids[0]}:{CHECKED}", f"{ids[1]}:{CHECKED}", f"{ids[2]}:9"]
    form = {"csrf_token": token, "item": items, "comment": "批量核对"}
    unchecked = wang.post("/inbox/bulk", data={**form, "check-customer": "1"})
    assert unchecked.status_code == 303
    assert "已同意 0 张" in wang.get("/inbox").get_data(as_text=True)  # each item refused
    assert approvals(app, ids[0], "wang") == approvals(app, ids[1], "wang") == 0
    assert [e[1] for e in refused_events(app, "checklist_incomplete")] == ids[:2]
    response = wang.post(
        "/inbox/bulk",
        data={**form, **dict.fromkeys(boxes, "1"), "back": "part=waiting&sort=newest"},
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/inbox?part=waiting&sort=newest")
    after = wang.get(response.headers["Location"]).get_data(as_text=True)
    assert "已同意 2 张" in after and f"单据 #{ids[2]} 未处理" in after
    assert approvals(app, ids[0], "wang") == approvals(app, ids[1], "wang") == 1
    assert approvals(app, ids[2], "wang") == 0 and approvals(app, own, "wang") == 0
    too_many = [f"{i}:1" for i in range(1, 52)]
    refused = wang.post("/inbox/bulk", data={"csrf_token": token, "item": too_many})
    assert refused.status_code == 303
    assert "最多同意 50" in wang.get("/inbox").get_data(as_text=True)


def refused_events(app, code: str) -> list[Any]:
    from workflow.models import AuditEvent

    with app.app_context():
        stmt = select(AuditEvent).where(AuditEvent.outcome == "refused", AuditEvent.code == code)
        found = [(e.actor, e.document_id, e.action) for e in db.session.scalars(stmt)]
        db.session.remove()
    return found


def test_bulk_approve_covers_one_flow_and_one_state(app, api):
    (shipment,) = shipments(app, 1)
    invoice = submitted_invoice(api)
    response = bulk(api, "wang", [(shipment, CHECKED), (invoice["id"], 1)])
    assert response.status_code == 422, response.get_json()
    assert "one flow and one state" in str(response.get_json())
    assert approvals(app, shipment, "wang") == approvals(app, invoice["id"], "wang") == 0
    assert refused_events(app, "invalid_data")  # the refused request is on record
    # Each kind on its own is fine.
    assert bulk(api, "wang", [(shipment, CHECKED)]).get_json()["done"] == 1
    request_checks = dict.fromkeys(("lines", "prices", "buyer"), True)
    assert bulk(api, "wang", [(invoice["id"], 1)], checks=request_checks).get_json()["done"] == 1


def test_bulk_approve_confirms_the_checklist_once_for_every_task(app, api):
    a, b = shipments(app, 2)
    both = [(a, CHECKED), (b, CHECKED)]
    for checks in (None, {**CHECKS, "batch": False}, {"customer": True}):
        response = bulk(api, "wang", both, checks=checks)
        assert response.status_code == 200, response.get_json()
        results = response.get_json()["results"]
        assert [r["error"]["code"] for r in results] == ["checklist_incomplete"] * 2
        assert [r["status"] for r in results] == [422, 422]
    assert approvals(app, a, "wang") == approvals(app, b, "wang") == 0
    assert len(refused_events(app, "checklist_incomplete")) == 6  # each item, each time
    unknown = bulk(api, "wang", both, checks={**CHECKS, "colour": True}).get_json()
    assert [r["error"]["code"] for r in unknown["results"]] == ["invalid_data"] * 2
    done = bulk(api, "wang", both).get_json()
    assert done["done"] == 2 and approvals(app, a, "wang") == approvals(app, b, "wang") == 1
    # Each approval records the checklist it confirmed, as a single approval does; the double
    # check stays blind per item (li does not see wang's approval).
    doc = api.get(f"/documents/{a}", "wang").get_json()
    assert [(r["user"], r["checks"]) for r in doc["review"]["approvals"]] == [
        ("wang", {"confirmed": list(CHECKS)})
    ]
    assert api.get(f"/documents/{a}", "li").get_json()["review"]["approvals"] == []


def test_a_task_that_moved_on_since_it_was_selected_is_refused_and_recorded(app):
    from workflow.errors import NotInSelection

    (doc_id,) = shipments(app, 1)
    with app.app_context():
        with pytest.raises(NotInSelection):
            services.act(
                db.session,
                doc_id,
                user("wang"),
                "approve",
                CHECKED,
                checks=CHECKS,
                selection=("shipment", "draft"),
            )
        db.session.remove()
    assert approvals(app, doc_id, "wang") == 0
    assert refused_events(app, "not_in_selection") == [("wang", doc_id, "approve")]


def test_the_inbox_offers_one_bulk_form_per_flow_and_state(app, api, login_as):
    shipments(app, 2)
    submitted_invoice(api)
    page = login_as("wang").get("/inbox").get_data(as_text=True)
    assert page.count('action="/inbox/bulk"') == 2
    assert "· 双人复核 <span" in page  # the group names its state
    assert 'name="flow" value="shipment"' in page and 'name="state" value="double_check"' in page
    assert 'name="flow" value="invoicing"' in page


def one_line(product: str, amount: str) -> dict[str, Any]:
    """Shipment data with a single line, the amount its total."""
    first = SHIPMENT["items"][0]  # its batch, expiry and registration no. (medical goods)
    line = {**first, "product": product, "spec": "盒", "qty": 1, "unit_price": amount}
    return {**SHIPMENT, "items": [line], "amount": amount}


def submitted_invoice(api: Api) -> dict:
    """The example invoice billing a shipped shipment, submitted: in its request check."""
    shipped = [{"shipment": api.shipped(), "amount": INVOICE["amount"]}]
    invoice = api.create("zhang", "invoicing", {**INVOICE, "shipments": shipped})
    assert api.act(invoice["id"], "zhang", "submit", revision=1).status_code == 200
    return invoice


def test_sort_by_amount_pages_largest_first_without_gaps_or_repeats(app, api):
    amounts = ["500.00", "12000.50", "99.99", "12000.50", "3000.00", "0.10", "500.00"]
    made = {api.create("zhang", data=one_line("纱布", a))["id"]: a for a in amounts}
    invoice = api.create("zhang", "invoicing", INVOICE)  # another flow's amount field
    made[invoice["id"]] = INVOICE["amount"]
    seen, total = every_page(api, "shen", sort="amount", limit=3)
    assert total == len(made) and sorted(seen) == sorted(made)
    expected = sorted(made, key=lambda i: (Decimal(made[i]), i), reverse=True)
    assert seen == expected  # equal amounts: the newer first, none lost at a page edge
    page = listing(api, "shen", sort="amount", flow="shipment", min="500", max="5000")
    assert [made[i["id"]] for i in page["items"]] == ["3000.00", "500.00", "500.00"]


def test_sort_by_due_date_pages_soonest_first_then_those_without_one(app, api):
    made = [api.create("zhang", data=one_line("纱布", "10.00"))["id"] for _ in range(7)]
    base = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
    due = {
        made[0]: base + dt.timedelta(days=3),
        made[1]: base,
        made[2]: base + dt.timedelta(days=3),
        made[3]: base - dt.timedelta(days=9),
        made[4]: None,
        made[5]: None,
        made[6]: base,
    }
    with app.app_context():
        for doc_id, at in due.items():
            db.session.get(Document, doc_id).due_at = at
        db.session.commit()
    seen, total = every_page(api, "shen", sort="due", limit=2)
    dated = sorted((d for d in made if due[d] is not None), key=lambda d: (due[d], d))
    assert total == len(made) and seen == dated + sorted(d for d in made if due[d] is None)
    forged = api.get("/documents?sort=due&cursor=WzAsICJub3QgYSB0aW1lIiwgMV0", "shen")
    assert forged.status_code == 422, forged.get_json()


def test_free_text_finds_line_products(app, api):
    gauze = api.create("zhang", data=one_line("医用纱布块 Gauze", "10.00"))
    api.create("zhang", data=one_line("输液器", "10.00"))
    invoice = api.create("zhang", "invoicing", INVOICE)

    def found(text: str) -> set[int]:
        return {i["id"] for i in listing(api, "shen", q=text)["items"]}

    assert found("纱布") == {gauze["id"]}
    assert found("gauze") == {gauze["id"]}  # any case
    assert invoice["id"] in found("口罩") and gauze["id"] not in found("口罩")
    assert found("不存在的品名") == set()


def test_the_inbox_page_sorts_by_amount(app, api, login_as):
    for amount in ("20.00", "7000.00", "300.00"):
        doc = api.create("zhang", data=one_line("纱布", amount))
        assert api.act(doc["id"], "zhang", "submit", revision=1).status_code == 200
        api.confirm_payment(doc)  # 款到发货: on to the double check
    page = login_as("li").get("/inbox?sort=amount").get_data(as_text=True)
    assert 'value="amount" selected' in page
    shown = re.findall(r"¥([0-9,]+\.[0-9]{2})</td>", page)
    assert shown == ["7,000.00", "300.00", "20.00"]


# --- where a review stands ---------------------------------------------------------------------
def test_waiting_on_whom_and_reject_only_tasks_explained(app, api, login_as):
    # Where a review stands is shown to those who see its decisions: a double check that is
    # not blind (the frozen shipment flow; the shipped one is blind): one 销售内勤 and one 库管.
    doc_id = frozen_shipment(app, api)
    assert api.act(doc_id, "wang", "approve", revision=1).status_code == 200
    creator = login_as("zhang").get(f"/documents/{doc_id}").get_data(as_text=True)
    assert '已同意<span class="waiting-on">，等待库管</span></p>' in creator
    assert "已同意 1/2，等待库管" in login_as("zhang").get("/mine").get_data(as_text=True)
    mine = login_as("wang").get(f"/documents/{doc_id}").get_data(as_text=True)
    assert "，等待库管</span>" in mine and "reject-only" not in mine
    assert "你已同意，共 1/2，等待库管" in login_as("wang").get("/inbox?part=acted").get_data(
        as_text=True
    )
    # Another 销售内勤: the 内勤 place is taken, so only a rejection is possible — and said so.
    chen = login_as("chen")
    page = chen.get(f"/documents/{doc_id}").get_data(as_text=True)
    assert 'value="reject"' in page and 'value="approve"' not in page
    assert "你只能驳回：你的角色名额已有人同意，还缺库管的同意。" in page
    inbox = chen.get("/inbox").get_data(as_text=True)
    assert "还缺库管的同意" in inbox
    assert f'value="{doc_id}:1"' not in inbox  # no bulk checkbox for a task it cannot approve
    li_inbox = login_as("li").get("/inbox").get_data(as_text=True)
    assert "已同意 1/2，等待库管" in li_inbox and f'value="{doc_id}:1"' in li_inbox


def frozen_shipment(app, api: Api) -> int:
    """The example of the frozen (pre-issue-11) shipment flow, published over the shipped one,
    submitted by zhang: in its double check (not blind, no checklist) at revision 1."""
    with app.app_context():
        services.publish_files(db.session, [FROZEN_SHIPMENT])
        db.session.remove()
    doc = api.create("zhang", data=dict(load_flow_file(FROZEN_SHIPMENT).example))
    assert api.act(doc["id"], "zhang", "submit", revision=1).get_json()["state"] == "double_check"
    return doc["id"]


def test_waiting_on_any_of_the_roles_when_the_review_takes_any(app, api, login_as):
    # The invoice's request check: two of 销售内勤 and 财务, whichever (the expense receipt
    # check now needs one of each).
    invoice = submitted_invoice(api)
    page = login_as("zhang").get(f"/documents/{invoice['id']}").get_data(as_text=True)
    assert '<span class="waiting-on">，等待销售内勤、财务（任一）</span>' in page
    mine = login_as("zhang").get("/mine").get_data(as_text=True)
    assert "已同意 0/2，等待销售内勤、财务（任一）" in mine


# --- changed since you last saw it -------------------------------------------------------------
def test_changed_and_resubmitted_badges_follow_what_the_reviewer_last_saw(app, api, login_as):
    (doc_id,) = shipments(app, 1)
    li = login_as("li")
    assert "badge changed" not in li.get("/inbox").get_data(as_text=True)  # never opened
    li.get(f"/documents/{doc_id}")
    assert "badge changed" not in li.get("/inbox").get_data(as_text=True)  # seen as it is
    # Rejected by someone else, edited and submitted again: back in the same review state.
    rejected = api.act(doc_id, "wang", "reject", revision=CHECKED, comment="数量不对")
    assert rejected.status_code == 200
    edited = api.patch(
        f"/documents/{doc_id}", "zhang", json={"data": {"samples": "无"}, "revision": CHECKED}
    )
    assert edited.status_code == 200, edited.get_json()
    assert api.act(doc_id, "zhang", "submit", revision=CHECKED + 1).status_code == 200
    # 款到发货: finance confirms the (recorded) payment again, on to the double check.
    confirmed = api.act(doc_id, "zhao", "confirm_payment", revision=CHECKED + 1)
    assert confirmed.get_json()["state"] == "double_check", confirmed.get_json()
    inbox = li.get("/inbox").get_data(as_text=True)
    assert ">已重新提交</span>" in inbox
    page = li.get(f"/documents/{doc_id}").get_data(as_text=True)
    assert "自你上次查看以来，本单据已被驳回后重新提交。" in page
    assert "badge changed" not in li.get("/inbox").get_data(as_text=True)  # seen again
    # The creator edits a draft after a colleague looked at it: "changed" for the colleague.
    (draft,) = shipments(app, 1, submit=False)
    chen = login_as("chen")
    chen.get(f"/documents/{draft}")
    assert ">有修改</span>" not in chen.get("/inbox?part=all").get_data(as_text=True)
    again = api.patch(
        f"/documents/{draft}", "zhang", json={"data": {"samples": "无"}, "revision": 1}
    )
    assert again.status_code == 200
    assert ">有修改</span>" in chen.get("/inbox?part=all").get_data(as_text=True)


def test_a_bulk_selection_names_its_flow_and_state_and_moved_tasks_answer_alone(app, api):
    moved, waiting = shipments(app, 2)
    for who in ("wang", "li"):  # the quorum: `moved` goes on to ready_to_ship
        assert api.act(moved, who, "approve", revision=CHECKED).status_code == 200
    both = [(moved, CHECKED), (waiting, CHECKED)]
    assert bulk(api, "chen", both).status_code == 422  # two states now, nothing named
    named = bulk(api, "chen", both, flow="shipment", state="double_check")
    assert named.status_code == 200, named.get_json()
    results = {r["id"]: r for r in named.get_json()["results"]}
    assert results[moved]["error"]["code"] == "not_in_selection"
    assert results[moved]["status"] == 409
    assert results[waiting]["ok"] and named.get_json()["done"] == 1
    assert approvals(app, moved, "chen") == 0 and approvals(app, waiting, "chen") == 1
    half = bulk(api, "chen", both, flow="shipment")
    assert half.status_code == 422  # both or neither


def test_the_list_pages_statements_do_not_grow_with_their_rows(app, api, login_as):
    from tests.webui.test_round_trips import counted

    li = login_as("li")

    def statements(extra: int) -> int:
        for doc_id in shipments(app, extra):
            assert api.act(doc_id, "wang", "approve", revision=CHECKED).status_code == 200
            li.get(f"/documents/{doc_id}")  # seen: the badge is worked out for each row
        li.get("/inbox")  # caches warm (flow versions compiled once per process)
        with counted(app) as seen:
            assert li.get("/inbox").status_code == 200
        return len(seen)

    few = statements(2)
    assert statements(10) == few  # 2 rows or 12: the same statements (no query per row)


def test_the_state_filter_offers_state_names_people_read(app, login_as):
    shipments(app, 1)
    (draft,) = shipments(app, 1, submit=False)
    wang = login_as("wang")
    page = wang.get("/inbox?part=all&flow=shipment&state=draft").get_data(as_text=True)
    assert '<optgroup label="发货">' in page and '<optgroup label="开票">' not in page
    assert '<option value="draft" selected>草稿</option>' in page
    assert '<option value="double_check" >双人复核</option>' in page
    assert 'data-total="1"' in page and f'href="/documents/{draft}"' in page
    every = wang.get("/inbox?part=all&state=draft").get_data(as_text=True)
    assert every.count("selected>草稿</option>") == 1  # one option chosen, not one per flow
    assert '<optgroup label="开票">' in every
    english = wang.get("/inbox?part=all", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<option value="double_check" >Double check</option>' in english
