"""The reviewers' HTML screens through the Flask test client, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest

from webui.extensions import db
from workflow import accounts, services
from workflow.models import AuditEvent, Document, User

SHIPMENT_FORM = {
    "customer": "安庆某医药公司",
    "consignee": "刘娟",
    "ship_address": "安庆市迎江区人民路 88 号",
    "consignee_phone": "0556-5551234",
    "order_no": "SO-2026-1024",
    "items-0-product": "阿莫西林胶囊",
    "items-0-spec": "0.25g*24粒",
    "items-0-qty": "100",
    "items-0-unit_price": "28.00",
    "items-1-product": "布洛芬缓释胶囊",
    "items-1-spec": "0.3g*20粒",
    "items-1-qty": "200",
    "items-1-unit_price": "50.00",
    "items-2-product": "",
    "items-2-qty": "",
    "amount": "12800.00",
    "carrier": "物流",
    "ship_by": "2026-12-01",
    "paid": "true",
    "held_orders": "0",
}


def csrf(client, url: str) -> str:
    page = client.get(url).get_data(as_text=True)
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)
    assert match, page[:500]
    return match.group(1)


def create(client, data=None) -> int:
    token = csrf(client, "/new/shipment")
    response = client.post("/new/shipment", data={**(data or SHIPMENT_FORM), "csrf_token": token})
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    return int(response.headers["Location"].rsplit("/", 1)[1])


def doc_row(app, doc_id: int) -> Document:
    with app.app_context():
        document = db.session.get(Document, doc_id)
        db.session.expunge_all()
        return document


def act(client, doc_id: int, action: str, comment: str = "", revision=None):
    page = client.get(f"/documents/{doc_id}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    if revision is None:
        revision = re.search(r'name="revision" value="(\d+)"', page)
        revision = revision.group(1) if revision else "1"
    form = {"csrf_token": token, "action": action, "revision": revision, "comment": comment}
    if action == "approve":  # a reviewer who checked every point ticks every box
        form.update({name: "1" for name in re.findall(r'name="(check-[a-z0-9_]+)"', page)})
    return client.post(f"/documents/{doc_id}/act", data=form)


def confirm_payment(login_as, doc_id: int, payer: str = "zhao") -> None:
    """款到发货: finance records the payment and its reference, then confirms it."""
    finance = login_as(payer)
    token = csrf(finance, f"/documents/{doc_id}/edit")
    page = finance.get(f"/documents/{doc_id}/edit").get_data(as_text=True)
    revision = re.search(r'name="revision" value="(\d+)"', page).group(1)
    form = {"paid": "true", "held_orders": "0", "payment_ref": "HD-2026-1128",
            "revision": revision, "csrf_token": token}  # fmt: skip
    assert finance.post(f"/documents/{doc_id}/edit", data=form).status_code == 303
    assert act(finance, doc_id, "confirm_payment").status_code == 303


@pytest.fixture
def submitted(app, login_as):
    """zhang creates and submits a shipment through the forms, finance confirms it paid: in
    double_check."""
    zhang = login_as("zhang")
    doc_id = create(zhang)
    response = act(zhang, doc_id, "submit")
    assert response.status_code == 303
    assert doc_row(app, doc_id).state == "payment_check"
    confirm_payment(login_as, doc_id)
    assert doc_row(app, doc_id).state == "double_check"
    return doc_id, zhang


def test_pages_need_sign_in(client):
    for url in ("/inbox", "/mine", "/documents/1", "/new/shipment", "/auth/password"):
        response = client.get(url)
        assert response.status_code == 302
        assert "/auth/login" in response.headers["Location"]


def test_create_form_renders_fields_from_definition(login_as):
    page = login_as("zhang").get("/new/shipment").get_data(as_text=True)
    assert "发货明细" in page and "客户" in page
    assert 'name="items-0-qty"' in page and 'name="items-1-qty"' in page  # blank rows, no JS
    assert '<option value="物流"' in page
    assert 'type="date"' in page


def test_create_form_in_english(login_as):
    c = login_as("zhang")
    page = c.get("/new/shipment", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Customer" in page and "Items" in page


def test_create_and_document_page(app, login_as):
    zhang = login_as("zhang")
    doc_id = create(zhang)
    document = doc_row(app, doc_id)
    assert document.state == "draft"
    assert len(document.data["items"]) == 2  # the blank third row is dropped
    page = zhang.get(f"/documents/{doc_id}").get_data(as_text=True)
    assert "¥12,800.00" in page
    assert "¥28.00" in page and "阿莫西林胶囊" in page
    assert 'aria-current="step"' in page
    assert 'data-action="submit"' in page
    assert "修改" in page  # zhang may edit the draft


def test_invalid_form_keeps_what_was_typed_and_marks_fields(app, login_as):
    zhang = login_as("zhang")
    token = csrf(zhang, "/new/shipment")
    data = {**SHIPMENT_FORM, "items-1-qty": "lots", "customer": "", "csrf_token": token}
    response = zhang.post("/new/shipment", data=data)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'value="lots"' in page
    assert 'value="阿莫西林胶囊"' in page
    assert 'id="err-items-2-qty"' in page  # items[2].qty: the second row's quantity
    assert 'id="err-customer"' in page and "必填" in page
    with app.app_context():
        assert db.session.query(Document).count() == 0


def test_self_review_button_absent_and_post_refused(app, submitted):
    doc_id, zhang = submitted
    page = zhang.get(f"/documents/{doc_id}").get_data(as_text=True)
    assert 'data-action="approve"' not in page
    assert 'data-action="reject"' not in page
    response = act(zhang, doc_id, "approve", revision="2")  # 2: finance confirmed the payment
    assert response.status_code == 403
    assert doc_row(app, doc_id).state == "double_check"
    with app.app_context():
        refused = db.session.query(AuditEvent).filter_by(outcome="refused", action="approve").all()
        assert [e.code for e in refused] == ["self_review"]


def test_two_reviewers_approve_from_their_inboxes(app, login_as, submitted):
    doc_id, _ = submitted
    for name in ("wang", "li"):
        reviewer = login_as(name)
        inbox = reviewer.get("/inbox").get_data(as_text=True)
        assert f'href="/documents/{doc_id}"' in inbox
        assert "安庆某医药公司" in inbox and "¥12,800.00" in inbox
        page = reviewer.get(f"/documents/{doc_id}").get_data(as_text=True)
        assert 'data-action="approve"' in page and 'data-action="reject"' in page
        assert act(reviewer, doc_id, "approve", "核对无误").status_code == 303
        if name == "wang":
            page = reviewer.get(f"/documents/{doc_id}").get_data(as_text=True)
            assert "1/2" in page and "核对无误" in page
            assert f'href="/documents/{doc_id}"' not in reviewer.get("/inbox").get_data(
                as_text=True
            )
    assert doc_row(app, doc_id).state == "ready_to_ship"


def test_reject_needs_a_reason_and_the_submitter_sees_it(app, login_as, submitted):
    doc_id, zhang = submitted
    wang = login_as("wang")
    response = act(wang, doc_id, "reject", "")
    assert response.status_code == 422  # the page again, with the message at the comment box
    page = response.get_data(as_text=True)
    assert 'class="field-error" id="error-reject"' in page and "原因" in page
    assert doc_row(app, doc_id).state == "double_check"
    assert act(wang, doc_id, "reject", "数量与订单不符").status_code == 303
    assert doc_row(app, doc_id).state == "draft"
    page = zhang.get(f"/documents/{doc_id}").get_data(as_text=True)
    assert "已被驳回" in page and "数量与订单不符" in page


def test_stale_revision_is_a_409_page(app, login_as, submitted):
    doc_id, zhang = submitted
    wang = login_as("wang")
    assert act(wang, doc_id, "reject", "请改单价").status_code == 303
    # zhang edits the draft (revision 3); li still holds a page showing revision 2
    token = csrf(zhang, f"/documents/{doc_id}/edit")
    data = {**SHIPMENT_FORM, "order_no": "SO-2026-1025", "revision": "2", "csrf_token": token}
    assert zhang.post(f"/documents/{doc_id}/edit", data=data).status_code == 303
    assert act(zhang, doc_id, "submit", revision="3").status_code == 303
    confirm_payment(login_as, doc_id, "qian")  # confirmed again; the facts did not change
    li = login_as("li")
    response = act(li, doc_id, "approve", revision="2")
    assert response.status_code == 409  # as the API answers: stale_revision
    page = response.get_data(as_text=True)
    # the document again, as it is now (revision 3), with the refusal on it
    assert "此单据已变更，请查看新版本" in page and 'name="revision" value="3"' in page
    assert doc_row(app, doc_id).state == "double_check"


def test_stale_edit_is_a_409_page(app, login_as):
    zhang = login_as("zhang")
    doc_id = create(zhang)
    token = csrf(zhang, f"/documents/{doc_id}/edit")
    first = {**SHIPMENT_FORM, "order_no": "SO-1", "revision": "1", "csrf_token": token}
    assert zhang.post(f"/documents/{doc_id}/edit", data=first).status_code == 303
    second = {**SHIPMENT_FORM, "order_no": "SO-2", "revision": "1", "csrf_token": token}
    response = zhang.post(f"/documents/{doc_id}/edit", data=second)
    assert response.status_code == 409
    assert "此单据已变更" in response.get_data(as_text=True)
    assert doc_row(app, doc_id).data["order_no"] == "SO-1"


def test_history_shows_the_field_diff(app, login_as):
    zhang = login_as("zhang")
    doc_id = create(zhang)
    token = csrf(zhang, f"/documents/{doc_id}/edit")
    data = {**SHIPMENT_FORM, "order_no": "SO-9999", "revision": "1", "csrf_token": token}
    assert zhang.post(f"/documents/{doc_id}/edit", data=data).status_code == 303
    page = zhang.get(f"/documents/{doc_id}").get_data(as_text=True)
    diff = page[page.index('class="diff"') :]
    assert "订单号" in diff and "SO-2026-1024" in diff and "SO-9999" in diff


def test_csrf_missing_is_refused(app, submitted, login_as):
    doc_id, _ = submitted
    wang = login_as("wang")
    response = wang.post(
        f"/documents/{doc_id}/act", data={"action": "approve", "revision": "1", "comment": ""}
    )
    assert response.status_code == 400
    assert doc_row(app, doc_id).state == "double_check"
    response = wang.post("/new/shipment", data=SHIPMENT_FORM)
    assert response.status_code == 400


def test_check_failure_is_a_422_page(app, login_as):
    zhang = login_as("zhang")
    doc_id = create(zhang, {**SHIPMENT_FORM, "amount": "1.00"})
    response = act(zhang, doc_id, "submit")
    assert response.status_code == 422  # check_failed, as the API answers
    assert "金额与明细合计" in response.get_data(as_text=True)
    assert doc_row(app, doc_id).state == "draft"


def test_inbox_groups_and_search(app, login_as):
    zhang = login_as("zhang")
    ids = []
    for customer, amount, qty in (("甲医院", "100.00", "1"), ("乙药房", "5000.00", "50")):
        data = {
            **SHIPMENT_FORM,
            "customer": customer,
            "amount": amount,
            "items-0-qty": qty,
            "items-0-unit_price": "100.00",
        }
        for key in list(data):
            if key.startswith("items-1-"):
                data.pop(key)
        doc_id = create(zhang, data)
        assert act(zhang, doc_id, "submit").status_code == 303
        confirm_payment(login_as, doc_id)
        ids.append(doc_id)
    wang = login_as("wang")
    page = wang.get("/inbox").get_data(as_text=True)
    assert re.search(r"发货 · 双人复核 <span class=\"count\"[^>]*>2</span>", page)  # flow · state
    assert page.index("甲医院") < page.index("乙药房")  # oldest first
    page = wang.get("/inbox?q=乙").get_data(as_text=True)
    assert "乙药房" in page and "甲医院" not in page
    page = wang.get(f"/inbox?number={ids[0]}").get_data(as_text=True)
    assert "甲医院" in page and "乙药房" not in page
    page = wang.get("/inbox?min=1000&max=6000").get_data(as_text=True)
    assert "乙药房" in page and "甲医院" not in page
    page = wang.get("/inbox?min=abc").get_data(as_text=True)
    assert "搜索条件有误" in page


def test_overdue_is_highlighted(app, login_as):
    from tests.conftest import DEFINITIONS
    from workflow.definitions.build import load_flow

    example = load_flow(
        (DEFINITIONS[0].parent / "tender_deposit.yaml").read_text(), "tender_deposit.yaml"
    ).example
    data = {
        **example,
        "bid_date": "2020-01-10",
        "cycle_end": "2020-02-10",
        "expected_refund_date": "2020-02-20",
    }
    with app.app_context():
        people = {u.username: u for u in db.session.query(User)}
        doc_id = services.create_document(
            db.session, people["zhang"], "tender_deposit", data
        ).document.id
        checks = {"amount": True, "account": True, "dates": True}  # every point confirmed
        services.act(db.session, doc_id, people["zhang"], "submit", 1)
        services.act(db.session, doc_id, people["liu"], "approve", 1, checks=checks)
        services.act(db.session, doc_id, people["zhao"], "approve", 1, checks=checks)
        assert db.session.get(Document, doc_id).state == "awaiting_payment"
        db.session.remove()
    page = login_as("qian").get("/inbox").get_data(as_text=True)
    row = page[page.index('<tr class="overdue">') :]
    assert f'href="/documents/{doc_id}"' in row[:400] and "已逾期" in row


def test_my_documents(app, login_as):
    zhang = login_as("zhang")
    doc_id = create(zhang)
    page = zhang.get("/mine").get_data(as_text=True)
    assert f'href="/documents/{doc_id}"' in page and "草稿" in page
    assert "我发起的单据" in page
    assert f'href="/documents/{doc_id}"' not in login_as("wang").get("/mine").get_data(as_text=True)


def test_someone_outside_the_flow_cannot_see_the_document(app, login_as, submitted):
    doc_id, _ = submitted
    response = login_as("xu").get(f"/documents/{doc_id}")  # finance confirms shipments' payments
    assert response.status_code == 404


def test_user_text_is_text_and_bidi_controls_are_removed(app, login_as):
    zhang = login_as("zhang")
    evil = "<script>alert(1)</script>{{ 7*7 }}\u202eevil\u2066"
    doc_id = create(zhang, {**SHIPMENT_FORM, "customer": evil})
    page = zhang.get(f"/documents/{doc_id}").get_data(as_text=True)
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;{{ 7*7 }}evil" in page
    assert "\u202e" not in page and "\u2066" not in page
    assert "49" not in page.split("evil")[0][-40:]


def test_disabled_user_is_refused_on_the_next_request(app, login_as, submitted):
    doc_id, _ = submitted
    wang = login_as("wang")
    assert wang.get("/inbox").status_code == 200
    page = wang.get(f"/documents/{doc_id}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    with app.app_context():
        accounts.set_active(db.session, "wang", False)
        db.session.remove()
    response = wang.post(
        f"/documents/{doc_id}/act", data={"csrf_token": token, "action": "approve", "revision": "2"}
    )
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    assert doc_row(app, doc_id).state == "double_check"
    with app.app_context():
        assert db.session.query(User).filter_by(username="wang").one().active is False


def test_stripped_role_loses_the_buttons_at_once(app, login_as, submitted):
    doc_id, _ = submitted
    wang = login_as("wang")
    with app.app_context():
        accounts.set_roles(db.session, "wang", ["sales"])
        db.session.remove()
    response = wang.get(f"/documents/{doc_id}")
    assert response.status_code == 404 or 'data-action="approve"' not in response.get_data(
        as_text=True
    )
    response = act(wang, doc_id, "approve", revision="2") if response.status_code == 200 else None
    assert doc_row(app, doc_id).state == "double_check"


def test_action_no_longer_possible_is_a_403_page(app, login_as, submitted):
    doc_id, _ = submitted
    li = login_as("li")
    page = li.get(f"/documents/{doc_id}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert act(login_as("wang"), doc_id, "reject", "不对").status_code == 303  # back to draft
    response = li.post(
        f"/documents/{doc_id}/act", data={"csrf_token": token, "action": "approve", "revision": "2"}
    )
    assert response.status_code == 403  # action_not_allowed, as the API answers
    page = response.get_data(as_text=True)
    assert "此操作现在不可执行" in page and 'class="panel doc"' in page


def test_buttons_and_history_use_the_transition_that_applies(app, login_as):
    zhang = login_as("zhang")
    doc_id = create(zhang)  # a shipment, not a return: submit goes to finance's payment check
    page = zhang.get(f"/documents/{doc_id}").get_data(as_text=True)
    assert "提交（财务确认收款）</button>" in page and "提交退货复核</button>" not in page
    act(zhang, doc_id, "submit")
    finance = login_as("zhao")
    page = finance.get(f"/documents/{doc_id}").get_data(as_text=True)
    # unpaid as drafted: the button says where confirming it leads
    assert "确认收款情况（需总经理特批）</button>" in page and "确认已收款</button>" not in page
    history = page[page.index('class="timeline"') :]
    assert "提交（财务确认收款）" in history and "提交退货复核" not in history


def test_after_review_the_edit_form_offers_only_the_editable_fields(app, login_as, submitted):
    doc_id, _ = submitted
    assert act(login_as("wang"), doc_id, "approve", "核对无误").status_code == 303
    li = login_as("li")
    assert act(li, doc_id, "approve", "数量一致").status_code == 303
    assert doc_row(app, doc_id).state == "ready_to_ship"
    page = li.get(f"/documents/{doc_id}/edit").get_data(as_text=True)
    assert 'name="tracking_no"' in page
    assert 'name="amount"' not in page and 'name="customer"' not in page
    token = csrf(li, f"/documents/{doc_id}/edit")
    data = {"tracking_no": "SF1234567890", "revision": "2", "csrf_token": token}
    assert li.post(f"/documents/{doc_id}/edit", data=data).status_code == 303
    row = doc_row(app, doc_id)
    assert (row.revision, row.data["tracking_no"], row.data["amount"]) == (
        3,
        "SF1234567890",
        "12800.00",
    )
