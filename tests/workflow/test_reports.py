"""Reports on a fixed data set whose figures were computed by hand (tests/report_world.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, select

from tests.conftest import DEFINITIONS
from tests.report_world import build_world
from workflow import report_export, report_index, reports
from workflow.definitions.build import load_flow_file
from workflow.errors import Forbidden, InvalidData
from workflow.models import ReportDocument, ReportStep
from workflow.reports import Scope, parse_period


@pytest.fixture
def world(session, flows, people) -> dict[str, int]:
    return build_world(session, people)


NOW = dt.datetime(2026, 12, 15, 4, 0, tzinfo=dt.UTC)
SHIP_EXAMPLE = load_flow_file(next(p for p in DEFINITIONS if p.stem == "shipment")).example


def doc_ids(session, scope: Scope, figure: str) -> set[int]:
    rows, total, _ = reports.figure_documents(session, scope, figure)
    assert total == len(rows)
    return {r.document_id for r in rows}


# --- periods -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "start", "end", "months"),
    [
        ("2026-11", "2026-11-01", "2026-12-01", 1),
        ("2026-12", "2026-12-01", "2027-01-01", 1),
        ("2026-Q4", "2026-10-01", "2027-01-01", 3),
        ("2026-Q1", "2026-01-01", "2026-04-01", 3),
        ("2026", "2026-01-01", "2027-01-01", 12),
        ("2026-11..2027-Q1", "2026-11-01", "2027-04-01", 5),
    ],
)
def test_period_parsing(text: str, start: str, end: str, months: int) -> None:
    period = parse_period(text)
    assert (period.start.isoformat(), period.end.isoformat()) == (start, end)
    assert len(period.months()) == months
    assert period.label == text


def test_period_bounds_are_china_time() -> None:
    start, end = parse_period("2026-11").bounds()
    assert start == dt.datetime(2026, 10, 31, 16, 0, tzinfo=dt.UTC)
    assert end == dt.datetime(2026, 11, 30, 16, 0, tzinfo=dt.UTC)


def test_empty_period_is_this_month() -> None:
    assert parse_period("", today=dt.date(2026, 2, 14)).label == "2026-02"


@pytest.mark.parametrize(
    "text", ["2026-13", "2026-Q5", "26-11", "2026-1", "1999", "2026-12..2026-01", "x", "2000..2100"]
)
def test_bad_periods_are_refused(text: str) -> None:
    with pytest.raises(InvalidData):
        parse_period(text)


# --- the figures, by hand ----------------------------------------------------------------------
def test_november_totals(session, world) -> None:
    s = reports.summary(session, Scope(parse_period("2026-11")), now=NOW)
    t = s["totals"]
    assert (t["created"], t["completed"], t["rejected"], t["withdrawn"], t["open"]) == (
        5,
        1,
        2,
        0,
        5,
    )
    assert t["created_amount"] == Decimal("78100.00")  # 12800 + 500 + 12800 + 50000 + 2000
    assert t["completed_amount"] == Decimal("12800.00")
    w = world
    scope = Scope(parse_period("2026-11"))
    assert doc_ids(session, scope, "created") == {w[k] for k in "ABCEF"}
    assert doc_ids(session, scope, "completed") == {w["A"]}
    assert doc_ids(session, scope, "rejected") == {w["B"], w["C"]}
    assert doc_ids(session, scope, "open") == {w[k] for k in "BCDEF"}


def test_month_boundary_in_china_time(session, world) -> None:
    october = reports.summary(session, Scope(parse_period("2026-10")), now=NOW)["totals"]
    december = reports.summary(session, Scope(parse_period("2026-12")), now=NOW)["totals"]
    assert (october["created"], october["open"]) == (1, 1)  # D, at 23:30 on 31 October
    # A was completed at 23:59 on 30 November: November's, not December's
    assert (december["completed"], december["withdrawn"], december["created"]) == (0, 1, 0)


def test_quarter_by_month(session, world) -> None:
    s = reports.summary(session, Scope(parse_period("2026-Q4")), now=NOW)
    months = {
        m["month"]: (m["created"], m["created_amount"], m["completed"]) for m in s["by_month"]
    }
    assert months == {
        "2026-10": (1, Decimal("2330.50"), 0),
        "2026-11": (5, Decimal("78100.00"), 1),
        "2026-12": (0, Decimal("0.00"), 0),
    }
    flows = {row["flow"]: row["created"] for row in s["by_flow"]}
    assert flows == {"shipment": 3, "invoicing": 1, "expense": 1, "tender_deposit": 1}


def test_a_years_months_are_its_months_overviews_in_the_same_statements(session, world) -> None:
    """The by-month table comes from the figures' own queries, grouped by month as well (a
    CASE over the months' ends in China time), not from two more queries per month: a year's
    overview sends as many statements as a month's, and each of its months says what that
    month's own overview says."""
    sent: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("SELECT"):  # not SQLite's BEGIN of the first one
            sent.append(statement)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", count)
    try:
        month = reports.summary(session, Scope(parse_period("2026-11")), now=NOW)
        in_a_month = len(sent)
        year = reports.summary(session, Scope(parse_period("2026")), now=NOW)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(sent) - in_a_month == in_a_month
    assert [m["month"] for m in year["by_month"]] == [f"2026-{n:02d}" for n in range(1, 13)]
    figures = ("created", "created_amount", "completed", "completed_amount")
    for row in year["by_month"]:
        alone = reports.summary(session, Scope(parse_period(row["month"])), now=NOW)["totals"]
        assert {f: row[f] for f in figures} == {f: alone[f] for f in figures}, row["month"]
    november = next(m for m in year["by_month"] if m["month"] == "2026-11")
    assert (november["created"], november["completed"]) == (month["totals"]["created"], 1)
    assert sum(m["created"] for m in year["by_month"]) == year["totals"]["created"]


