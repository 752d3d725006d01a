"""End to end in Chromium: create, submit, finance confirms the payment, two approvals with
their checklist, a rejection with a reason — in 简体, English and 繁體."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

TEXT = {
    "zh": {
        "submit": "提交复核",
        "approve": "同意",
        "reject": "驳回",
        "next_state": "待发货",
        "draft": "草稿",
        "review": "双人复核",
        "payment_check": "财务确认收款",
        "rejected": "已被驳回",
        "add": "+ 添加一行",
        "changed": "此单据已变更",
    },
    "en": {
        "submit": "Submit for double check",
        "approve": "Approve",
        "reject": "Reject",
        "next_state": "Ready to ship",
        "draft": "Draft",
        "review": "Double check",
        "payment_check": "Payment check by finance",
        "rejected": "Rejected",
        "add": "+ Add a row",
        "changed": "This document changed",
    },
    # 繁體: the UI's words from the zh_Hant catalogue; the flow's labels (transitions, states)
    # carry no zh_Hant, so they show as the definition's zh.
    "zh_Hant": {
        "submit": "提交复核",
        "approve": "同意",
        "reject": "駁回",
        "next_state": "待发货",
        "draft": "草稿",
        "review": "双人复核",
        "payment_check": "财务确认收款",
        "rejected": "已被駁回",
        "add": "+ 新增一行",
        "changed": "此單據已變更",
    },
}
LOCALE = {"zh": "zh-CN", "en": "en-US", "zh_Hant": "zh-TW"}


class Person:
    """One person in their own browser context (own cookies, own language)."""

    def __init__(self, browser: Any, base: str, username: str, lang: str, width: int = 1280):
        self.context = browser.new_context(
            locale=LOCALE[lang], viewport={"width": width, "height": 900}
        )
        self.page = self.context.new_page()
        self.base = base
        self.username = username
        self.page.goto(f"{base}/auth/login")
        self.page.fill("#username", username)
        self.page.fill("#password", PASSWORD)
        self.page.click("button[type=submit].primary")
        self.page.wait_for_url(re.compile(r".*/inbox$"))

    def close(self) -> None:
        self.context.close()


def tab_to(page: Any, selector: str, limit: int = 80) -> None:
    """Press Tab until the element matching `selector` has the focus (keyboard only)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(
            "(s) => document.activeElement && document.activeElement.matches(s)", selector
        ):
            return
    raise AssertionError(f"could not reach {selector} with the Tab key")


def state_text(page: Any) -> str:
    return page.locator(".doc .heading .badge").inner_text()


def create_and_submit(person: Person, lang: str, customer: str) -> int:
    page = person.page
    page.goto(f"{person.base}/new/shipment")
    page.fill("#customer", customer)
    page.fill("#consignee", "刘娟（设备科）")
    page.fill("#ship_address", "安徽省安庆市迎江区人民路 88 号")
    page.fill("#consignee_phone", "0556-5551234")
    page.fill("#order_no", "SO-2026-1024")
    rows = [
        ("一次性使用无菌注射器", "5ml", "2000", "0.85"),
        ("医用外科口罩", "50只/盒", "300", "37.00"),
    ]
    for index, (product, spec, qty, price) in enumerate(rows):
        page.fill(f"[name='items-{index}-product']", product)
        page.fill(f"[name='items-{index}-spec']", spec)
        page.fill(f"[name='items-{index}-qty']", qty)
        page.fill(f"[name='items-{index}-unit_price']", price)
    page.get_by_role("button", name=TEXT[lang]["add"]).click()  # an extra blank row is ignored
    assert page.locator("fieldset.table-field tbody tr").count() == 3
    page.fill("#amount", "12800.00")
    page.select_option("#carrier", "物流")
    page.fill("#ship_by", "2026-12-01")
    page.click("form.docform button[type=submit]")
    page.wait_for_url(re.compile(r".*/documents/\d+$"))
    doc_id = int(page.url.rsplit("/", 1)[1])
    assert page.locator("table.items tbody tr").count() == 2
    assert "¥12,800.00" in page.content()
    page.click("button[data-action=submit]")
    page.wait_for_url(re.compile(rf".*/documents/{doc_id}$"))
    assert state_text(page) == TEXT[lang]["payment_check"]  # 款到发货: finance confirms first
    return doc_id


def confirm_payment(person: Person, lang: str, doc_id: int, first: bool = True) -> None:
    """Finance records the payment (the first time) and confirms it: on to the double check."""
    page = person.page
    if first:
        page.goto(f"{person.base}/documents/{doc_id}/edit")
        page.check("#paid")
        page.fill("#payment_ref", "HD-2026-1128")
        page.click("form.docform button[type=submit]")
        page.wait_for_url(re.compile(rf".*/documents/{doc_id}$"))
    else:
        page.goto(f"{person.base}/documents/{doc_id}")
    page.click("button[data-action=confirm_payment]")
    page.wait_for_url(re.compile(rf".*/documents/{doc_id}$"))
    assert state_text(page) == TEXT[lang]["review"]


def tick_checklist(page: Any) -> None:
    """Confirm every point of the approval's checklist (the double check's)."""
    boxes = page.locator("form.action-approve input[name^=check-]")
    assert boxes.count() == 5
    for index in range(boxes.count()):
        boxes.nth(index).check()


