"""The report pages and API: managers only; every figure's link lists exactly what it counts;
the XLSX and CSV files hold the page's tables."""

from __future__ import annotations

import io
import re
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import openpyxl
import pytest
from sqlalchemy import select

from tests.report_world import build_world
from workflow.models import User


@pytest.fixture
def world(app) -> dict[str, int]:
    from webui.extensions import db

    with app.app_context():
        people = {u.username: u for u in db.session.scalars(select(User))}
        ids = build_world(db.session, people)
        db.session.remove()
    return ids


class Tables(HTMLParser):
    """Every <table class="report"> by id: rows of (text, href) cells; and every figure link."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, str | None]]]] = {}
        self.links: list[tuple[str, str]] = []
        self._table: str | None = None
        self._in_body = False
        self._cell: list[str] | None = None
        self._href: str | None = None
        self._link: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table" and "report" in (a.get("class") or ""):
            self._table = a["id"].removeprefix("table-")  # type: ignore[union-attr]
            self.tables[self._table] = []
        elif tag == "tbody" and self._table:
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.tables[self._table].append([])  # type: ignore[index]
        elif tag == "td" and self._in_body:
            self._cell, self._href = [], None
        elif tag == "a" and "fig" in (a.get("class") or "").split():
            self._link = []
            self._href_now = a["href"]
            if self._cell is not None:
                self._href = a["href"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table, self._in_body = None, False
        elif tag == "td" and self._cell is not None:
            row = self.tables[self._table][-1]  # type: ignore[index]
            row.append(("".join(self._cell).strip(), self._href))
            self._cell = None
        elif tag == "a" and self._link is not None:
            self.links.append(("".join(self._link).strip(), self._href_now))
            self._link = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._link is not None:
            self._link.append(data)


def parse(html: str) -> Tables:
    parser = Tables()
    parser.feed(html)
    return parser


def number(text: Any) -> Any:
    if text is None or text == "":
        return None
    if isinstance(text, int | float):
        return Decimal(str(text))
    try:
        return Decimal(str(text).replace(",", ""))
    except ArithmeticError:
        return str(text)


def listed(client, href: str) -> tuple[int, Decimal, set[str]]:
    page = client.get(href)
    assert page.status_code == 200, href
    html = page.get_data(as_text=True)
    total = int(re.search(r'id="total">(\d+)<', html).group(1))
    amount = Decimal(
        re.search(r'id="amount">([^<]*)<', html).group(1).replace(",", "").lstrip("¥") or "0"
    )
    ids = set(re.findall(r'class="doc" href="/documents/(\d+)"', html))
    assert len(ids) == total
    return total, amount, ids


@pytest.mark.parametrize("name", ["zhang", "li", "xu", "zhao", "admin"])
def test_non_managers_are_refused(client, login_as, api_as, name) -> None:
    browser = login_as(name)
    for path in ("/reports/", "/reports/contracts", "/reports/documents?figure=created"):
        assert browser.get(path).status_code == 403
    headers = api_as(name)
    for path in ("/api/v1/reports/summary", "/api/v1/reports/contracts?format=xlsx"):
        response = client.get(path, headers=headers)
        assert response.status_code == 403
        assert response.get_json()["error"]["code"] == "forbidden"
    assert "/reports/" not in browser.get("/inbox").get_data(as_text=True)


def test_anonymous_is_sent_to_sign_in(client) -> None:
    assert client.get("/reports/").status_code == 302
    assert client.get("/api/v1/reports/summary").status_code == 401


@pytest.mark.parametrize("name", ["liu", "ma", "shen"])
def test_managers_and_auditors_see_reports(login_as, name) -> None:
    browser = login_as(name)
    page = browser.get("/reports/?period=2026-11")
    assert page.status_code == 200
    assert 'href="/reports/"' in browser.get("/inbox").get_data(as_text=True)


def test_every_overview_figure_lists_what_it_counts(login_as, world) -> None:
    browser = login_as("liu")
    for period in ("2026-11", "2026-Q4"):
        html = browser.get(f"/reports/?period={period}").get_data(as_text=True)
        links = parse(html).links
        assert len(links) > 20
        for text, href in links:
            total, _, ids = listed(browser, href.replace("&amp;", "&"))
            assert total == int(text.split()[0]), (text, href)
    # spot checks by hand: the rejected figure is B and C
    total, _, ids = listed(browser, "/reports/documents?figure=rejected&period=2026-11")
    assert ids == {str(world["B"]), str(world["C"])}


def test_every_contract_figure_lists_what_it_counts(login_as, world) -> None:
    browser = login_as("ma")
    html = browser.get("/reports/contracts?period=2026-11").get_data(as_text=True)
    tables = parse(html).tables["contracts"]
    checked = 0
    for row in tables:
        for text, href in row:
            if not href:
                continue
            total, amount, _ = listed(browser, href.replace("&amp;", "&"))
            if "." in text:  # a money figure: the documents behind it add up to it
                assert amount == number(text), (text, href)
            else:  # the contract number: its documents
                assert total > 0
            checked += 1
    assert checked == 12  # two contracts and the totals line, four links each
    so1 = next(r for r in tables if r[0][0] == "SO-1")
    assert [c[0] for c in so1[3:8]] == ["30,000.00", "12,800.00", "12,800.00", "12,800.00", "0.00"]


def page_and_xlsx(browser, path: str) -> tuple[Tables, Any]:
    page = parse(browser.get(path).get_data(as_text=True))
    joiner = "&" if "?" in path else "?"
    response = browser.get(f"{path}{joiner}format=xlsx")
    assert response.status_code == 200
    assert response.mimetype.endswith("spreadsheetml.sheet")
    return page, openpyxl.load_workbook(io.BytesIO(response.data))


def sheet_rows(sheet: Any, columns: int) -> list[list[Any]]:
    start = next(
        r for r in range(1, 12) if sheet.cell(r, 1).value is None and sheet.cell(r + 1, 1).value
    )
    return [
        [number(c.value) for c in row]
        for row in sheet.iter_rows(min_row=start + 2, max_col=columns)
    ]


def test_overview_xlsx_equals_the_page(login_as, world) -> None:
    browser = login_as("shen")
    page, book = page_and_xlsx(browser, "/reports/?period=2026-Q4")
    keys = list(page.tables)
    assert len(book.worksheets) == len(keys) == 8
    assert "2026-Q4" in book.worksheets[0].cell(2, 1).value
    for key, sheet in zip(keys, book.worksheets, strict=True):
        rows = page.tables[key]
        assert rows and len(rows[0]) > 1, key  # the data set fills every table
        shown = [[number(text) for text, _ in row] for row in rows]
        assert sheet_rows(sheet, len(rows[0])) == shown, key


def test_contracts_xlsx_and_csv_equal_the_page(login_as, world) -> None:
    browser = login_as("liu")
    page, book = page_and_xlsx(browser, "/reports/contracts?period=2026-11")
    shown = [[number(text) for text, _ in row] for row in page.tables["contracts"]]
    assert len(shown) == 3  # SO-1, SO-2 and the totals line
    assert sheet_rows(book.active, 9) == shown
    assert book.active["D6"].value == 30000
    assert book.active["D6"].number_format == "#,##0.00"
    csv_response = browser.get("/reports/contracts?period=2026-11&format=csv")
    assert csv_response.data.startswith(b"\xef\xbb\xbf")
    assert "SO-1,甲医药,王磊,30000.00,12800.00" in csv_response.data.decode("utf-8-sig")


def test_api_summary_and_contracts(client, api_as, world) -> None:
    headers = api_as("liu")
    body = client.get("/api/v1/reports/summary?period=2026-11", headers=headers).get_json()
    assert body["totals"]["created"] == 5
    assert body["totals"]["created_amount"] == "78100.00"
    assert body["period"] == {"label": "2026-11", "start": "2026-11-01", "end": "2026-11-30"}
    body = client.get(
        "/api/v1/reports/contracts?period=2026-11&sales_rep=李明", headers=headers
    ).get_json()
    assert [(c["contract_no"], c["outstanding"]) for c in body["contracts"]] == [
        ("SO-2", "2000.00")
    ]
    xlsx = client.get("/api/v1/reports/summary?period=2026&format=xlsx", headers=headers)
    assert xlsx.status_code == 200
    assert openpyxl.load_workbook(io.BytesIO(xlsx.data)).sheetnames[0] == "汇总"
    bad = client.get("/api/v1/reports/summary?period=2026-13", headers=headers)
    assert bad.status_code == 422


def test_chart_svg_has_the_tables_numbers(login_as, world) -> None:
    browser = login_as("liu")
    svg = browser.get("/reports/charts/steps.svg?period=2026-11")
    assert svg.mimetype == "image/svg+xml"
    text = svg.get_data(as_text=True)
    assert "<script" not in text and "style=" not in text
    assert "2.0 小时" in text  # the GM exception's median, as in the steps table
    assert browser.get("/reports/charts/months.svg?period=2026-11").status_code == 404
    assert browser.get("/reports/charts/months.svg?period=2026-Q4").status_code == 200


def test_rebuild_command(app, world) -> None:
    result = app.test_cli_runner().invoke(args=["reports", "rebuild"])
    assert result.exit_code == 0, result.output
    assert "report rows rebuilt for 6 documents" in result.output


def test_pages_in_english_with_a_flow_and_bad_input(login_as, world) -> None:
    browser = login_as("liu")
    english = {"Accept-Language": "en"}
    page = browser.get("/reports/?period=2026-11&flow=shipment", headers=english)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Time per review step" in html and "General manager exception" in html
    assert browser.get("/reports/?period=2026-13").status_code == 422
    assert browser.get("/reports/documents?figure=nope&period=2026-11").status_code == 422
    assert browser.get("/reports/contracts?customer=" + "x" * 300).status_code == 400
