"""The reports under /api/v1/reports: the overview of a period and the contract list.

Sales managers, general managers and auditors only (`403 forbidden` for everyone else).
`format=json` (default), `csv` (UTF-8 with BOM) or `xlsx` (one sheet per table).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import Response
from marshmallow import fields, validate

from webui.api import schemas as s
from webui.api.views import dump, me, operation, query_args
from webui.extensions import db
from webui.i18n import lang
from workflow import report_export, reports

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FILE_CONTENT = {
    "text/csv": {"schema": {"type": "string"}},
    XLSX: {"schema": {"type": "string", "format": "binary"}},
}
PERIOD_HELP = (
    "2026-11 (a month), 2026-Q4 (a quarter), 2026 (a year) or a range such as "
    "2026-01..2026-06; in China time. Default: this month (summary), this year (contracts)."
)


class DecimalText(fields.String):
    """A Decimal written exactly as text (money keeps its two places; never a float)."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else format(Decimal(value), "f")


def Money(**kwargs: Any) -> DecimalText:
    return DecimalText(metadata={"description": "CNY, two places, as text"}, **kwargs)


class ReportQuerySchema(s.InputSchema):
    period = fields.String(
        validate=[validate.Length(0, 40), s.no_control], metadata={"description": PERIOD_HELP}
    )
    format = fields.String(
        validate=validate.OneOf(["json", "csv", "xlsx"]),
        load_default="json",
        metadata={"description": "csv: UTF-8 with BOM; xlsx: one sheet per table."},
    )


class SummaryQuerySchema(ReportQuerySchema):
    flow = fields.String(
        validate=validate.Regexp(s.NAME_PATTERN), metadata={"description": "One flow only."}
    )


class ContractQuerySchema(ReportQuerySchema):
    customer = fields.String(
        validate=[validate.Length(1, 100), s.no_control],
        metadata={"description": "Contracts whose customer name contains this text."},
    )
    sales_rep = fields.String(
        validate=[validate.Length(1, 60), s.no_control],
        metadata={"description": "Contracts of this sales rep (业务员)."},
    )


class PeriodSchema(s.OutputSchema):
    label = fields.String(required=True)
    start = fields.String(required=True, metadata={"description": "First day (YYYY-MM-DD)."})
    end = fields.String(required=True, metadata={"description": "Last day (YYYY-MM-DD)."})


class TotalsSchema(s.OutputSchema):
    created = fields.Integer(required=True)
    completed = fields.Integer(required=True)
    rejected = fields.Integer(required=True)
    withdrawn = fields.Integer(required=True)
    open = fields.Integer(required=True, metadata={"description": "Open at the period's end."})
    created_amount = Money()
    completed_amount = Money()
    withdrawn_amount = Money()
    open_amount = Money()


class MonthSchema(s.OutputSchema):
    month = fields.String(required=True)
    created = fields.Integer(required=True)
    created_amount = Money()
    completed = fields.Integer(required=True)
    completed_amount = Money()


class FlowRowSchema(s.OutputSchema):
    flow = fields.String(required=True)
    created = fields.Integer()
    completed = fields.Integer()
    rejected = fields.Integer()
    withdrawn = fields.Integer()
    open = fields.Integer()
    created_amount = Money()


class StepSchema(s.OutputSchema):
    flow = fields.String(required=True)
    state = fields.String(required=True)
    passes = fields.Integer(required=True)
    documents = fields.Integer(required=True)
    avg_seconds = DecimalText()
    median_seconds = DecimalText()
    max_seconds = fields.Integer()


class ReasonSchema(s.OutputSchema):
    reason = fields.String(required=True)
    rejections = fields.Integer(required=True)
    documents = fields.Integer(required=True)


class StepRejectionSchema(s.OutputSchema):
    flow = fields.String(required=True)
    state = fields.String(required=True)
    rejections = fields.Integer(required=True)
    documents = fields.Integer(required=True)


class ReviewerSchema(s.OutputSchema):
    reviewer = fields.String(required=True)
    approvals = fields.Integer(required=True)
    documents = fields.Integer(required=True)


class DepositSchema(s.OutputSchema):
    document_id = fields.Integer(required=True)
    agency = fields.String(allow_none=True)
    state = fields.String()
    amount = Money()
    paid_on = fields.String()
    age_days = fields.Integer()
    due_date = fields.String(allow_none=True)
    overdue = fields.Boolean()