def test_steps_medians_and_slowest(session, world) -> None:
    s = reports.summary(session, Scope(parse_period("2026-11")), now=NOW)
    steps = {(r["flow"], r["state"]): r for r in s["steps"]}
    gm = steps[("shipment", "gm_exception")]  # B: 2 h rejected, 6 h approved; F: 1 h
    assert (gm["passes"], gm["documents"]) == (3, 2)
    assert gm["median_seconds"] == 7200
    assert gm["avg_seconds"] == 10800  # (7200 + 21600 + 3600) / 3
    assert gm["max_seconds"] == 21600
    check = steps[("invoicing", "request_check")]  # 1 h rejected, 2 h approved
    assert (check["median_seconds"], check["max_seconds"]) == (Decimal(5400), 7200)
    double = steps[("shipment", "double_check")]  # A 4 h, F 1 h; B still waiting
    assert (double["passes"], double["median_seconds"]) == (2, 9000)
    assert steps[("tender_deposit", "deposit_check")]["max_seconds"] == 3 * 3600


def test_rejections_and_approvals(session, world) -> None:
    s = reports.summary(session, Scope(parse_period("2026-11")), now=NOW)
    assert s["rejections_by_reason"] == [{"reason": "未收款", "rejections": 2, "documents": 2}]
    by_step = {(r["flow"], r["state"]): r["rejections"] for r in s["rejections_by_step"]}
    assert by_step == {("shipment", "gm_exception"): 1, ("invoicing", "request_check"): 1}
    approvals = {r["reviewer"]: r["approvals"] for r in s["approvals_by_reviewer"]}
    assert approvals == {
        "wang": 3, "li": 1, "ma": 1, "liu": 2, "chen": 1, "zhao": 2, "qian": 1,
        "he": 1, "sun": 1, "zhou": 1,
    }  # fmt: skip
    scope = Scope(parse_period("2026-11"), params={"reviewer": "wang"})
    assert doc_ids(session, scope, "approved_by") == {world["A"], world["C"], world["F"]}
    scope = Scope(parse_period("2026-11"), params={"reason": "未收款"})
    assert doc_ids(session, scope, "rejected") == {world["B"], world["C"]}


