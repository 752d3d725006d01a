"""The auditors' workspace in Chromium: search → document timeline → export → verify, and every
auditors' page on a phone. `--screenshots DIR` keeps the history, timeline and SoD report."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from tests.browser.test_review_cycle import Person
from tests.conftest import (
    DEFINITIONS,  # noqa: F401 - the live server publishes them
    ROOT,
)
from tests.workflow.test_review import SHIPMENT
from webui.commands import DEMO_USERS
from workflow import services
from workflow.db import make_engine
from workflow.errors import Refused
from workflow.models import User

pytestmark = pytest.mark.browser
NAMES = {username: display.split(" ")[0] for username, display, _ in DEMO_USERS}


@pytest.fixture
def history(live_server: str, tmp_path: Path) -> dict[str, int]:
    """Shipments in the live server's database: one edited and approved twice, one where its
    creator tried to approve it herself, one waiting; people have their Chinese names."""
    from sqlalchemy.orm import Session

    engine = make_engine(f"sqlite:///{tmp_path / 'browser.sqlite3'}")
    with Session(engine, expire_on_commit=False) as s:
        # The frozen (pre-issue-11) shipment: submitted, straight in its double check (the
        # workspace is about the audit trail, not the shipped steps).
        services.publish_files(s, [ROOT / "tests/data/flows/rules/shipment.yaml"])
        for username, name in NAMES.items():
            s.execute(update(User).where(User.username == username).values(display_name=name))
        s.commit()
        people = {u.username: u for u in s.query(User)}
        done = services.create_document(s, people["zhang"], "shipment", SHIPMENT).document.id
        services.edit_document(s, done, people["zhang"], {"amount": "12900.00",
                               "items": [*SHIPMENT["items"], {"product": "维生素C片",
                               "spec": "100片", "qty": 2, "unit_price": "50.00"}]}, 1)  # fmt: skip
        services.act(s, done, people["zhang"], "submit", 2, "请复核")
        services.act(s, done, people["wang"], "approve", 2, "核对无误")
        services.act(s, done, people["li"], "approve", 2, "数量规格一致")
        tried = services.create_document(s, people["chen"], "shipment", SHIPMENT).document.id
        services.act(s, tried, people["chen"], "submit", 1)
        with pytest.raises(Refused):
            services.act(s, tried, people["chen"], "approve", 1)
        waiting = services.create_document(s, people["wang"], "shipment", SHIPMENT).document.id
    engine.dispose()
    return {"done": done, "tried": tried, "waiting": waiting}


def shoot(folder: Path | None, page: Any, name: str) -> None:
    if folder is not None:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def fits_the_screen(page: Any) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_search_timeline_export_verify(browser, live_server, history, screenshots):
    shen = Person(browser, live_server, "shen", "zh")
    page = shen.page
    page.click("nav >> text=审计")
    page.wait_for_url(re.compile(r".*/audit/$"))
    page.fill("input[name=actor]", "王芳")
    page.click("form.audit-search button[type=submit]")
    page.wait_for_url(re.compile(r".*actor=.*"))
    rows = page.locator("table.audit-rows tbody tr")
    assert rows.count() == 2  # her token and her approval
    assert "王芳" in rows.first.inner_text()
    page.fill("input[name=actor]", "")
    page.fill("input[name=document]", "")
    page.click("form.audit-search button[type=submit]")
    shoot(screenshots, page, "audit-history-zh-desktop")

    page.click(f"table.audit-rows a[href='/audit/documents/{history['done']}']")
    page.wait_for_url(re.compile(rf".*/audit/documents/{history['done']}$"))
    timeline = page.locator("ol.audit-timeline")
    assert timeline.locator(".given").all_inner_texts() == ["针对修订 2", "针对修订 2"]
    assert "12900.00" in page.locator("table.diff").inner_text()
    shoot(screenshots, page, "audit-timeline-zh-desktop")

    with page.expect_download() as download:
        page.click("text=CSV")
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][0] == "序号" and len(rows) == 1 + 5
    assert {r[rows[0].index("单据号")] for r in rows[1:]} == {str(history["done"])}

    page.click(".subnav >> text=职责分离")
    page.select_option("select[name=flow]", "shipment")
    page.click("form.search button[type=submit]")
    assert "无职责重叠" in page.locator(".sod-summary").inner_text()
    shoot(screenshots, page, "audit-sod-zh-desktop")

    page.click(".subnav >> text=校验链")
    page.click("#verify-chain")
    result = page.locator(".verify-result")
    assert "审计链完整" in result.inner_text()
    shen.close()


@pytest.mark.parametrize(
    "path", ["/audit/", "/audit/security", "/audit/sod?flow=shipment", "/audit/verify", "DOC"]
)
def test_auditors_pages_on_a_phone(browser, live_server, history, screenshots, path):
    phone = Person(browser, live_server, "shen", "zh", width=390)
    target = f"/audit/documents/{history['done']}" if path == "DOC" else path
    phone.page.goto(live_server + target)
    assert phone.page.locator("h1").is_visible()
    assert fits_the_screen(phone.page), f"{target} scrolls sideways on a phone"
    if path in ("/audit/", "DOC"):
        shoot(screenshots, phone.page, "audit-" + ("timeline" if path == "DOC" else "history")
              + "-zh-phone")  # fmt: skip
    phone.close()