def shoot(folder: Path | None, page: Any, name: str) -> None:
    if folder is not None:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def approve_with_mouse(person: Person, doc_id: int, comment: str) -> None:
    page = person.page
    page.goto(f"{person.base}/inbox")
    page.click(f"a[href='/documents/{doc_id}']")
    page.fill("#comment-approve", comment)
    tick_checklist(page)
    page.click("button[data-action=approve]")
    page.wait_for_url(re.compile(rf".*/documents/{doc_id}$"))


def approve_with_keyboard(person: Person, doc_id: int, comment: str) -> None:
    page = person.page
    page.goto(f"{person.base}/inbox")
    tab_to(page, f"a[href='/documents/{doc_id}']")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf".*/documents/{doc_id}$"))
    tab_to(page, "#comment-approve")
    page.keyboard.type(comment)
    for _ in range(5):  # each point of the checklist, ticked with the space bar
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.name").startswith("check-")
        page.keyboard.press("Space")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.dataset.action") == "approve"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf".*/documents/{doc_id}$"))


@pytest.mark.parametrize("lang", ["zh", "en", "zh_Hant"])
def test_full_review_cycle(browser, live_server, screenshots, lang):
    words = TEXT[lang]
    zhang = Person(browser, live_server, "zhang", lang)
    doc_id = create_and_submit(zhang, lang, "安庆某医药有限公司")
    zhao = Person(browser, live_server, "zhao", lang)
    confirm_payment(zhao, lang, doc_id)
    zhang.page.goto(f"{live_server}/documents/{doc_id}")
    # the submitter is offered no approval and no rejection
    assert zhang.page.locator("button[data-action=approve]").count() == 0
    assert zhang.page.locator("button[data-action=reject]").count() == 0

    wang = Person(browser, live_server, "wang", lang)
    wang.page.goto(f"{live_server}/inbox")
    assert wang.page.locator(f"a[href='/documents/{doc_id}']").count() == 1
    shoot(screenshots, wang.page, f"inbox-{lang}-desktop")
    approve_with_mouse(wang, doc_id, "核对无误 / checked")
    assert "1/2" in wang.page.locator(".review .progress").inner_text()
    shoot(screenshots, wang.page, f"document-{lang}-desktop")

    li = Person(browser, live_server, "li", lang)
    approve_with_keyboard(li, doc_id, "数量规格一致")
    assert state_text(li.page) == words["next_state"]

    # a second shipment: a rejection with a reason returns it to draft
    second = create_and_submit(zhang, lang, "芜湖某医院")
    confirm_payment(zhao, lang, second)
    wang.page.goto(f"{live_server}/documents/{second}")
    wang.page.fill("#comment-reject", "单价与订单不符，请核对")
    wang.page.click("button[data-action=reject]")
    wang.page.wait_for_url(re.compile(rf".*/documents/{second}$"))
    assert state_text(wang.page) == words["draft"]
    zhang.page.goto(f"{live_server}/documents/{second}")
    banner = zhang.page.locator(".rejected").inner_text()
    assert words["rejected"] in banner and "单价与订单不符，请核对" in banner

    # a stale page: li holds revision 1 while zhang edits and resubmits; li sees the friendly
    # message, never an error page
    zhang.page.goto(f"{live_server}/documents/{second}/edit")
    zhang.page.fill("[name='items-1-unit_price']", "36.00")
    zhang.page.fill("#amount", "12500.00")
    zhang.page.click("form.docform button[type=submit]")
    zhang.page.wait_for_url(re.compile(rf".*/documents/{second}$"))
    zhang.page.click("button[data-action=submit]")
    zhang.page.wait_for_url(re.compile(rf".*/documents/{second}$"))
    confirm_payment(zhao, lang, second, first=False)
    li.page.goto(f"{live_server}/documents/{second}")
    wang.page.goto(f"{live_server}/documents/{second}")
    wang.page.fill("#comment-reject", "再核对一次")
    wang.page.click("button[data-action=reject]")
    wang.page.wait_for_url(re.compile(rf".*/documents/{second}$"))
    zhang.page.goto(f"{live_server}/documents/{second}/edit")
    zhang.page.fill("#samples", "样品 2 盒")
    zhang.page.click("form.docform button[type=submit]")
    zhang.page.wait_for_url(re.compile(rf".*/documents/{second}$"))
    zhang.page.click("button[data-action=submit]")
    zhang.page.wait_for_url(re.compile(rf".*/documents/{second}$"))
    confirm_payment(zhao, lang, second, first=False)
    tick_checklist(li.page)
    li.page.click("button[data-action=approve]")  # li's page still shows an older revision
    li.page.wait_for_selector(".flash.error")  # the document again, as it is now (409)
    assert words["changed"] in li.page.locator(".flash.error").inner_text()
    assert li.page.locator("button[data-action=approve]").count() == 1  # the new version

    if screenshots is not None:
        for person, name in ((wang, "inbox"), (zhang, "document")):
            target = (
                f"{live_server}/inbox" if name == "inbox" else f"{live_server}/documents/{doc_id}"
            )
            phone = Person(browser, live_server, person.username, lang, width=390)
            phone.page.goto(target)
            shoot(screenshots, phone.page, f"{name}-{lang}-phone")
            phone.close()
    for person in (zhang, wang, li):
        person.close()
