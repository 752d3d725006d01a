"""The auditors' workspace and API: filters, pagination, exports read back, verify, the SoD
report — and auditors refused on every route that changes something."""

from __future__ import annotations

import csv
import io
import re

import openpyxl
import pytest
from sqlalchemy import select, update

from tests.conftest import ROOT
from tests.webui.test_api import Api, error_code
from tests.webui.test_inbox import SHIPMENT_FORM, csrf
from webui.extensions import db
from workflow import services
from workflow.definitions.build import load_flow_file
from workflow.models import AuditEvent, Document, User

# The audit workspace is walked on the frozen (pre-issue-11) shipment flow: submitted, a
# shipment is straight in its double check (not blind, no checklist), so the history is short.
FROZEN = ROOT / "tests/data/flows/rules/shipment.yaml"
SHIPMENT = dict(load_flow_file(FROZEN).example)


@pytest.fixture
def api(client, api_as) -> Api:
    return Api(client, api_as)


@pytest.fixture
def walked(app, api) -> dict[str, int]:
    """wang is 王芳; one shipment approved twice (one approval after an edit), one where zhang
    tried to approve her own document (refused), one with a formula in a comment."""
    with app.app_context():
        services.publish_files(db.session, [FROZEN])
        db.session.execute(update(User).where(User.username == "wang").values(display_name="王芳"))
        db.session.commit()
        db.session.remove()
    done = api.create(data=SHIPMENT)
    edit = {"data": {"order_no": "SO-2026-2048"}, "revision": 1}
    assert api.patch(f"/documents/{done['id']}", "zhang", json=edit).status_code == 200
    api.act(done, "zhang", "submit")
    assert api.act(done, "wang", "approve", "核对无误").status_code == 200
    assert api.act(done, "li", "approve", '=HYPERLINK("http://x")').status_code == 200
    waiting = api.create(data=SHIPMENT)
    assert api.act(waiting, "zhang", "submit").get_json()["state"] == "double_check"
    assert api.act(waiting, "zhang", "approve").status_code == 403  # self-review, refused
    return {"done": done["id"], "waiting": waiting["id"]}


def all_items(api: Api, **query) -> list[dict]:
    items, cursor = [], None
    while True:
        q = {**query, "limit": 2, **({"cursor": cursor} if cursor else {})}
        body = api.get("/audit", "shen", query_string=q).get_json()
        items += body["items"]
        cursor = body["next"]
        if not cursor:
            return items


# --- the API --------------------------------------------------------------------------------------
def test_each_row_shows_the_data_of_the_revision_it_acted_on(api, walked):
    """A page holds events of several documents at several revisions: each row's customer is
    its own revision's (the revisions are read for the page at once and matched by pair)."""
    doc = api.create(data=SHIPMENT)
    edit = {"data": {"customer": "另一家客户"}, "revision": 1}
    assert api.patch(f"/documents/{doc['id']}", "zhang", json=edit).status_code == 200
    items = api.get("/audit", "shen", query_string={"limit": 50}).get_json()["items"]
    customers = {(e["document_id"], e["revision"]): e["customer"] for e in items}
    assert customers[(doc["id"], 1)] == SHIPMENT["customer"]
    assert customers[(doc["id"], 2)] == "另一家客户"
    assert customers[(walked["done"], 2)] == SHIPMENT["customer"]  # its edit kept the customer


def test_filters_by_document_outcome_state_and_name(api, walked):
    by_doc = all_items(api, document=walked["done"])
    assert [e["action"] for e in by_doc] == ["create", "edit", "submit", "approve", "approve"]
    assert {e["document_id"] for e in by_doc} == {walked["done"]}
    assert all_items(api, document=f"#{walked['done']}") == by_doc
    refused = all_items(api, outcome="refused")
    assert [(e["actor"], e["code"]) for e in refused] == [("zhang", "self_review")]
    entering = all_items(api, state="ready_to_ship", document=walked["done"])
    assert [e["to_state"] for e in entering] == ["ready_to_ship"]
    by_name = all_items(api, actor="王芳")
    assert [e["action"] for e in by_name if e["document_id"]] == ["approve"]
    assert {e["actor"] for e in by_name} == {"wang"} and by_name[-1]["actor_name"] == "王芳"
    approval = by_name[-1]
    assert approval["customer"] == SHIPMENT["customer"] and approval["amount"] == SHIPMENT["amount"]
    assert len(approval["data_hash"]) == 64 and approval["key_id"].startswith("k")


@pytest.mark.parametrize(
    "query", [{"outcome": "maybe"}, {"document": "abc"}, {"document": "0"}, {"format": "pdf"}]
)
def test_bad_filters_are_422(api, query):
    assert api.get("/audit", "shen", query_string=query).status_code == 422


