"""Attachments (receipts, scans, signed delivery notes) and comments without an action: stored
by content hash, type read from the content, size limited, a refused upload stores nothing,
attaching starts a new revision (approvals before it no longer count), only the creator,
reviewers and auditors open the files, and the audit chain seals each file's SHA-256 — on
SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.webui.test_api import Api
from webui.extensions import db
from workflow import audit, services
from workflow.models import Attachment, AuditEvent, Document

# A small flow of our own, so the shipped flows (rebuilt by another change) may evolve freely:
# a draft, a two-person review, then a step where the warehouse may edit (and so attach).
FLOW = """\
name: attach_demo
title: {zh: 附件测试, en: Attachment test}
fields:
  customer: {type: string, required: true, label: {zh: 客户, en: Customer}}
  amount: {type: decimal, required: true, min: 0, label: {zh: 金额, en: Amount}}
  tracking_no: {type: string, label: {zh: 运单号, en: Tracking no.}}
initial: draft
states:
  draft: {editable_by: [sales_admin]}
  double_check:
    review: {required: 2, roles: [sales_admin, warehouse]}
    on_approve: approved
    on_reject: draft
  approved: {editable_by: [warehouse], editable_fields: [tracking_no]}
  shipped: {final: true}
transitions:
  - {action: submit, from: draft, to: double_check, roles: [sales_admin]}
  - {action: ship, from: approved, to: shipped, roles: [warehouse]}
