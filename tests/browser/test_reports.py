"""In Chromium, at desktop and phone widths: the overview with its charts, a chart's bar leading
to the documents it counts, the chart alone, and the contract list — with no CSP violation.

`pytest tests/browser/test_reports.py --screenshots docs/screenshots` refreshes the screenshots.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.browser.conftest import serving
from tests.browser.test_review_cycle import Person, shoot
from tests.conftest import DEFINITIONS, PASSWORD, PEOPLE
from tests.report_world import build_world

pytestmark = pytest.mark.browser
WIDTHS = {"desktop": 1280, "phone": 390}


@pytest.fixture
def report_server(tmp_path: Path) -> Iterator[str]:
    """A live server whose database holds the hand-computed report data set."""
    from webui import create_app
    from webui.extensions import db
    from workflow.accounts import create_user
    from workflow.db import Base
    from workflow.models import User
    from workflow.services import publish_files

    app = create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'r.sqlite3'}"}
    )
    with app.app_context():
        Base.metadata.create_all(db.engine)
        publish_files(db.session, DEFINITIONS)
        for name, roles in PEOPLE.items():
            create_user(db.session, name, PASSWORD, roles)
        build_world(db.session, {u.username: u for u in db.session.scalars(select(User))})
        db.session.remove()
    with serving(app) as url:
        yield url


def no_overflow(page: Any) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_overview_and_a_chart(browser, report_server, screenshots, size: str) -> None:
    person = Person(browser, report_server, "liu", "zh", width=WIDTHS[size])
    page = person.page
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)

    page.click("nav a[href='/reports/']")
    page.goto(f"{report_server}/reports/?period=2026-Q4")
    chart = page.locator("svg#chart-steps")
    assert chart.is_visible()
    box = chart.bounding_box()
    assert box is not None and 0 < box["width"] <= WIDTHS[size]
    assert page.locator("table#table-steps").is_visible()
    assert no_overflow(page)
    shoot(screenshots, page, f"reports-overview-zh-{size}")

    # the chart's bar for rejections "未收款" leads to the two documents it counts
    page.goto(f"{report_server}/reports/?period=2026-11")
    bar = page.locator("svg#chart-reasons a.bar").first
    assert "未收款" in bar.inner_html()
    bar.locator("rect").click(timeout=5000)
    page.wait_for_url(re.compile(r".*/reports/documents\?.*figure=rejected.*"))
    assert page.locator("#total").inner_text() == "2"
    assert page.locator("#figure-documents a.doc").count() == 2

    page.goto(f"{report_server}/reports/charts/steps.svg?period=2026-11")
    assert page.locator("svg title").first.text_content() == "各复核环节用时中位数（小时）"

    page.goto(f"{report_server}/reports/contracts?period=2026-11")
    assert page.locator("table#table-contracts tbody tr").count() == 3
    assert "SO-1" in page.locator("table#table-contracts").inner_text()
    assert no_overflow(page)
    shoot(screenshots, page, f"reports-contracts-zh-{size}")
    assert not [p for p in problems if "Content Security Policy" in p], problems
    person.close()