def test_csv_export_has_exactly_the_filtered_rows(api, walked):
    expected = [e["seq"] for e in all_items(api, flow="shipment", document=walked["done"])]
    response = api.get("/audit", "shen", query_string={"format": "csv", "flow": "shipment",
                                                       "document": walked["done"]})  # fmt: skip
    assert response.status_code == 200 and response.mimetype == "text/csv"
    raw = response.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    head = rows[0]
    assert head[:4] == ["序号", "时间", "流程", "流程版本"]
    assert [int(r[0]) for r in rows[1:]] == expected
    row = dict(zip(head, rows[-2], strict=True))  # wang's approval
    assert row["操作人"] == "王芳" and row["账号"] == "wang" and row["动作"] == "同意"
    assert row["客户/标题"] == SHIPMENT["customer"] and row["金额"] == SHIPMENT["amount"]
    assert row["原状态"] == "双人复核" and row["修订版本"] == "2" and row["结果"] == "允许"
    assert len(row["数据哈希"]) == 64 and len(row["事件哈希"]) == 64
    assert '\'=HYPERLINK("http://x")' in [r[head.index("意见")] for r in rows[1:]]
    assert all(not c.startswith(("=", "+", "-", "@")) for r in rows[1:] for c in r)
    assert len(response.headers["X-Audit-Anchor-Root"]) == 64


def test_csv_headers_follow_the_language(api, walked):
    response = api.get("/audit", "shen", query_string={"format": "csv", "outcome": "refused"},
                       headers={"Accept-Language": "en"})  # fmt: skip
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    assert rows[0][:3] == ["Seq", "Time", "Flow"]
    assert [r[rows[0].index("Outcome")] for r in rows[1:]] == ["refused"]


def test_xlsx_export_reads_back(api, walked):
    expected = all_items(api, document=walked["done"])
    response = api.get("/audit", "shen", query_string={"format": "xlsx",
                                                       "document": walked["done"]})  # fmt: skip
    assert response.status_code == 200
    assert response.mimetype.endswith("spreadsheetml.sheet")
    book = openpyxl.load_workbook(io.BytesIO(response.get_data()))
    sheet = book["audit"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:2] == ("序号", "时间")
    assert [r[0] for r in rows[1:]] == [e["seq"] for e in expected]
    assert [r[-1] for r in rows[1:]] == [e["hash"] for e in expected]
    assert all(c.data_type != "f" for line in sheet.iter_rows() for c in line)  # no formulas
    assert book["anchor"]["E1"].value is None and book["anchor"]["B2"].value


def test_verify_endpoint(app, api, walked):
    body = api.get("/audit/verify", "shen").get_json()
    assert body["ok"] is True and body["first_bad"] is None and body["events"] > 10
    with app.app_context():
        db.session.execute(
            update(Document).where(Document.id == walked["waiting"]).values(state="ready_to_ship")
        )
        db.session.commit()
        db.session.remove()
    body = api.get("/audit/verify", "shen").get_json()
    assert body["ok"] is False
    assert body["first_bad"]["document_id"] == walked["waiting"]
    assert "state is `ready_to_ship`" in body["first_bad"]["problem"]


def test_sod_report(api, walked):
    body = api.get("/audit/sod", "shen", query_string={"flow": "shipment"}).get_json()
    assert body["documents"] == 2 and body["overlaps"] == 0
    done = next(r for r in body["rows"] if r["document_id"] == walked["done"])
    assert done["created_by"] == "zhang" and done["submitters"] == ["zhang"]
    assert done["editors"] == ["zhang"]
    assert [(a["by"], a["revision"]) for a in done["approvals"]] == [("王芳", 2), ("li", 2)]
    assert {"name": "王芳", "approvals": 1} in body["approvals_per_person"]
    assert [e["actor"] for e in body["refused_self_reviews"]] == ["zhang"]


def test_sod_report_flags_an_overlap(app, api, walked):
    """The engine never lets this happen; a report over rows rewritten by hand must show it."""
    with app.app_context():
        event = db.session.scalar(
            select(AuditEvent).where(AuditEvent.actor == "li", AuditEvent.action == "approve")
        )
        event_id = event.id
        db.session.remove()
        db.session.execute(
            update(AuditEvent).where(AuditEvent.id == event_id).values(actor="zhang")
        )
        db.session.commit()
        db.session.remove()
    body = api.get("/audit/sod", "shen").get_json()
    assert body["overlaps"] >= 2  # zhang created and submitted it
    done = next(r for r in body["rows"] if r["document_id"] == walked["done"])
    assert any("zhang" in o for o in done["overlaps"])


@pytest.mark.parametrize("path", ["/audit", "/audit/verify", "/audit/sod", "/audit?format=csv"])
@pytest.mark.parametrize("user", ["zhang", "li", "admin", "ma"])
def test_audit_api_is_for_auditors_only(api, path, user):
    response = api.get(path, user)
    assert response.status_code == 403 and error_code(response) == "forbidden"