example: {customer: 安庆某医药公司, amount: "12800.00"}
"""
DATA = {"customer": "安庆某医药公司", "amount": "12800.00"}

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x01" * 40 + b"\xff\xd9"
HTML = b"<!doctype html><script>alert(document.cookie)</script>"
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 60
LIMIT = 4096  # a small ATTACHMENT_MAX_SIZE for these tests


@pytest.fixture
def api(app, client, api_as) -> Api:
    app.config["ATTACHMENT_MAX_SIZE"] = LIMIT
    with app.app_context():
        services.publish_flow(db.session, FLOW, "attach_demo.yaml")
        db.session.remove()
    return Api(client, api_as)


def store_dir(app) -> Path:
    return Path(app.config["ATTACHMENT_DIR"])


def stored_files(app) -> list[Path]:
    """Every file under the attachment directory (temporary ones included)."""
    root = store_dir(app)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def count(app, model: Any) -> int:
    with app.app_context():
        n = db.session.scalar(select(func.count()).select_from(model))
        db.session.remove()
    return n


def fetch(client_or_api: Any, path: str, user: str | None = None) -> Any:
    """GET a file and close the response (its file handle), keeping status, body and headers."""
    if isinstance(client_or_api, Api):
        response = client_or_api.get(path, user)
    else:
        response = client_or_api.get(path)
    response.get_data()
    response.close()
    return response


def multipart(fields: dict[str, str], name: str, content: bytes) -> tuple[bytes, str]:
    """A multipart body built in memory: the test client would spool a large one to a
    temporary file that nothing closes."""
    boundary = "----fuhe-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/pdf\r\n\r\n".encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def new_doc(api: Api, user: str = "zhang") -> dict:
    return api.create(user, flow="attach_demo", data=DATA)


def upload(
    api: Api,
    doc: dict,
    user: str,
    content: bytes,
    name: str = "receipt.pdf",
    revision: int | None = None,
    mimetype: str = "application/pdf",
    headers: dict[str, str] | None = None,
) -> Any:
    revision = doc["revision"] if revision is None else revision
    return api.post(
        f"/documents/{doc['id']}/attachments",
        user,
        data={"revision": str(revision), "file": (io.BytesIO(content), name, mimetype)},
        content_type="multipart/form-data",
        headers=headers or {},
    )


# --- storing ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "name", "content_type"),
    [
        (PDF, "发票扫描件.pdf", "application/pdf"),
        (PNG, "receipt.png", "image/png"),
        (JPEG, "签收单.jpg", "image/jpeg"),
    ],
    ids=["pdf", "png", "jpeg"],
)
def test_an_upload_is_stored_by_its_hash_and_starts_a_new_revision(
    app, api, content, name, content_type
):
    doc = new_doc(api)
    # the client's declared type is ignored: the content decides
    response = upload(api, doc, "zhang", content, name, mimetype="application/octet-stream")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    digest = hashlib.sha256(content).hexdigest()
    assert {k: body[k] for k in ("name", "size", "content_type", "sha256", "revision")} == {
        "name": name,
        "size": len(content),
        "content_type": content_type,
        "sha256": digest,
        "revision": 2,
    }
    path = store_dir(app) / digest[:2] / digest
    assert path.read_bytes() == content
    assert stored_files(app) == [path]  # no temporary file left over
    doc = api.get(f"/documents/{doc['id']}?include=attachments", "zhang").get_json()
    assert doc["revision"] == 2 and "comments" not in doc
    assert [(a["id"], a["sha256"]) for a in doc["attachments"]] == [(body["id"], digest)]

    fetched = fetch(api, f"/documents/{doc['id']}/attachments/{body['id']}", "zhang")
    assert fetched.status_code == 200 and fetched.data == content
    assert fetched.mimetype == content_type
    assert fetched.headers["X-Content-Type-Options"] == "nosniff"
    csp = fetched.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    disposition = fetched.headers["Content-Disposition"]
    assert disposition.startswith("inline")
    if name.isascii():
        assert f"filename={name}" in disposition or f'filename="{name}"' in disposition
    else:  # RFC 5987: the UTF-8 name percent-encoded, never raw bytes in a header
        assert "filename*=UTF-8''" in disposition and name.encode().hex() not in disposition
        assert disposition.isascii()
    download = fetch(
        api, f"/documents/{doc['id']}/attachments/{body['id']}?download=1", "zhang"
    ).headers["Content-Disposition"]
    assert download.startswith("attachment")


def test_the_same_file_twice_is_stored_once(app, api):
    doc = new_doc(api)
    first = upload(api, doc, "zhang", PDF, "a.pdf")
    second = upload(api, doc, "zhang", PDF, "b.pdf", revision=2)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.get_json()["sha256"] == second.get_json()["sha256"]
    assert len(stored_files(app)) == 1 and count(app, Attachment) == 2


@pytest.mark.parametrize(
    ("content", "name", "status", "code"),
    [
        (EXE, "setup.exe", 415, "unsupported_file_type"),
        (HTML, "invoice.pdf", 415, "unsupported_file_type"),  # HTML renamed .pdf
        (b"GIF89a" + b"\x00" * 20, "photo.png", 415, "unsupported_file_type"),
        (b"", "empty.pdf", 422, "invalid_data"),
        (PDF + b"\x00" * LIMIT, "big.pdf", 413, "too_large"),  # over ATTACHMENT_MAX_SIZE
    ],
    ids=["exe", "html-named-pdf", "gif", "empty", "over-limit"],
)
def test_a_refused_upload_stores_nothing(app, api, content, name, status, code):
    doc = new_doc(api)
    events_before = count(app, AuditEvent)
    response = upload(api, doc, "zhang", content, name)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["code"] == code
    assert stored_files(app) == []  # no file, not even a temporary one
    assert count(app, Attachment) == 0
    after = api.get(f"/documents/{doc['id']}?include=attachments", "zhang").get_json()
    assert after["revision"] == 1 and after["attachments"] == []
    with app.app_context():  # the refusal itself is in the audit log, and nothing else is
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.id > events_before).order_by(AuditEvent.id)
        ).all()
        assert [(e.action, e.outcome, e.code) for e in events] == [("attach", "refused", code)]
        db.session.remove()


def test_a_request_over_the_upload_limit_is_a_json_413_under_the_api_and_a_page_elsewhere(
    app, api, login_as
):
    doc = new_doc(api)
    huge = PDF + b"\x00" * (LIMIT + 128 * 1024)  # beyond the request limit itself
    response = upload(api, doc, "zhang", huge)
    assert response.status_code == 413 and response.get_json()["error"]["code"] == "too_large"
    browser = login_as("zhang")
    page = browser.get(f"/documents/{doc['id']}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = browser.post(
        f"/documents/{doc['id']}/attachments",
        data={"csrf_token": token, "revision": "1", "file": (io.BytesIO(huge), "big.pdf")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413 and response.mimetype == "text/html"
    assert "<html" in response.get_data(as_text=True).lower()
    assert stored_files(app) == [] and count(app, Attachment) == 0


def test_an_upload_larger_than_other_requests_may_be_passes_on_the_api_and_the_page(
    app, api, login_as
):
    app.config["ATTACHMENT_MAX_SIZE"] = 3 * 1024 * 1024
    big = PDF + b"\x00" * (3 * 1024 * 1024 // 2)  # 1.5 MiB: over the 1 MiB request limit
    assert len(big) > app.config["MAX_CONTENT_LENGTH"]
    doc = new_doc(api)
    body, content_type = multipart({"revision": "1"}, "a.pdf", big)
    response = api.post(
        f"/documents/{doc['id']}/attachments", "zhang", data=body, content_type=content_type
    )
    assert response.status_code == 201, response.get_json()
    browser = login_as("zhang")
    page = browser.get(f"/documents/{doc['id']}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    body, content_type = multipart({"csrf_token": token, "revision": "2"}, "b.pdf", big + b"1")
    response = browser.post(
        f"/documents/{doc['id']}/attachments", data=body, content_type=content_type
    )
    assert response.status_code == 303
    # every other request keeps the 1 MiB limit
    other = api.post(
        "/documents", "zhang", json={"flow": "attach_demo", "data": {"x": "y" * big.__len__()}}
    )
    assert other.status_code == 413
    assert count(app, Attachment) == 2


def test_uploads_check_the_revision_and_who_may_attach(app, api):
    doc = new_doc(api)
    stale = upload(api, doc, "zhang", PDF, revision=7)
    assert stale.status_code == 409 and stale.get_json()["error"]["code"] == "stale_revision"
    colleague = upload(api, doc, "wang", PDF)  # a draft is its creator's
    assert colleague.status_code == 403 and colleague.get_json()["error"]["code"] == "not_owner"
    auditor = upload(api, doc, "shen", PDF)
    assert auditor.status_code == 403
    hidden = upload(api, doc, "zhao", PDF)  # finance has no part in this flow
    assert hidden.status_code == 404
    missing = api.post(
        f"/documents/{doc['id']}/attachments",
        "zhang",
        data={"revision": "1"},
        content_type="multipart/form-data",
    )
    assert missing.status_code == 422
    as_json = api.post(f"/documents/{doc['id']}/attachments", "zhang", json={"revision": 1})
    assert as_json.status_code == 415
    assert stored_files(app) == [] and count(app, Attachment) == 0


def test_a_retried_upload_with_its_idempotency_key_is_stored_once(app, api):
    doc = new_doc(api)
    key = {"Idempotency-Key": "upload-1"}
    first = upload(api, doc, "zhang", PNG, "r.png", headers=key)
    again = upload(api, doc, "zhang", PNG, "r.png", revision=1, headers=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.get_json() == first.get_json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = upload(api, doc, "zhang", JPEG, "r.jpg", revision=1, headers=key)
    assert other.status_code == 422
    assert count(app, Attachment) == 1


# --- review -------------------------------------------------------------------------------------
def test_attaching_during_review_voids_the_approvals_given_before(app, api):
    doc = new_doc(api)
    doc = api.act(doc, "zhang", "submit", revision=1).get_json()
    approved = api.act(doc, "wang", "approve", revision=doc["revision"]).get_json()
    assert [a["user"] for a in approved["review"]["approvals"]] == ["wang"]

    # a reviewer may not attach; the creator answers the reviewers with the missing receipt
    assert upload(api, approved, "li", PDF).status_code == 403
    response = upload(api, approved, "zhang", PDF, "收据.pdf")
    assert response.status_code == 201, response.get_json()
    now = api.get(f"/documents/{doc['id']}", "li").get_json()
    assert now["state"] == "double_check" and now["revision"] == approved["revision"] + 1
    assert now["review"]["approvals"] == []  # wang's approval no longer counts
    # an approval of the revision before the file is refused as stale
    stale = api.act(doc, "li", "approve", revision=approved["revision"])
    assert stale.status_code == 409
    # one more approval is not enough any more: it takes two again
    first = api.act(doc, "li", "approve", revision=now["revision"]).get_json()
    assert first["state"] == "double_check" and len(first["review"]["approvals"]) == 1
    second = api.act(doc, "wang", "approve", revision=now["revision"]).get_json()
    assert second["state"] == "approved"
    # the creator's file did not make them a reviewer
    assert api.act(doc, "zhang", "approve", revision=now["revision"]).status_code == 403
    with app.app_context():  # the new round is replayed from the chain like any other
        result = audit.verify(db.session)
        assert result.ok, result.report
        db.session.remove()


def test_a_step_that_may_edit_may_attach_and_the_audit_chain_seals_the_hash(app, api):
    doc = new_doc(api)
    doc = api.act(doc, "zhang", "submit", revision=1).get_json()
    api.act(doc, "wang", "approve", revision=doc["revision"])
    doc = api.act(doc, "li", "approve", revision=doc["revision"]).get_json()
    assert doc["state"] == "approved"
    # the warehouse edits here, so it attaches the signed delivery note
    response = upload(api, doc, "zhou", JPEG, "签收单.jpg")
    assert response.status_code == 201, response.get_json()
    digest = hashlib.sha256(JPEG).hexdigest()
    history = api.get(f"/documents/{doc['id']}/history", "shen").get_json()["items"]
    attach = [e for e in history if e["action"] == "attach"]
    assert len(attach) == 1 and attach[0]["actor"] == "zhou"
    assert attach[0]["revision"] == doc["revision"] + 1
    with app.app_context():
        event = db.session.get(AuditEvent, attach[0]["seq"])
        assert event.details["attachment"]["sha256"] == digest
        assert event.hash == audit.event_hash(event)  # the hash is under the seal
        result = audit.verify(db.session)
        assert result.ok, result.report
        db.session.remove()
    # the auditors' export carries the hash
    export = api.get("/audit?format=csv&action=attach", "shen")
    assert export.status_code == 200 and digest in export.get_data(as_text=True)


def test_audit_verify_notices_an_attachment_row_changed_behind_its_back(app, api, db_url):
    doc = new_doc(api)
    assert upload(api, doc, "zhang", PDF).status_code == 201
    with app.app_context():
        # (the test schema comes from the models, without the migration's PostgreSQL trigger)
        db.session.execute(Attachment.__table__.update().values(sha256="0" * 64))
        db.session.commit()
        result = audit.verify(db.session)
        assert not result.ok and "sha256" in result.report
        db.session.remove()


# --- who opens the files ------------------------------------------------------------------------
def test_only_the_creator_reviewers_and_auditors_open_the_files(app, api, client, login_as):
    doc = new_doc(api)
    attachment = upload(api, doc, "zhang", PNG, "r.png").get_json()
    path = f"/documents/{doc['id']}/attachments/{attachment['id']}"
    assert fetch(api, path, "zhang").status_code == 200  # the creator
    assert fetch(api, path, "li").status_code == 200  # a reviewer of the flow (warehouse)
    assert fetch(api, path, "shen").status_code == 200  # an auditor
    assert fetch(api, path, "zhao").status_code == 404  # finance does not even see the document
    assert fetch(api, path, None).status_code == 401
    wrong = f"/documents/{doc['id']}/attachments/{attachment['id'] + 99}"
    assert api.get(wrong, "zhang").status_code == 404
    # the page serves the same file to a signed-in reviewer, and refuses others readably
    assert fetch(login_as("li"), path).status_code == 200
    assert fetch(login_as("zhao"), path).status_code == 404


def test_roles_that_only_read_the_flow_see_the_list_but_do_not_open_files(app, api):
    flow = FLOW.replace("name: attach_demo", "name: attach_read").replace(
        "initial: draft", "visible_to: [finance]\ninitial: draft"
    )
    with app.app_context():
        services.publish_flow(db.session, flow, "attach_read.yaml")
        db.session.remove()
    doc = api.create("zhang", flow="attach_read", data=DATA)
    attachment = upload(api, doc, "zhang", PDF).get_json()
    seen = api.get(f"/documents/{doc['id']}?include=attachments", "zhao")
    assert seen.status_code == 200 and [a["id"] for a in seen.get_json()["attachments"]] == [
        attachment["id"]
    ]
    opened = api.get(f"/documents/{doc['id']}/attachments/{attachment['id']}", "zhao")
    assert opened.status_code == 403 and opened.get_json()["error"]["code"] == "forbidden"


# --- comments -----------------------------------------------------------------------------------
def test_a_reviewer_asks_a_question_without_deciding(app, api):
    doc = new_doc(api)
    doc = api.act(doc, "zhang", "submit", revision=1).get_json()
    response = api.post(f"/documents/{doc['id']}/comments", "li", json={"text": "批号是多少？"})
    assert response.status_code == 201
    assert {k: response.get_json()[k] for k in ("user", "text")} == {
        "user": "li",
        "text": "批号是多少？",
    }
    answer = api.post(f"/documents/{doc['id']}/comments", "zhang", json={"text": "批号 B2611"})
    assert answer.status_code == 201
    now = api.get(f"/documents/{doc['id']}?include=comments,attachments", "wang").get_json()
    assert now["attachments"] == [] and now["can_attach"] is False
    assert [(c["user"], c["text"]) for c in now["comments"]] == [
        ("li", "批号是多少？"),
        ("zhang", "批号 B2611"),
    ]
    plain = api.get(f"/documents/{doc['id']}", "wang").get_json()
    assert "comments" not in plain and "attachments" not in plain  # only when asked for
    assert api.get(f"/documents/{doc['id']}?include=bogus", "wang").status_code == 422
    # no decision was taken: li may still approve, and the round has no approval yet
    assert now["state"] == "double_check" and now["review"]["approvals"] == []
    assert now["revision"] == doc["revision"]
    assert "approve" in api.get(f"/documents/{doc['id']}", "li").get_json()["actions"]
    history = api.get(f"/documents/{doc['id']}/history", "zhang").get_json()["items"]
    assert [e["comment"] for e in history if e["action"] == "comment"] == [
        "批号是多少？",
        "批号 B2611",
    ]


# --- the document page --------------------------------------------------------------------------
def test_the_document_page_shows_files_inline_the_upload_form_and_the_thread(app, api, login_as):
    doc = new_doc(api)
    png = upload(api, doc, "zhang", PNG, "receipt.png").get_json()
    pdf = upload(api, doc, "zhang", PDF, "invoice.pdf", revision=2).get_json()
    api.post(f"/documents/{doc['id']}/comments", "li", json={"text": "发票抬头对吗？"})

    owner = login_as("zhang").get(f"/documents/{doc['id']}").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in owner and 'name="file"' in owner
    section = owner.split('id="h-attachments"', 1)[1].split("</section>", 1)[0]
    assert 'name="csrf_token"' in section
    assert f'<img class="attachment-img" src="/documents/{doc["id"]}/attachments/{png["id"]}"' in (
        section
    )
    assert f'href="/documents/{doc["id"]}/attachments/{pdf["id"]}"' in section
    assert png["sha256"][:12] in section and pdf["sha256"][:12] in section
    thread = owner.split('id="h-comments"', 1)[1].split("</section>", 1)[0]
    assert "发票抬头对吗？" in thread

    reviewer = login_as("li").get(f"/documents/{doc['id']}").get_data(as_text=True)
    assert "attachment-img" in reviewer  # a reviewer sees the receipt inline
    assert 'enctype="multipart/form-data"' not in reviewer  # but may not attach in the draft


def test_the_upload_form_attaches_and_refuses_readably(app, api, login_as):
    doc = new_doc(api)
    browser = login_as("zhang")
    page = browser.get(f"/documents/{doc['id']}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    no_token = browser.post(
        f"/documents/{doc['id']}/attachments",
        data={"revision": "1", "file": (io.BytesIO(PDF), "a.pdf")},
        content_type="multipart/form-data",
    )
    assert no_token.status_code == 400 and count(app, Attachment) == 0
    refused = browser.post(
        f"/documents/{doc['id']}/attachments",
        data={"csrf_token": token, "revision": "1", "file": (io.BytesIO(HTML), "x.pdf")},
        content_type="multipart/form-data",
    )
    assert refused.status_code == 415 and "PDF" in refused.get_data(as_text=True)
    assert stored_files(app) == []
    done = browser.post(
        f"/documents/{doc['id']}/attachments",
        data={"csrf_token": token, "revision": "1", "file": (io.BytesIO(PDF), "收据.pdf")},
        content_type="multipart/form-data",
    )
    assert done.status_code == 303
    with app.app_context():
        assert db.session.get(Document, doc["id"]).revision == 2
        assert db.session.scalars(select(Attachment.name)).all() == ["收据.pdf"]
        db.session.remove()


def test_the_openapi_document_describes_the_upload_and_the_file(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    upload = spec["paths"]["/documents/{doc_id}/attachments"]["post"]
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["file"] == {**form["properties"]["file"], "format": "binary"}
    assert set(form["required"]) == {"file", "revision"}
    assert {"201", "409", "413", "415", "422"} <= set(upload["responses"])
    created = upload["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    attachment = spec["components"]["schemas"][created.rsplit("/", 1)[1]]["properties"]
    assert {"id", "name", "size", "content_type", "sha256"} <= set(attachment)
    file = spec["paths"]["/documents/{doc_id}/attachments/{attachment_id}"]["get"]
    assert set(file["responses"]["200"]["content"]) == {
        "application/pdf",
        "image/jpeg",
        "image/png",
    }
    document = spec["components"]["schemas"]["Document"]["properties"]
    assert {"attachments", "comments", "can_attach"} <= set(document)


def test_audit_verify_files_hashes_every_stored_file_again(app, api):
    doc = new_doc(api)
    body = upload(api, doc, "zhang", PDF).get_json()
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["audit", "verify", "--files"])
    assert ok.exit_code == 0 and "OK 1 attached files" in ok.output, ok.output
    path = store_dir(app) / body["sha256"][:2] / body["sha256"]
    path.write_bytes(PDF + b"% swapped")
    swapped = runner.invoke(args=["audit", "verify", "--files"])
    assert swapped.exit_code == 1 and "no longer has that content" in swapped.output
    path.unlink()
    missing = runner.invoke(args=["audit", "verify", "--files"])
    assert missing.exit_code == 1 and "missing" in missing.output
