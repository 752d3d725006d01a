"""The flow editor in Chromium: a typo shows at its line, the fix clears it, the diagram follows
the text, publishing makes a new version with its note; the flows page on a phone."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def sign_in(browser: Any, base: str, username: str, width: int = 1280, height: int = 900) -> Any:
    context = browser.new_context(locale="zh-CN", viewport={"width": width, "height": height})
    page = context.new_page()
    page.goto(f"{base}/auth/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url(re.compile(r".*/inbox$"))
    return page


def line_of(page: Any, text: str) -> int:
    """The 0-based line of the editor that contains `text`."""
    return page.evaluate(
        """(text) => {
            const cm = document.querySelector('.CodeMirror').CodeMirror;
            for (let i = 0; i < cm.lineCount(); i++) { if (cm.getLine(i).includes(text)) return i; }
            return -1;
        }""",
        text,
    )


def put_cursor(page: Any, line: int, after: str) -> None:
    """Click into the editor and put the cursor just after `after` on `line` (then type)."""
    page.click(".CodeMirror")
    page.evaluate(
        """([line, after]) => {
            const cm = document.querySelector('.CodeMirror').CodeMirror;
            cm.focus();
            cm.setCursor({line, ch: cm.getLine(line).indexOf(after) + after.length});
        }""",
        [line, after],
    )


def test_typo_error_at_its_line_fix_diagram_changes_publish(
    browser: Any, live_server: str, screenshots: Path | None
):
    page = sign_in(browser, live_server, "admin")
    page.click("text=流程管理")
    page.wait_for_url(re.compile(r".*/flows/$"))
    page.click("#flow-expense ~ p a:text('编辑')")
    page.wait_for_url(re.compile(r".*/flows/expense/edit$"))
    page.wait_for_selector("#flow-editor[data-checked] #status.ok")
    assert page.locator("#diagram svg g[data-state=payment]").count() == 1

    # A typo in a state name: the problem appears at its line, with the hint.
    line = line_of(page, "on_approve: payment")
    assert line > 0
    put_cursor(page, line, "on_approve: payment")
    page.keyboard.press("Backspace")
    problem = page.locator(f"#problems li[data-line='{line + 1}']")
    problem.wait_for()
    assert "paymen" in problem.inner_text() and "payment" in problem.inner_text()
    widget = page.locator(".CodeMirror .cm-problem")
    assert widget.count() == 1 and "paymen" in widget.inner_text()
    # the message sits right under the line it is about
    gap = page.evaluate(
        """(line) => {
            const cm = document.querySelector('.CodeMirror').CodeMirror;
            const below = cm.charCoords({line, ch: 0}, 'window').bottom;
            return document.querySelector('.CodeMirror .cm-problem').getBoundingClientRect().top
                - below;
        }""",
        line,
    )
    assert 0 <= gap < 10
    assert page.locator("#publish-button").is_disabled()
    if screenshots:
        page.screenshot(path=str(screenshots / "flow-editor-error.png"), full_page=True)

    # Fixing it clears the problem.
    page.keyboard.type("t")
    page.wait_for_selector("#status.ok")
    assert page.locator(".CodeMirror .cm-problem").count() == 0
    assert "5000.00" in page.locator("#diagram").inner_text()

    # Raising the threshold redraws the diagram with the new condition.
    threshold = line_of(page, 'decimal("5000.00")')
    put_cursor(page, threshold, 'decimal("')
    page.keyboard.press("Delete")
    page.keyboard.type("8")
    page.wait_for_function(
        "() => document.querySelector('#diagram').textContent.includes('8000.00')"
    )
    assert "5000.00" not in page.locator("#diagram").inner_text()
    assert (
        "8000.00" in page.locator("#diff .ins").first.inner_text()
        or page.locator("#diff .ins").filter(has_text="8000.00").count() == 1
    )

    # Publish with a note: a new version, listed with its note and publisher.
    page.fill("#note", "总经理审批门槛提高到 8000 元")
    page.click("#publish-button")
    page.wait_for_url(re.compile(r".*/flows/$"))
    assert "已发布版本 2" in page.locator(".flash").inner_text()
    first = page.locator("section[aria-labelledby=flow-expense] table.versions tbody tr").first
    assert "v2" in first.inner_text()
    assert "总经理审批门槛提高到 8000 元" in first.inner_text()
    assert "admin" in first.inner_text()
    if screenshots:  # the published diagram at its natural size
        page.goto(f"{live_server}/flows/expense/edit")
        page.wait_for_selector("#flow-editor[data-checked] #status.ok")
        page.evaluate("() => document.querySelector('#diagram svg').style.maxWidth = 'none'")
        page.locator("#diagram svg").screenshot(path=str(screenshots / "flow-diagram.png"))
    page.context.close()


def test_flows_page_and_diagram_on_a_phone(
    browser: Any, live_server: str, screenshots: Path | None
):
    page = sign_in(browser, live_server, "admin", width=390, height=844)
    page.goto(f"{live_server}/flows/")
    for name in ("shipment", "invoicing", "expense", "tender_deposit"):
        assert page.locator(f"#flow-{name}").is_visible()
    # nothing wider than the screen: no sideways scrolling to read the versions
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    cell = page.locator("section[aria-labelledby=flow-shipment] table.versions td").first
    assert cell.is_visible()
    if screenshots:
        page.screenshot(path=str(screenshots / "flows-phone.png"), full_page=True)
    page.goto(f"{live_server}/flows/shipment/edit")
    page.wait_for_selector("#flow-editor[data-checked] #status.ok")
    # the diagram keeps a legible size and scrolls inside its frame, not the page
    frame = page.locator("#diagram").bounding_box()
    assert frame["x"] >= 0 and frame["x"] + frame["width"] <= 390
    title = page.locator("#diagram svg g[data-state=draft] text").first.bounding_box()
    assert title["height"] >= 12
    if screenshots:
        page.locator("#diagram").scroll_into_view_if_needed()
        page.screenshot(path=str(screenshots / "flow-editor-phone.png"))
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.context.close()
