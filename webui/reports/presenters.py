"""What the report pages print: the export tables with a link on every figure, and charts.

The page shows exactly the rows of `workflow.report_export` (the same rows the XLSX and CSV
files hold); this module only adds where each figure links and how a number is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flask import url_for

from webui.i18n import lang, t
from webui.reports.charts import Bar, bar_chart
from workflow.report_export import Names, Table
from workflow.reports import Scope

Link = Callable[[dict[str, Any], str], str | None]


@dataclass(frozen=True)
class Cell:
    text: str
    href: str | None
    number: bool
    figure: bool = False  # the link lists the documents behind this number


@dataclass(frozen=True)
class PageTable:
    key: str
    title: str
    headers: list[tuple[str, bool]]
    rows: list[list[Cell]]


def fmt(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "money":
        return f"{Decimal(value):,.2f}"
    if kind == "hours":
        return f"{Decimal(value):.1f}"
    return str(value)


def figure_url(scope: Scope, figure: str, **params: Any) -> str:
    args = {"figure": figure, "period": scope.period.label}
    if scope.flow:
        args["flow"] = scope.flow
    args.update({k: v for k, v in params.items() if v is not None})
    return url_for("reports.documents", **args)


def summary_links(scope: Scope) -> dict[str, Link]:
    """Per table: (row, column) → the documents list behind that figure, or None."""

    def totals(row: dict[str, Any], column: str) -> str | None:
        return figure_url(scope, row["key"]) if column == "count" else None

    def by_month(row: dict[str, Any], column: str) -> str | None:
        if column not in ("created", "completed"):
            return None
        month = next(m for m in scope.period.months() if m.label == row["month"])
        return figure_url(Scope(month, scope.flow), column)

    def by_flow(row: dict[str, Any], column: str) -> str | None:
        if column in ("created", "completed", "rejected", "withdrawn", "open"):
            return figure_url(Scope(scope.period, row["flow"]), column)
        return None

    def steps(row: dict[str, Any], column: str) -> str | None:
        if column != "documents":
            return None
        return figure_url(Scope(scope.period, row["flow"]), "step", state=row["state"])

    def by_reason(row: dict[str, Any], column: str) -> str | None:
        return (
            figure_url(scope, "rejected", reason=row["reason"]) if column == "documents" else None
        )

    def by_step(row: dict[str, Any], column: str) -> str | None:
        if column != "documents":
            return None
        return figure_url(Scope(scope.period, row["flow"]), "rejected", state=row["state"])

    def by_reviewer(row: dict[str, Any], column: str) -> str | None:
        if column != "documents":
            return None
        return figure_url(scope, "approved_by", reviewer=row["reviewer"])

    def deposits(row: dict[str, Any], column: str) -> str | None:
        if column != "document_id":
            return None
        return url_for("inbox.document", doc_id=row["document_id"])

    return {
        "totals": totals,
        "by_month": by_month,
        "by_flow": by_flow,
        "steps": steps,
        "rejections_by_reason": by_reason,
        "rejections_by_step": by_step,
        "approvals_by_reviewer": by_reviewer,
        "open_deposits": deposits,
    }


KIND_OF = {"contract_no": "all", "shipped": "shipped", "invoiced": "invoiced", "paid": "paid"}


def contract_links(scope: Scope) -> dict[str, Link]:
    def contracts(row: dict[str, Any], column: str) -> str | None:
        if column not in KIND_OF:
            return None
        # The totals line (it has no last activity) links to every contract in the list.
        contract = row["contract_no"] if "last_activity" in row else None
        return figure_url(
            scope, "contract", contract=contract, kind=KIND_OF[column], **scope.params
        )

    return {"contracts": contracts}


def page_tables(tables: list[Table], links: dict[str, Link], names: Names) -> list[PageTable]:
    language = lang()
    listing = url_for("reports.documents")
    out = []
    for table in tables:
        link = links.get(table.key)
        rows = []
        for row, values in zip(table.rows, table.values(names), strict=True):
            cells = []
            for column, value in zip(table.columns, values, strict=True):
                href = link(row, column.key) if link else None
                numeric = column.kind in ("int", "money", "hours")
                figure = bool(href and href.startswith(listing))
                cells.append(Cell(fmt(value, column.kind), href, numeric, figure))
            rows.append(cells)
        headers = [(c.title(language), c.kind in ("int", "money", "hours")) for c in table.columns]
        out.append(PageTable(table.key, table.title(language), headers, rows))
    return out


def overview_charts(summary: dict[str, Any], scope: Scope, names: Names) -> dict[str, Any]:
    """The overview's charts, each beside the table with the same numbers."""
    links = summary_links(scope)
    out: dict[str, Any] = {}
    if len(summary["by_month"]) > 1:
        out["months"] = bar_chart(
            "months",
            t("每月新建单据数", "Documents created per month"),
            [
                Bar(m["month"], m["created"], str(m["created"]), links["by_month"](m, "created"))
                for m in summary["by_month"]
            ],
        )
        out["amounts"] = bar_chart(
            "amounts",
            t("每月新建金额（元）", "Amount created per month (CNY)"),
            [
                Bar(m["month"], m["created_amount"], fmt(m["created_amount"], "money"))
                for m in summary["by_month"]
            ],
            series=1,
        )
    elif summary["by_flow"]:
        out["flows"] = bar_chart(
            "flows",
            t("各流程新建单据数", "Documents created per flow"),
            [
                Bar(names(r["flow"], None), r["created"], str(r["created"]),
                    links["by_flow"](r, "created"))
                for r in summary["by_flow"]
            ],
        )  # fmt: skip
    out["steps"] = bar_chart(
        "steps",
        t("各复核环节用时中位数（小时）", "Median hours per review step"),
        [
            Bar(
                f"{names(r['flow'], None)} · {names(r['flow'], r['state'])}",
                Decimal(r["median_seconds"]) / 3600,
                fmt(Decimal(r["median_seconds"]) / 3600, "hours") + t(" 小时", " h"),
                links["steps"](r, "documents"),
            )
            for r in summary["steps"]
        ],
    )
    out["reasons"] = bar_chart(
        "reasons",
        t("驳回原因", "Rejections by reason"),
        [
            Bar(
                r["reason"][:24] or "—",
                r["rejections"],
                str(r["rejections"]),
                links["rejections_by_reason"](r, "documents"),
            )
            for r in summary["rejections_by_reason"][:12]
        ],
        series=1,
    )
    return out
