"""Report pages: parse the filters, one engine call, render (or send the XLSX/CSV file)."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, render_template, request
from flask_login import current_user, login_required

from webui.api.report_views import file_response
from webui.extensions import db
from webui.i18n import lang
from webui.reports import bp
from webui.reports import presenters as p
from workflow import report_export, report_index, reports
from workflow.report_export import Names

MAX_PARAM = 200
FIGURE_PARAMS = ("state", "reason", "reviewer", "contract", "kind", "customer", "sales_rep")
FILE_FORMATS = ("xlsx", "csv")


@bp.before_request
@login_required
def _managers_only() -> None:
    """Signed in, and a sales manager, general manager or auditor (403 for anyone else)."""
    reports.require_viewer(current_user.row)


@bp.app_context_processor
def _nav() -> dict[str, Any]:
    def may_view_reports() -> bool:
        return bool(current_user.is_authenticated) and reports.may_view(current_user.row)

    return {"may_view_reports": may_view_reports}


def _arg(name: str) -> str | None:
    value = request.args.get(name)
    if value is None:
        return None
    if len(value) > MAX_PARAM or any(ord(ch) < 32 for ch in value):
        abort(400)
    return value


def _names() -> Names:
    return reports.names(db.session, lang())


def _scope(default_year: bool = False) -> reports.Scope:
    period = _arg("period") or None
    if period is None and default_year:
        period = str(reports.parse_period("").start.year)
    flow = _arg("flow") or None
    params = {k: v for k in FIGURE_PARAMS if (v := _arg(k)) is not None}
    return reports.Scope(reports.parse_period(period), flow, params)


def _send(fmt: str | None, tables: list[Any], header: list[str], name: str) -> Response | None:
    if fmt in FILE_FORMATS:
        return file_response(tables, header, fmt, name, _names())
    return None


@bp.get("/")
def overview():
    scope = _scope()
    summary = reports.summary(db.session, scope)
    tables = report_export.summary_tables(summary)
    header = report_export.header_lines(summary, "统计表 Statistics")
    sent = _send(_arg("format"), tables, header, f"summary-{scope.period.label}")
    if sent is not None:
        return sent
    names = _names()
    return render_template(
        "reports/overview.html",
        scope=scope,
        summary=summary,
        tables={t.key: t for t in p.page_tables(tables, p.summary_links(scope), names)},
        charts=p.overview_charts(summary, scope, names),
        flows=reports.flows_seen(db.session),
        names=names,
    )


@bp.get("/charts/<any(months, amounts, flows, steps, reasons):name>.svg")
def chart(name: str):
    scope = _scope()
    charts = p.overview_charts(reports.summary(db.session, scope), scope, _names())
    if name not in charts:
        abort(404)
    svg = '<?xml version="1.0" encoding="UTF-8"?>\n' + str(charts[name])
    return Response(svg, mimetype="image/svg+xml")


@bp.get("/contracts")
def contracts():
    scope = _scope(default_year=True)
    report = reports.contracts(db.session, scope)
    tables = report_export.contract_tables(report)
    header = report_export.header_lines(report, "合同履行一览表 Contract list")
    sent = _send(_arg("format"), tables, header, f"contracts-{scope.period.label}")
    if sent is not None:
        return sent
    return render_template(
        "reports/contracts.html",
        scope=scope,
        report=report,
        table=p.page_tables(tables, p.contract_links(scope), _names())[0],
        sales_reps=reports.sales_reps(db.session),
    )


@bp.get("/documents")
def documents():
    scope = _scope()
    figure = _arg("figure") or "created"
    rows, total, amount = reports.figure_documents(db.session, scope, figure)
    return render_template(
        "reports/documents.html",
        scope=scope,
        figure=figure,
        rows=rows,
        total=total,
        amount=amount,
        names=_names(),
        yuan=reports.money,
    )


@bp.cli.command("rebuild")
def rebuild_command() -> None:
    """Refill the report tables from the audit log (after upgrading an existing database)."""
    count = report_index.rebuild(db.session)
    print(f"report rows rebuilt for {count} documents")