def test_open_deposits(session, world) -> None:
    s = reports.summary(session, Scope(parse_period("2026-11")), now=NOW)
    assert [(d["document_id"], d["amount"], d["paid_on"]) for d in s["open_deposits"]] == [
        (world["E"], Decimal("50000.00"), "2026-11-13")
    ]
    # as of the end of November (the period is over)
    assert s["open_deposits"][0]["age_days"] == 17


def test_flow_filter(session, world) -> None:
    t = reports.summary(session, Scope(parse_period("2026-11"), "shipment"), now=NOW)["totals"]
    assert (t["created"], t["completed"], t["rejected"], t["created_amount"]) == (
        3,
        1,
        1,
        Decimal("15300.00"),
    )


def test_contract_list(session, world) -> None:
    report = reports.contracts(session, Scope(parse_period("2026-11")), now=NOW)
    lines = {line["contract_no"]: line for line in report["contracts"]}
    so1, so2 = lines["SO-1"], lines["SO-2"]
    assert so1["customer"] == "甲医药"
    assert so1["sales_rep"] == "王磊"
    assert so1["contract_amount"] == Decimal("30000.00")
    assert (so1["shipped"], so1["invoiced"], so1["paid"], so1["outstanding"]) == (
        Decimal("12800.00"),
        Decimal("12800.00"),
        Decimal("12800.00"),
        Decimal("0.00"),
    )
    assert so2["contract_amount"] is None
    assert (so2["shipped"], so2["paid"], so2["outstanding"]) == (
        Decimal("2000.00"),
        Decimal("0.00"),
        Decimal("2000.00"),
    )
    assert report["totals"]["shipped"] == Decimal("14800.00")
    assert report["totals"]["outstanding"] == Decimal("2000.00")
    scope = Scope(parse_period("2026-11"), params={"contract": "SO-1", "kind": "shipped"})
    assert doc_ids(session, scope, "contract") == {world["A"]}
    scope = Scope(parse_period("2026-11"), params={"contract": "SO-1"})
    assert doc_ids(session, scope, "contract") == {world["A"], world["B"], world["C"]}


def test_contract_filters(session, world) -> None:
    by_rep = reports.contracts(session, Scope(parse_period("2026"), params={"sales_rep": "李明"}))
    assert [line["contract_no"] for line in by_rep["contracts"]] == ["SO-2"]
    by_customer = reports.contracts(session, Scope(parse_period("2026"), params={"customer": "甲"}))
    assert [line["contract_no"] for line in by_customer["contracts"]] == ["SO-1"]
    assert reports.contracts(session, Scope(parse_period("2026-10")))["contracts"] == []


def test_rebuild_reproduces_the_listener(session, world) -> None:
    def snapshot() -> list[tuple[Any, ...]]:
        docs = session.execute(
            select(
                ReportDocument.document_id,
                ReportDocument.state,
                ReportDocument.status,
                ReportDocument.amount_fen,
                ReportDocument.contract_no,
            ).order_by(ReportDocument.document_id)
        ).all()
        steps = session.execute(
            select(ReportStep.document_id, ReportStep.state, ReportStep.seconds).order_by(
                ReportStep.document_id, ReportStep.entered_at
            )
        ).all()
        return [*docs, *steps]

    before = snapshot()
    assert report_index.rebuild(session) == 6
    assert snapshot() == before


def test_only_managers_may_view(people) -> None:
    for name in ("liu", "ma", "shen"):
        reports.require_viewer(people[name])
    for name in ("zhang", "li", "xu", "zhao", "admin"):
        with pytest.raises(Forbidden):
            reports.require_viewer(people[name])