# --- auditors change nothing ----------------------------------------------------------------------
def test_auditors_are_refused_on_every_mutating_api_route(app, api, walked):
    doc = api.get(f"/documents/{walked['waiting']}", "shen").get_json()
    draft = api.create(data=SHIPMENT)
    attempts = [
        api.post("/documents", "shen", json={"flow": "shipment", "data": SHIPMENT_FORM}),
        api.patch(
            f"/documents/{draft['id']}", "shen", json={"data": {"order_no": "x"}, "revision": 1}
        ),
        api.act(walked["waiting"], "shen", "approve"),
        api.act(walked["waiting"], "shen", "reject", "不行"),
        api.act(draft["id"], "shen", "submit"),
        api.put(
            "/flows/shipment",
            "shen",
            data="name: shipment\n",
            headers={"Content-Type": "application/yaml"},
        ),
    ]
    assert [r.status_code for r in attempts] == [403, 403, 403, 403, 403, 403]
    after = api.get(f"/documents/{walked['waiting']}", "shen").get_json()
    assert (after["state"], after["revision"], after["review"]) == (
        doc["state"], doc["revision"], doc["review"],
    )  # fmt: skip
    assert api.get(f"/documents/{draft['id']}", "shen").get_json()["state"] == "draft"


def test_auditors_are_refused_on_every_mutating_page(login_as, walked):
    client = login_as("shen")
    token = csrf(client, "/audit/")
    doc = walked["waiting"]
    responses = [
        client.post("/new/shipment", data={**SHIPMENT_FORM, "csrf_token": token}),
        client.post(
            f"/documents/{doc}/act",
            data={"csrf_token": token, "action": "approve", "revision": 1, "comment": ""},
        ),
        client.post(f"/documents/{doc}/edit", data={**SHIPMENT_FORM, "csrf_token": token}),
    ]
    # Refused with the API's answer (the refused action shows the document again, its diagram
    # naming every state, so the page text proves nothing; the history below does).
    assert [r.status_code for r in responses] == [403, 403, 403]
    after = client.get(f"/audit/documents/{doc}").get_data(as_text=True)
    assert after.count('<li class="" data-seq="') == 2  # still only create and submit
    # each attempt on the document is refused and recorded (zhang's own try came first)
    assert after.count('<li class="refused" data-seq="') == 1 + 2


# --- the pages ------------------------------------------------------------------------------------
@pytest.mark.parametrize("user", ["zhang", "li", "admin"])
@pytest.mark.parametrize("path", ["/audit/", "/audit/security", "/audit/sod", "/audit/verify",
                                  "/audit/export.csv", "/audit/documents/1"])  # fmt: skip
def test_pages_are_for_auditors_only(login_as, user, path):
    assert login_as(user).get(path).status_code == 403


def test_pages_anonymous_are_sent_to_sign_in(client):
    assert client.get("/audit/").status_code in (302, 401)


def test_history_page_searches_and_links_to_timelines(login_as, walked):
    client = login_as("shen")
    page = client.get("/audit/", query_string={"actor": "王芳"}).get_data(as_text=True)
    assert f'href="/audit/documents/{walked["done"]}"' in page
    assert "王芳" in page and SHIPMENT["customer"] in page
    assert page.count('data-seq="') == 2  # the token issued to wang, and her approval
    paged = client.get("/audit/", query_string={"limit": 2}).get_data(as_text=True)
    older = re.search(r'href="(/audit/\?cursor=[^"]+)"', paged)
    assert older and client.get(older.group(1).replace("&amp;", "&")).status_code == 200
    bad = client.get("/audit/", query_string={"since": "someday"})
    assert bad.status_code == 200 and "since" in bad.get_data(as_text=True)


def test_timeline_shows_the_revision_each_approval_was_given_to(login_as, walked):
    page = login_as("shen").get(f"/audit/documents/{walked['done']}").get_data(as_text=True)
    assert len(re.findall(r'class="given">针对修订 2</span>', page)) == 2
    assert "SO-2026-1024" in page and "SO-2026-2048" in page  # the field diff
    assert "修订 1 → 2" in page


def test_security_page_lists_refusals(login_as, walked):
    page = login_as("shen").get("/audit/security").get_data(as_text=True)
    assert "self_review" in page and page.count('data-seq="') == 1


def test_sod_and_verify_pages(login_as, walked):
    client = login_as("shen")
    sod = client.get("/audit/sod", query_string={"flow": "shipment"}).get_data(as_text=True)
    assert "无职责重叠" in sod and "王芳" in sod
    token = csrf(client, "/audit/verify")
    result = client.post("/audit/verify", data={"csrf_token": token}).get_data(as_text=True)
    assert "审计链完整" in result
    assert client.post("/audit/verify").status_code == 400  # CSRF like every form


def test_page_export_matches_the_search(login_as, walked):
    client = login_as("shen")
    query = {"document": walked["done"], "outcome": "ok"}
    response = client.get("/audit/export.csv", query_string=query)
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    page = client.get("/audit/", query_string=query).get_data(as_text=True)
    shown = sorted(int(s) for s in re.findall(r'data-seq="(\d+)"', page))
    assert [int(r[0]) for r in rows[1:]] == shown and len(shown) == 5
