"""People who are away and dates that pass, in Chromium: delegating from the page, managers
seeing every active delegation, and the overdue deposits list — on a desktop and on a phone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.browser.test_review_cycle import Person, shoot
from tests.conftest import DEFINITIONS
from workflow import services
from workflow.db import make_engine
from workflow.definitions.build import load_flow_file
from workflow.models import User

pytestmark = pytest.mark.browser

NO_SIDEWAYS = "document.documentElement.scrollWidth <= window.innerWidth"


def overdue_deposit(tmp_path: Path) -> int:
    """A tender deposit paid out and long past its expected refund date (straight in the
    live server's database)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'browser.sqlite3'}")
    with Session(engine, expire_on_commit=False) as session:
        people = {u.username: u for u in session.scalars(select(User))}
        data = dict(load_flow_file(DEFINITIONS[0].parent / "tender_deposit.yaml").example)
        data.update(
            bid_date="2020-01-10", cycle_end="2020-02-10", expected_refund_date="2020-02-20"
        )
        doc = services.create_document(session, people["zhang"], "tender_deposit", data).document
        services.act(session, doc.id, people["zhang"], "submit", 1)
        checks = dict.fromkeys(("amount", "account", "dates"), True)  # the deposit check's
        services.act(session, doc.id, people["liu"], "approve", 1, checks=checks)
        services.act(session, doc.id, people["zhao"], "approve", 1, checks=checks)
        doc_id = doc.id
    engine.dispose()
    return doc_id


def test_delegating_from_the_page_and_managers_seeing_it(browser, live_server, screenshots):
    li = Person(browser, live_server, "li", "zh")
    page = li.page
    page.click("nav >> text=委托")
    page.wait_for_url(re.compile(r".*/delegations$"))
    page.fill("input[name=to]", "xu")
    page.click("form >> text=委托 >> nth=-1")
    page.wait_for_url(re.compile(r".*/delegations$"))
    assert "已委托" in page.locator(".flash.ok").first.inner_text()
    assert "(xu)" in page.locator("table").first.inner_text()
    shoot(screenshots, page, "delegations-zh-desktop")
    manager = Person(browser, live_server, "liu", "zh", width=390)
    manager.page.goto(f"{live_server}/delegations")
    assert "全部有效委托" in manager.page.content()
    assert manager.page.evaluate(NO_SIDEWAYS)
    shoot(screenshots, manager.page, "delegations-zh-phone")
    li.close()
    manager.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_the_overdue_deposits_list(browser, live_server, screenshots, tmp_path, width):
    doc_id = overdue_deposit(tmp_path)
    finance = Person(browser, live_server, "qian", "zh", width=width)
    page = finance.page
    page.goto(f"{live_server}/overdue")
    row = page.locator("tr.overdue").first.inner_text()
    assert "50,000.00" in row and "2020-02-20" in row
    assert page.locator(f"a[href='/documents/{doc_id}']").count() == 1
    assert page.evaluate(NO_SIDEWAYS), page.evaluate("document.documentElement.scrollWidth")
    shoot(screenshots, page, "overdue-zh-" + ("desktop" if width > 400 else "phone"))
    # overdue work leads the inbox of those who can act on it
    page.goto(f"{live_server}/inbox")
    first = page.locator("tbody tr").first
    assert "overdue" in (first.get_attribute("class") or "")
    finance.close()