def test_xlsx_reads_back_as_the_tables(session, world) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    import io

    s = reports.summary(session, Scope(parse_period("2026-11")), now=NOW)
    tables = report_export.summary_tables(s)
    header = report_export.header_lines(s, "统计表")
    book = openpyxl.load_workbook(io.BytesIO(report_export.to_xlsx(tables, header)))
    assert len(book.worksheets) == len(tables)
    for sheet, table in zip(book.worksheets, tables, strict=True):
        assert sheet.cell(1, 1).value == "统计表"
        assert "2026-11" in sheet.cell(2, 1).value
        top = len(header) + 2
        rows = [
            [c.value for c in row]
            for row in sheet.iter_rows(min_row=top + 1, max_col=len(table.columns))
        ]
        expected = [
            [None if v is None else (v if isinstance(v, str) else Decimal(str(v))) for v in values]
            for values in table.values()
        ]
        got = [
            [None if v is None else (v if isinstance(v, str) else Decimal(str(v))) for v in row]
            for row in rows
        ]
        assert got == expected, table.key
    money = book["汇总"].cell(len(header) + 3, 3)
    assert money.number_format == "#,##0.00"


def test_csv_is_formula_safe_with_bom(session, world) -> None:
    report = reports.contracts(session, Scope(parse_period("2026-11")), now=NOW)
    report["contracts"][0]["customer"] = "=HYPERLINK(1)"
    data = report_export.to_csv(
        report_export.contract_tables(report), report_export.header_lines(report, "合同履行一览表")
    )
    assert data.startswith("\ufeff".encode())
    text = data.decode("utf-8-sig")
    assert "'=HYPERLINK(1)" in text
    assert "14800.00" in text


def test_a_refused_action_leaves_the_report_rows_as_they_were(session, flows, people) -> None:
    from workflow import services
    from workflow.errors import Refused
    from workflow.models import Review

    doc = services.create_document(session, people["zhang"], "shipment", SHIP_EXAMPLE).document
    services.act(session, doc.id, people["zhang"], "submit", 1)
    paid = {"paid": True, "payment_ref": "HD-1"}  # finance confirms the payment (款到发货)
    services.edit_document(session, doc.id, people["zhao"], paid, 1)
    services.act(session, doc.id, people["zhao"], "confirm_payment", 2)
    row = session.get(ReportDocument, doc.id)
    assert (row.state, row.status, row.amount_fen, row.contract_no) == (
        "double_check",
        "open",
        1280000,
        "SO-2026-1024",
    )
    with pytest.raises(Refused):  # the submitter may not approve
        services.act(session, doc.id, people["zhang"], "approve", 2)
    session.expire_all()
    assert session.get(ReportDocument, doc.id).state == "double_check"
    assert session.scalars(select(Review)).all() == []
    steps = session.scalars(select(ReportStep).where(ReportStep.document_id == doc.id)).all()
    assert [(s.state, s.left_at) for s in steps] == [("double_check", None)]


def test_an_edit_updates_the_amount_and_contract(session, flows, people) -> None:
    from workflow import services

    doc = services.create_document(session, people["zhang"], "shipment", SHIP_EXAMPLE).document
    services.edit_document(session, doc.id, people["zhang"], {"order_no": "SO-9"}, 1)
    session.expire_all()
    assert session.get(ReportDocument, doc.id).contract_no == "SO-9"


def test_several_events_of_one_document_in_one_flush(session, flows, people) -> None:
    """However the services batch their writes, each pass and row is recorded once."""
    from workflow import services
    from workflow.models import AuditEvent

    doc = services.create_document(session, people["zhang"], "shipment", SHIP_EXAMPLE).document
    t0 = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.UTC)
    moves = [("submit", "draft", "double_check", 0), ("reject", "double_check", "draft", 3600)]
    for seq, (action, source, dest, offset) in enumerate(moves, start=100):
        session.add(
            AuditEvent(
                at=t0 + dt.timedelta(seconds=offset),
                chain_key="batch-test",
                chain_seq=seq,
                prev_hash="",
                hash="",
                document_id=doc.id,
                flow="shipment",
                actor="wang",
                action=action,
                outcome="ok",
                from_state=source,
                to_state=dest,
                comment="数量不符" if action == "reject" else "",
            )
        )
    session.commit()
    steps = session.scalars(select(ReportStep).where(ReportStep.document_id == doc.id)).all()
    assert [(s.state, s.seconds, s.outcome, s.reason) for s in steps] == [
        ("double_check", 3600, "rejected", "数量不符")
    ]
    assert session.get(ReportDocument, doc.id).state == "draft"