class SummarySchema(s.OutputSchema):
    period = fields.Nested(PeriodSchema, required=True)
    flow = fields.String(allow_none=True)
    produced_at = s.LocalDateTime()
    totals = fields.Nested(TotalsSchema, required=True)
    by_month = fields.List(fields.Nested(MonthSchema))
    by_flow = fields.List(fields.Nested(FlowRowSchema))
    steps = fields.List(
        fields.Nested(StepSchema),
        metadata={
            "description": "Calendar time per review step (seconds), passes left in the period."
        },
    )
    rejections_by_reason = fields.List(fields.Nested(ReasonSchema))
    rejections_by_step = fields.List(fields.Nested(StepRejectionSchema))
    approvals_by_reviewer = fields.List(fields.Nested(ReviewerSchema))
    open_deposits = fields.List(fields.Nested(DepositSchema))


class ContractSchema(s.OutputSchema):
    contract_no = fields.String(required=True)
    customer = fields.String(allow_none=True)
    sales_rep = fields.String(allow_none=True)
    contract_amount = Money(allow_none=True)
    shipped = Money()
    invoiced = Money()
    paid = Money()
    outstanding = Money()
    to_ship = Money(allow_none=True)
    last_activity = s.LocalDateTime()
    documents = fields.Integer()


class ContractTotalsSchema(s.OutputSchema):
    contract_amount = Money()
    shipped = Money()
    invoiced = Money()
    paid = Money()
    outstanding = Money()
    documents = fields.Integer()


class ContractListSchema(s.OutputSchema):
    period = fields.Nested(PeriodSchema, required=True)
    filters = fields.Dict(keys=fields.String(), values=fields.String())
    produced_at = s.LocalDateTime()
    contracts = fields.List(fields.Nested(ContractSchema), required=True)
    totals = fields.Nested(ContractTotalsSchema, required=True)


def file_response(
    tables: list[Any], header: list[str], fmt: str, name: str, names: Any = None
) -> Response:
    """The tables as an XLSX or CSV download, in the reader's language."""
    language = lang()
    if fmt == "xlsx":
        body, mimetype = report_export.to_xlsx(tables, header, language, names), XLSX
    else:
        body = report_export.to_csv(tables, header, language, names)
        mimetype = "text/csv; charset=utf-8"
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response


@operation(
    "/reports/summary",
    "GET",
    "Statistics of a period (统计表)",
    SummarySchema,
    query=SummaryQuerySchema,
    errors=(403, 422),
    extra_content=FILE_CONTENT,
)
def report_summary():
    """Sales managers, general managers and auditors: documents created, completed, rejected,
    withdrawn and open; amounts; time per review step; rejections by reason and step;
    approvals per reviewer; open tender deposits."""
    reports.require_viewer(me())
    args = query_args(SummaryQuerySchema)
    scope = reports.Scope(reports.parse_period(args.get("period")), args.get("flow"))
    summary = reports.summary(db.session, scope)
    db.session.rollback()
    if args["format"] != "json":
        tables = report_export.summary_tables(summary)
        header = report_export.header_lines(summary, "统计表 Statistics")
        name = f"summary-{scope.period.label}"
        names = reports.names(db.session, lang())
        return file_response(tables, header, args["format"], name, names)
    return dump(SummarySchema, summary)


@operation(
    "/reports/contracts",
    "GET",
    "The contract list (合同履行一览表)",
    ContractListSchema,
    query=ContractQuerySchema,
    errors=(403, 422),
    extra_content=FILE_CONTENT,
)
def report_contracts():
    """Sales managers, general managers and auditors: one line per contract (order number) with
    customer, contract amount where known, shipped, invoiced, payment confirmed, outstanding
    and last activity; with totals."""
    reports.require_viewer(me())
    args = query_args(ContractQuerySchema)
    period = args.get("period") or f"{reports.parse_period('').start.year}"
    params = {k: args[k] for k in ("customer", "sales_rep") if args.get(k)}
    scope = reports.Scope(reports.parse_period(period), params=params)
    report = reports.contracts(db.session, scope)
    db.session.rollback()
    if args["format"] != "json":
        tables = report_export.contract_tables(report)
        header = report_export.header_lines(report, "合同履行一览表 Contract list")
        return file_response(tables, header, args["format"], f"contracts-{scope.period.label}")
    return dump(ContractListSchema, report)
