"""A reviewer's day in Chromium: the task list, approve and open next, bulk approve, the print
page, and phone-sized windows without horizontal scrolling."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.browser.test_review_cycle import (
    Person,
    confirm_payment,
    create_and_submit,
    shoot,
    tick_checklist,
)
from tests.conftest import DEFINITIONS
from workflow import notify, services, tasklist
from workflow.db import make_engine
from workflow.definitions.build import load_flow_file
from workflow.models import User

pytestmark = pytest.mark.browser

NO_SIDEWAYS = "document.documentElement.scrollWidth <= window.innerWidth"


def submitted(person: Person, count: int) -> list[int]:
    """Shipments by `person`, submitted and their payment confirmed by finance (zhao): in the
    double check at revision 2."""
    ids = [create_and_submit(person, "zh", f"客户{i}") for i in range(count)]
    payer = Person(person.context.browser, person.base, "zhao", "zh")
    for doc_id in ids:
        confirm_payment(payer, "zh", doc_id)
    payer.close()
    return ids


def test_task_list_fast_approving_and_print(browser, live_server, screenshots):
    zhang = Person(browser, live_server, "zhang", "zh")
    ids = submitted(zhang, 4)
    wang = Person(browser, live_server, "wang", "zh")
    page = wang.page
    page.goto(f"{live_server}/inbox")
    assert page.locator("h1 .count").inner_text() == "4"
    shoot(screenshots, page, "task-list-zh-desktop")

    # the buttons are disabled once the form is sent (the sending itself cancelled here)
    page.goto(f"{live_server}/documents/{ids[0]}")
    tick_checklist(page)
    page.evaluate(
        """() => {
        const form = document.querySelector('form.action-approve');
        form.addEventListener('submit', (e) => e.preventDefault());
        form.requestSubmit(form.querySelector('button[data-action=approve]'));
    }"""
    )
    page.wait_for_function("document.querySelector('button[data-action=approve]').disabled")
    assert page.locator("form.action-approve[aria-busy=true]").count() == 1
    assert page.locator("button[data-action=approve-next]").is_disabled()

    # approve and open next: the next task opens
    page.goto(f"{live_server}/documents/{ids[0]}")
    tick_checklist(page)
    page.click("button[data-action=approve-next]")
    page.wait_for_url(re.compile(rf".*/documents/{ids[1]}$"))

    # bulk approve the rest from the list
    page.goto(f"{live_server}/inbox")
    for doc_id in ids[1:]:
        page.check(f"input[name=item][value='{doc_id}:2']")
    boxes = page.locator("form.bulk input[name^=check-]")  # the checklist, once for all
    assert boxes.count() == 5
    for index in range(boxes.count()):
        boxes.nth(index).check()
    shoot(screenshots, page, "bulk-approve-zh-desktop")
    page.click("button[data-action=bulk-approve]")
    page.wait_for_url(re.compile(r".*/inbox"))
    assert "已同意 3 张" in page.locator(".flash.ok").first.inner_text()
    page.goto(f"{live_server}/inbox?part=acted")
    assert page.locator("h1 .count").inner_text() == "4"

    li = Person(browser, live_server, "li", "zh")
    li.page.goto(f"{live_server}/documents/{ids[0]}")
    tick_checklist(li.page)
    li.page.click("button[data-action=approve]")
    li.page.wait_for_url(re.compile(rf".*/documents/{ids[0]}$"))
    li.page.goto(f"{live_server}/documents/{ids[0]}/print")
    text = li.page.locator("article.printout").inner_text()
    assert "壹万贰仟捌佰元整" in text and "复核签字" in text
    shoot(screenshots, li.page, "print-zh-desktop")
    li.page.emulate_media(media="print")
    assert li.page.locator(".topbar").is_hidden()
    for person in (zhang, wang, li):
        person.close()


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_phone_never_scrolls_sideways(browser, live_server, screenshots, lang):
    zhang = Person(browser, live_server, "zhang", lang)
    (doc_id,) = submitted(zhang, 1) if lang == "zh" else [None]
    phone = Person(browser, live_server, "wang", lang, width=390)
    page = phone.page
    for url in ("/inbox", "/inbox?part=all", "/new/shipment", "/new/invoicing"):
        page.goto(live_server + url)
        assert page.evaluate(NO_SIDEWAYS), (
            url,
            page.evaluate("document.documentElement.scrollWidth"),
        )
    page.goto(f"{live_server}/new/shipment")
    shoot(screenshots, page, f"form-{lang}-phone")
    # the save button is on screen horizontally, and each row is a card with its labels
    box = page.locator("form.docform button[type=submit]").bounding_box()
    assert box and box["x"] + box["width"] <= 390
    assert page.locator("fieldset.table-field thead").is_hidden()
    if doc_id:
        page.goto(f"{live_server}/documents/{doc_id}")
        assert page.evaluate(NO_SIDEWAYS)
        page.goto(f"{live_server}/documents/{doc_id}/print")
        assert page.evaluate(NO_SIDEWAYS)
    zhang.close()
    phone.close()


def test_a_refused_second_approval_keeps_the_comment_and_says_why_in_chinese(browser, live_server):
    zhang = Person(browser, live_server, "zhang", "zh")
    (doc_id,) = submitted(zhang, 1)
    wang = Person(browser, live_server, "wang", "zh")
    first, second = wang.page, wang.context.new_page()
    for tab in (first, second):
        tab.goto(f"{live_server}/documents/{doc_id}")
    first.fill("#comment-approve", "数量已核对")
    tick_checklist(first)
    first.click("button[data-action=approve]")
    first.wait_for_url(re.compile(rf".*/documents/{doc_id}$"))
    second.fill("#comment-approve", "第二个标签页里写的意见")
    tick_checklist(second)
    with second.expect_response(re.compile(rf".*/documents/{doc_id}/act$")) as answer:
        second.click("button[data-action=approve]")
    assert answer.value.status == 403
    alert = second.locator(".flash.error")
    assert "你已经复核过此单据。" in alert.inner_text()
    assert second.locator("#kept-comment").input_value() == "第二个标签页里写的意见"
    assert second.locator("button[data-action=approve]").count() == 0
    zhang.close()
    wang.close()


def test_live_line_totals_and_sum_and_the_language_switch_keeps_the_form(
    browser, live_server, screenshots
):
    zhang = Person(browser, live_server, "zhang", "zh")
    page = zhang.page
    page.goto(f"{live_server}/new/shipment")
    page.fill("#customer", "安庆某医院")
    page.fill("[name='items-0-product']", "医用纱布")
    page.fill("[name='items-0-qty']", "2,000")
    page.fill("[name='items-0-unit_price']", "0.85")
    row = page.locator("fieldset.table-field tbody tr").first
    assert row.locator(".line-total output").inner_text() == "¥1,700.00"
    page.fill("[name='items-1-product']", "口罩")
    page.fill("[name='items-1-qty']", "300")
    page.fill("[name='items-1-unit_price']", "37")
    live = page.locator(".live-sum")
    assert "明细合计 ¥12,800.00" in live.inner_text()
    page.fill("#amount", "12,000.00")
    assert "与金额不符" in live.inner_text() and "mismatch" in live.get_attribute("class")
    page.click(".live-sum button.use-sum")
    assert page.input_value("#amount") == "12800.00"
    assert "与金额一致" in live.inner_text()
    # a third row added by hand survives the language switch with everything else
    page.get_by_role("button", name="+ 添加一行").click()
    page.fill("[name='items-2-product']", "棉签")
    page.click("form.lang button[name=language][value=en]")
    page.wait_for_url(re.compile(r".*/new/shipment\??$"))
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.input_value("#customer") == "安庆某医院"
    assert page.input_value("[name='items-2-product']") == "棉签"
    assert page.input_value("#amount") == "12800.00"
    assert "Lines total ¥12,800.00" in page.locator(".live-sum").inner_text()
    page.goto(f"{live_server}/new/shipment")  # kept once, not forever
    assert page.input_value("#customer") == ""
    zhang.close()


def test_a_phone_sees_live_totals_on_stacked_cards(browser, live_server, screenshots):
    phone = Person(browser, live_server, "zhang", "zh", width=390)
    page = phone.page
    page.goto(f"{live_server}/new/invoicing")
    page.fill("[name='lines-0-product']", "一次性使用无菌注射器")
    page.fill("[name='lines-0-qty']", "2000")
    page.fill("[name='lines-0-unit_price']", "0.85")
    # the lines' sum (the shipments billed have their own, hidden until they have rows)
    lines = page.locator("fieldset.table-field:has([name='lines-0-product']) .live-sum")
    assert "¥1,700.00" in lines.inner_text()
    assert page.evaluate(NO_SIDEWAYS)
    shoot(screenshots, page, "form-live-sum-zh-phone")
    phone.close()


def waiting_shipments(tmp_path: Path, count: int) -> None:
    """`count` shipments by zhang in the double check (payment confirmed by zhao), straight in
    the live server's database through the engine: each hands wang a task and a notification."""
    engine = make_engine(f"sqlite:///{tmp_path / 'browser.sqlite3'}")
    with Session(engine, expire_on_commit=False) as session:
        people = {u.username: u for u in session.scalars(select(User))}
        data = dict(load_flow_file(DEFINITIONS[0].parent / "shipment.yaml").example)
        paid = {"paid": True, "held_orders": 0, "payment_ref": "TT-2026-1130"}
        for _ in range(count):
            doc_id = services.create_document(session, people["zhang"], "shipment", data)
            doc_id = doc_id.document.id
            services.act(session, doc_id, people["zhang"], "submit", 1)
            services.edit_document(session, doc_id, people["zhao"], paid, 1)
            services.act(session, doc_id, people["zhao"], "confirm_payment", 2)
    engine.dispose()


def test_a_long_task_list_and_a_full_bell_say_more_than(
    browser, live_server, screenshots, tmp_path
):
    """Past 1,000 tasks the count says "1,000+" (it stops counting there) and past 99 unread
    notifications the bell says "99+"; on a desktop and on a phone, without sideways scrolling."""
    waiting_shipments(tmp_path, tasklist.COUNT_CAP + 1)
    for width, name in ((1280, "desktop"), (390, "phone")):
        wang = Person(browser, live_server, "wang", "zh", width=width)
        page = wang.page
        page.goto(f"{live_server}/inbox")
        assert page.locator("h1 .count").inner_text() == "1,000+"
        assert page.locator("a.bell .badge").inner_text() == f"{notify.UNREAD_CAP}+"
        assert page.locator("tbody tr").count() == 50  # one page
        assert page.evaluate(NO_SIDEWAYS), page.evaluate("document.documentElement.scrollWidth")
        shoot(screenshots, page, f"task-list-full-zh-{name}")
        wang.close()
