"""In Chromium: the creator attaches a receipt scan through the document page's upload form, a
reviewer sees it inline and opens it from our own endpoint, asks a question in the thread, and
a file of the wrong type is refused on the page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import serving
from tests.browser.test_review_cycle import Person
from tests.conftest import DEFINITIONS, PASSWORD, PEOPLE
from tests.webui.test_attachments import DATA, FLOW

pytestmark = pytest.mark.browser


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A live server with the attachment test flow and one draft by zhang: (url, document id)."""
    from webui import create_app
    from webui.extensions import db
    from workflow import services
    from workflow.accounts import create_user
    from workflow.db import Base

    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'browser.sqlite3'}",
            "ATTACHMENT_DIR": str(tmp_path / "attachments"),
        }
    )
    with app.app_context():
        Base.metadata.create_all(db.engine)
        services.publish_files(db.session, DEFINITIONS)
        services.publish_flow(db.session, FLOW, "attach_demo.yaml")
        users = {n: create_user(db.session, n, PASSWORD, roles) for n, roles in PEOPLE.items()}
        doc_id = services.create_document(db.session, users["zhang"], "attach_demo", DATA)
        doc_id = doc_id.document.id
        db.session.remove()
    with serving(app) as url:
        yield url, doc_id


def tiny_png(width: int = 120, height: int = 60) -> bytes:
    """A real PNG (a pale receipt with a darker band), so the browser can draw it."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    rows = b"".join(
        b"\x00" + (b"\x40\x60\xa0" if 20 <= y < 28 else b"\xf4\xf1\xe8") * width
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def shoot(folder: Path | None, page: Any, name: str) -> None:
    if folder is not None:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_attach_a_receipt_see_it_inline_and_ask_about_it(browser, served, screenshots, tmp_path):
    base, doc_id = served
    receipt = tmp_path / "收据.png"
    receipt.write_bytes(tiny_png())
    disguised = tmp_path / "invoice.pdf"
    disguised.write_bytes(b"<!doctype html><script>alert(1)</script>")

    zhang = Person(browser, base, "zhang", "zh")
    page = zhang.page
    page.goto(f"{base}/documents/{doc_id}")
    page.set_input_files("#attachment-file", str(disguised))
    page.click(".upload-form button[type=submit]")
    assert "PDF" in page.locator(".flash.error").first.inner_text()  # refused, on the page
    page.set_input_files("#attachment-file", str(receipt))
    page.click(".upload-form button[type=submit]")
    page.wait_for_selector("ul.files li.file")
    assert "收据.png" in page.locator("ul.files").inner_text()
    zhang.close()

    li = Person(browser, base, "li", "zh")
    page = li.page
    page.goto(f"{base}/documents/{doc_id}")
    image = page.locator("img.attachment-img")
    image.wait_for()
    # the image really loaded from our endpoint (CSP img-src 'self', session cookie sent)
    page.wait_for_function(
        "(img) => img.complete && img.naturalWidth === 120", arg=image.element_handle()
    )
    response = page.request.get(base + image.get_attribute("src"))
    assert response.status == 200 and response.headers["x-content-type-options"] == "nosniff"
    page.fill("#comment-text", "收据日期看不清，能否重拍？")
    page.click(".comment-form button[type=submit]")
    page.wait_for_selector("ol.thread li p.comment")
    assert "收据日期看不清" in page.locator("ol.thread").inner_text()
    shoot(screenshots, page, "attachments-zh-desktop")
    li.close()

    phone = Person(browser, base, "zhang", "zh", width=390)
    phone.page.goto(f"{base}/documents/{doc_id}")
    phone.page.wait_for_selector("ul.files li.file")
    shoot(screenshots, phone.page, "attachments-zh-phone")
    phone.close()
