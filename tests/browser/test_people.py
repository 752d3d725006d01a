"""In Chromium: the people page in 简体, 繁體 and English (desktop and phone, no sideways
scroll), adding a colleague through the form, and a refused self-grant explained in the
reader's language.

`pytest tests/browser/test_people.py --screenshots docs/screenshots` refreshes the screenshots.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import serving
from tests.browser.test_review_cycle import shoot
from tests.conftest import DEFINITIONS, PASSWORD, PEOPLE

pytestmark = pytest.mark.browser
WIDTHS = {"desktop": 1280, "phone": 390}
NAMES = {"zhang": "张伟", "li": "李强", "wang": "王芳", "zhao": "赵敏", "shen": "沈审计"}
# locale of the browser → what the page says
LANGUAGES = {
    "zh-CN": ("zh-Hans", "人员", "添加同事", "用户管理员"),
    "zh-TW": ("zh-Hant", "人員", "新增同事", "使用者管理員"),
    "en-US": ("en", "People", "Add a colleague", "User administrator"),
}


@pytest.fixture
def people_server(tmp_path: Path) -> Iterator[str]:
    from webui import create_app
    from webui.extensions import db
    from workflow.accounts import create_user
    from workflow.db import Base
    from workflow.services import publish_files

    app = create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'p.sqlite3'}"}
    )
    with app.app_context():
        Base.metadata.create_all(db.engine)
        publish_files(db.session, DEFINITIONS)
        for name, roles in PEOPLE.items():
            create_user(db.session, name, PASSWORD, roles, display_name=NAMES.get(name, ""))
        create_user(db.session, "boss", PASSWORD, ["user_admin"], display_name="白经理")
        db.session.remove()
    with serving(app) as url:
        yield url


def sign_in(browser: Any, base: str, locale: str, width: int) -> Any:
    context = browser.new_context(locale=locale, viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(f"{base}/auth/login")
    page.fill("#username", "boss")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url(re.compile(r".*/inbox$"))
    return page


@pytest.mark.parametrize("size", ["desktop", "phone"])
@pytest.mark.parametrize("locale", list(LANGUAGES))
def test_people_page_in_each_language(browser, people_server, screenshots, locale, size):
    html_lang, heading, add, role = LANGUAGES[locale]
    page = sign_in(browser, people_server, locale, WIDTHS[size])
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.click("nav a[href='/people']")
    assert page.locator("html").get_attribute("lang") == html_lang
    assert page.locator("h1").first.inner_text().startswith(heading)
    assert page.locator("h2", has_text=add).is_visible()
    assert page.locator("td", has_text=role).first.is_visible()  # role names translated
    assert page.locator("a", has_text="李强").is_visible()  # people by name, login beside
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert not problems, problems
    shoot(screenshots, page, f"people-{html_lang.lower()}-{size}")
    page.context.close()


def test_add_a_colleague_then_a_self_grant_is_refused_in_traditional(browser, people_server):
    page = sign_in(browser, people_server, "zh-TW", 1280)
    page.goto(f"{people_server}/people")
    page.fill("#username", "lin")
    page.fill("#display_name", "林新")
    page.fill("#password", "first-pw-12")
    page.check("input[name=roles][value=warehouse]")
    page.click("form[action='/people'] button[type=submit]")
    page.wait_for_url(re.compile(r".*/people/lin$"))
    assert "林新" in page.locator("h1").inner_text()
    assert page.locator("[role=status]", has_text="已新增").is_visible()
    # Own account: the role boxes are disabled and the page says why.
    page.goto(f"{people_server}/people/boss")
    assert page.locator("input[name=roles][value=gm]").is_disabled()
    assert page.locator("[role=note]", has_text="另一位使用者管理員").is_visible()
    page.context.close()


def test_the_language_switch_offers_three_languages_on_the_sign_in_page(browser, people_server):
    context = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 800})
    page = context.new_page()
    page.goto(f"{people_server}/auth/login")
    assert page.locator("html").get_attribute("lang") == "zh-Hans"
    page.click("button[name=language][value=zh_Hant]")
    assert page.locator("html").get_attribute("lang") == "zh-Hant"
    assert page.locator("h1").inner_text().startswith("登入")
    page.click("button[name=language][value=en]")
    assert page.locator("html").get_attribute("lang") == "en"
    # the choice made before signing in is kept after it
    page.fill("#username", "boss")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url(re.compile(r".*/inbox$"))
    assert page.locator("html").get_attribute("lang") == "en"
    context.close()
