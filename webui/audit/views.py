"""Auditors' pages: parse, one engine call, render. Read-only: the only POST runs `verify`."""

from __future__ import annotations

from flask import render_template, request
from flask_login import current_user, login_required
from marshmallow import ValidationError

from webui.audit import bp
from webui.audit.exports import export_response
from webui.audit.forms import PageFilterSchema, PeriodSchema, filters_of, parse
from webui.extensions import db
from workflow import audit, audit_reports
from workflow.services import list_flows


@bp.before_request
@login_required
def _auditors_only() -> None:
    """Signed in, active, and an auditor (checked on every request); everyone else: 403."""
    audit_reports.require_auditor(current_user.row)


def _search_page(template: str, preset: dict[str, str] | None = None):
    args = {**request.args.to_dict(), **(preset or {})}
    problems: dict = {}
    try:
        values = parse(args, PageFilterSchema)
    except ValidationError as exc:
        values, problems = {}, exc.messages
    page = None
    if not problems:
        page = audit_reports.search(
            db.session,
            current_user.row,
            filters_of(values),
            values.get("limit", 50),
            values.get("cursor"),
            newest_first=True,
        )
    return render_template(
        template,
        page=page,
        problems=problems,
        args={k: v for k, v in request.args.items() if k not in ("cursor", "format")},
        flows=list_flows(db.session),
    )


@bp.get("/")
def history():
    """History search, newest first; every row links to its document's timeline."""
    return _search_page("audit/history.html")


@bp.get("/security")
def security():
    """Refused actions (and any other refused event, e.g. sign-ins), filterable."""
    return _search_page("audit/security.html", {"outcome": "refused"})


@bp.get("/export.<any(csv, xlsx):fmt>")
def export(fmt: str):
    """The filtered history, every matching row, as CSV or XLSX (streamed)."""
    values = parse(request.args, PageFilterSchema)
    user = current_user.row
    filters = filters_of(values)
    anchor = audit.anchor(db.session)
    return export_response(fmt, lambda: audit_reports.stream(db.session, user, filters), anchor)


@bp.get("/documents/<int(min=1, max=2147483647):doc_id>")
def timeline(doc_id: int):
    """Every event of one document, the revision each approval was given to, and the diffs."""
    return render_template(
        "audit/timeline.html", tl=audit_reports.timeline(db.session, current_user.row, doc_id)
    )


@bp.get("/sod")
def sod():
    """Segregation of duties per flow and period."""
    problems: dict = {}
    try:
        values = PeriodSchema().load({k: v for k, v in request.args.items() if v.strip()})
    except ValidationError as exc:
        values, problems = {}, exc.messages
    report = None
    if not problems:
        report = audit_reports.sod_report(db.session, current_user.row, **values)
    return render_template(
        "audit/sod.html",
        report=report,
        problems=problems,
        args=request.args,
        flows=list_flows(db.session),
    )


@bp.get("/verify")
def verify_page():
    return render_template("audit/verify.html", result=None)


@bp.post("/verify")
def verify():
    """Check the whole chain now (POST: it reads everything; CSRF-protected like every form)."""
    return render_template("audit/verify.html", result=audit.verify(db.session))
