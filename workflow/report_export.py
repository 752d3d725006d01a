"""The reports as tables: the same rows feed the page, the XLSX file and the CSV file.

XLSX: one sheet per table, numbers as numbers, money with two places, a header naming the
period and when the file was produced. CSV: UTF-8 with a BOM (so Excel reads Chinese), every
table one after another, and cells a spreadsheet would run as a formula prefixed with `'`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from workflow.reports import CHINA

CSV_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


Names = Callable[[str, str | None], str]


@dataclass(frozen=True)
class Column:
    key: str
    zh: str
    en: str
    kind: str = "text"  # text | int | money | hours | time | flow | state

    def title(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh


@dataclass(frozen=True)
class Table:
    key: str
    zh: str
    en: str
    columns: tuple[Column, ...]
    rows: list[dict[str, Any]]

    def title(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh

    def values(self, names: Names | None = None) -> list[list[Any]]:
        """Each row's cells in column order, as numbers where the column holds numbers; flows
        and states by their names in `names` (the titles in the reader's language)."""
        out = []
        for row in self.rows:
            cells = []
            for c in self.columns:
                value = row.get(c.key)
                if names is not None and value is not None and c.kind in ("flow", "state"):
                    value = names(row["flow"], value if c.kind == "state" else None)
                cells.append(cell(value, c.kind))
            out.append(cells)
        return out


def cell(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "hours":
        return (Decimal(value) / 3600).quantize(Decimal("0.1"))
    if kind == "money":
        return Decimal(value).quantize(Decimal("0.01"))
    if kind == "time" and isinstance(value, dt.datetime):
        return value.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")
    return value


C = Column
SUMMARY_COLUMNS = {
    "totals": (
        C("figure", "指标", "Figure"),
        C("count", "单据数", "Documents", "int"),
        C("amount", "金额（元）", "Amount (CNY)", "money"),
    ),
    "by_month": (
        C("month", "月份", "Month"),
        C("created", "新建", "Created", "int"),
        C("created_amount", "新建金额（元）", "Created amount (CNY)", "money"),
        C("completed", "完成", "Completed", "int"),
        C("completed_amount", "完成金额（元）", "Completed amount (CNY)", "money"),
    ),
    "by_flow": (
        C("flow", "流程", "Flow", "flow"),
        C("created", "新建", "Created", "int"),
        C("completed", "完成", "Completed", "int"),
        C("rejected", "被驳回", "Rejected", "int"),
        C("withdrawn", "撤回/作废", "Withdrawn", "int"),
        C("open", "期末未结", "Open at end", "int"),
        C("created_amount", "新建金额（元）", "Created amount (CNY)", "money"),
    ),
    "steps": (
        C("flow", "流程", "Flow", "flow"),
        C("state", "复核环节", "Review step", "state"),
        C("passes", "次数", "Passes", "int"),
        C("documents", "单据数", "Documents", "int"),
        C("avg_seconds", "平均（小时）", "Average (hours)", "hours"),
        C("median_seconds", "中位数（小时）", "Median (hours)", "hours"),
        C("max_seconds", "最长（小时）", "Slowest (hours)", "hours"),
    ),
    "rejections_by_reason": (
        C("reason", "驳回原因", "Reason"),
        C("rejections", "驳回次数", "Rejections", "int"),
        C("documents", "单据数", "Documents", "int"),
    ),
    "rejections_by_step": (
        C("flow", "流程", "Flow", "flow"),
        C("state", "复核环节", "Review step", "state"),
        C("rejections", "驳回次数", "Rejections", "int"),
        C("documents", "单据数", "Documents", "int"),
    ),
    "approvals_by_reviewer": (
        C("reviewer", "复核人", "Reviewer"),
        C("approvals", "同意次数", "Approvals", "int"),
        C("documents", "单据数", "Documents", "int"),
    ),
    "open_deposits": (
        C("document_id", "单据", "Document", "int"),
        C("agency", "招标代理机构", "Agency"),
        C("amount", "金额（元）", "Amount (CNY)", "money"),
        C("paid_on", "付款日期", "Paid on"),
        C("age_days", "已付天数", "Age (days)", "int"),
        C("due_date", "预计退还", "Due back"),
    ),
}
SUMMARY_TITLES = {
    "totals": ("汇总", "Totals"),
    "by_month": ("按月", "By month"),
    "by_flow": ("按流程", "By flow"),
    "steps": ("复核用时（日历时间）", "Time per review step (calendar time)"),
    "rejections_by_reason": ("驳回原因", "Rejections by reason"),
    "rejections_by_step": ("各环节驳回", "Rejections by step"),
    "approvals_by_reviewer": ("复核人同意数", "Approvals per reviewer"),
    "open_deposits": ("未退投标保证金", "Open tender deposits"),
}
TOTAL_FIGURES = (
    ("created", "新建", "Created"),
    ("completed", "完成", "Completed"),
    ("rejected", "被驳回", "Rejected"),
    ("withdrawn", "撤回/作废", "Withdrawn"),
    ("open", "期末未结", "Open at period end"),
)
CONTRACT_COLUMNS = (
    C("contract_no", "合同/订单号", "Contract / order no."),
    C("customer", "客户", "Customer"),
    C("sales_rep", "业务员", "Sales rep"),
    C("contract_amount", "合同金额（元）", "Contract amount (CNY)", "money"),
    C("shipped", "已发货（元）", "Shipped (CNY)", "money"),
    C("invoiced", "已开票（元）", "Invoiced (CNY)", "money"),
    C("paid", "已收款（元）", "Payment confirmed (CNY)", "money"),
    C("outstanding", "未收款（元）", "Outstanding (CNY)", "money"),
    C("last_activity", "最近办理", "Last activity", "time"),
)


def summary_tables(summary: dict[str, Any]) -> list[Table]:
    """The overview as tables, in page order."""
    totals = summary["totals"]
    total_rows = [
        {
            "figure": zh + " / " + en,
            "key": key,
            "count": totals[key],
            "amount": totals.get(f"{key}_amount"),
        }
        for key, zh, en in TOTAL_FIGURES
    ]
    tables = [Table("totals", *SUMMARY_TITLES["totals"], SUMMARY_COLUMNS["totals"], total_rows)]
    for key in (
        "by_month",
        "by_flow",
        "steps",
        "rejections_by_reason",
        "rejections_by_step",
        "approvals_by_reviewer",
        "open_deposits",
    ):
        if key == "by_flow" and summary["flow"]:
            continue
        tables.append(Table(key, *SUMMARY_TITLES[key], SUMMARY_COLUMNS[key], summary[key]))
    return tables


def contract_tables(report: dict[str, Any]) -> list[Table]:
    """The contract list and its totals line."""
    rows = list(report["contracts"])
    totals = {"contract_no": "合计 / Total", **report["totals"]}
    return [
        Table("contracts", "合同履行一览表", "Contract list", CONTRACT_COLUMNS, [*rows, totals])
    ]


def header_lines(report: dict[str, Any], title: str) -> list[str]:
    period = report["period"]
    produced = report["produced_at"].astimezone(CHINA).strftime("%Y-%m-%d %H:%M")
    lines = [title, f"期间 Period: {period['label']} ({period['start']} – {period['end']})"]
    if report.get("flow"):
        lines.append(f"流程 Flow: {report['flow']}")
    for key, value in (report.get("filters") or {}).items():
        lines.append(f"{key}: {value}")
    lines.append(f"生成时间 Produced: {produced} (UTC+8)")
    return lines


def to_xlsx(
    tables: list[Table], header: list[str], lang: str = "zh", names: Names | None = None
) -> bytes:
    """One sheet per table; header lines, then the column titles, then the rows."""
    import xlsxwriter

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "strings_to_formulas": False})
    bold = book.add_format({"bold": True})
    formats = {
        "money": book.add_format({"num_format": "#,##0.00"}),
        "hours": book.add_format({"num_format": "0.0"}),
        "int": book.add_format({"num_format": "0"}),
    }
    for table in tables:
        sheet = book.add_worksheet(table.title(lang)[:31].replace("/", "_"))
        for r, line in enumerate(header):
            sheet.write_string(r, 0, line, bold if r == 0 else None)
        top = len(header) + 1
        for c, column in enumerate(table.columns):
            sheet.write_string(top, c, column.title(lang), bold)
            sheet.set_column(c, c, 14 if column.kind != "text" else 24)
        for r, values in enumerate(table.values(names), start=top + 1):
            for c, (column, value) in enumerate(zip(table.columns, values, strict=True)):
                if value is None:
                    sheet.write_blank(r, c, None)
                elif column.kind in formats and not isinstance(value, str):
                    sheet.write_number(r, c, value, formats[column.kind])  # Decimal as is
                else:
                    sheet.write_string(r, c, str(value))
    book.close()
    return buffer.getvalue()


def csv_cell(value: Any) -> str:
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(value)  # a number, never a formula (a minus sign stays a minus sign)
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(CSV_DANGEROUS) else text


def to_csv(
    tables: list[Table], header: list[str], lang: str = "zh", names: Names | None = None
) -> bytes:
    """Every table one after another (title line, column titles, rows), UTF-8 with a BOM."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for line in header:
        writer.writerow([csv_cell(line)])
    for table in tables:
        writer.writerow([])
        writer.writerow([csv_cell(table.title(lang))])
        writer.writerow([csv_cell(c.title(lang)) for c in table.columns])
        for values in table.values(names):
            writer.writerow([csv_cell(v) for v in values])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")
