"""A reviewer's day in Chromium: the task list, approve and open next, bulk approve, the print
page, and phone-sized windows without horizontal scrolling."""

from __future__ import annotations

import re

import pytest

from tests.browser.test_review_cycle import Person, create_and_submit, shoot

pytestmark = pytest.mark.browser

NO_SIDEWAYS = "document.documentElement.scrollWidth <= window.innerWidth"


def submitted(person: Person, count: int) -> list[int]:
    return [create_and_submit(person, "zh", f"客户{i}") for i in range(count)]


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
    page.click("button[data-action=approve-next]")
    page.wait_for_url(re.compile(rf".*/documents/{ids[1]}$"))

    # bulk approve the rest from the list
    page.goto(f"{live_server}/inbox")
    for doc_id in ids[1:]:
        page.check(f"input[name=item][value='{doc_id}:1']")
    shoot(screenshots, page, "bulk-approve-zh-desktop")
    page.click("button[data-action=bulk-approve]")
    page.wait_for_url(re.compile(r".*/inbox"))
    assert "已同意 3 张" in page.locator(".flash.ok").first.inner_text()
    page.goto(f"{live_server}/inbox?part=acted")
    assert page.locator("h1 .count").inner_text() == "4"

    li = Person(browser, live_server, "li", "zh")
    li.page.goto(f"{live_server}/documents/{ids[0]}")
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
