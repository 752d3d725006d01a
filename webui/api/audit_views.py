"""The auditors' API: history search and exports, chain verification, the SoD report.

Registered on the same blueprint and operation registry as views.py (so the OpenAPI document
lists them); kept apart so the auditors' surface evolves without touching the reviewers'.
"""

from __future__ import annotations

from flask import request
from marshmallow import fields

from webui.api import schemas as s
from webui.api.views import dump, me, operation
from webui.audit.exports import export_response
from webui.audit.forms import FilterSchema, PeriodSchema, filters_of, parse
from webui.extensions import db
from workflow import audit as audit_log
from workflow import audit_reports


class AuditEventSchema(s.EventSchema):
    actor_name = fields.String(required=True, metadata={"description": "The person's name."})
    data_hash = fields.String(
        attribute="event.data_hash",
        allow_none=True,
        required=True,
        metadata={"description": "SHA-256 of the revision data the event acted on."},
    )
    key_id = fields.String(
        attribute="event.key_id", allow_none=True, required=True,
        metadata={"description": "The audit key that sealed the event."},
    )  # fmt: skip
    customer = fields.String(required=True)
    amount = s.Exact(allow_none=True, required=True)


class AuditPageSchema(s.OutputSchema):
    items = fields.List(fields.Nested(AuditEventSchema), required=True)
    next = fields.String(allow_none=True, required=True)


class ProblemSchema(s.OutputSchema):
    seq = fields.Integer(allow_none=True, required=True)
    document_id = fields.Integer(allow_none=True, required=True)
    problem = fields.String(required=True)


class VerifySchema(s.OutputSchema):
    ok = fields.Boolean(required=True)
    events = fields.Integer(required=True, metadata={"description": "Events checked."})
    first_bad = fields.Nested(ProblemSchema, allow_none=True, required=True)
    problems = fields.List(fields.Nested(ProblemSchema), required=True)
    root = fields.String(required=True, metadata={"description": "The sealed chain head."})


class DutyRowSchema(s.OutputSchema):
    document_id = fields.Integer(required=True)
    flow = fields.String(required=True)
    state = s.Localized(allow_none=True, required=True)
    created_by = fields.String(required=True)
    editors = fields.List(fields.String(), required=True)
    submitters = fields.List(fields.String(), required=True)
    approvals = fields.Method("_approvals", required=True)
    overlaps = fields.List(s.Localized(), required=True)

    def _approvals(self, row: audit_reports.DutyRow) -> list[dict]:
        from webui.i18n import lang

        return [
            {"state": state.get(lang()) if state else None, "by": who, "revision": rev}
            for state, who, rev in row.approvals
        ]


class SodSchema(s.OutputSchema):
    flow = fields.String(allow_none=True, required=True)
    documents = fields.Integer(required=True)
    overlaps = fields.Integer(required=True)
    truncated = fields.Boolean(required=True)
    rows = fields.List(fields.Nested(DutyRowSchema), required=True)
    approvals_per_person = fields.List(fields.Dict(), required=True)
    refused_self_reviews = fields.List(fields.Nested(AuditEventSchema), required=True)


@operation(
    "/audit",
    "GET",
    "Search the audit log",
    AuditPageSchema,
    query=FilterSchema,
    errors=(403, 422),
    extra_content={
        "text/csv": {"schema": {"type": "string"}},
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
            "schema": {"type": "string", "format": "binary"}
        },
    },
)
def audit():
    """`auditor` only. Events oldest first, filtered by flow, document, actor (login or part of
    a name), action, state, outcome (ok/refused) and time; `?format=csv|xlsx` exports every
    matching event, streamed (CSV: UTF-8 with BOM, formula-safe; headers in the caller's
    language), with the chain's anchor in `X-Audit-Anchor-Root` / `X-Audit-Anchor-Seq`."""
    args = parse(request.args)
    user = me()
    filters = filters_of(args)
    if args["format"] in ("csv", "xlsx"):
        audit_reports.require_auditor(user)
        anchor = audit_log.anchor(db.session)
        rows = lambda: audit_reports.stream(db.session, user, filters)  # noqa: E731
        return export_response(args["format"], rows, anchor)
    page = audit_reports.search(db.session, user, filters, args.get("limit"), args.get("cursor"))
    return dump(AuditPageSchema, page)


@operation("/audit/verify", "GET", "Verify the audit chain", VerifySchema, errors=(403,))
def audit_verify():
    """`auditor` only. Replays every chain and document in one snapshot: `ok`, the number of
    events checked, the first problem (`first_bad`) and every problem found."""
    audit_reports.require_auditor(me())
    result = audit_log.verify(db.session)
    body = {
        "ok": result.ok,
        "events": result.events,
        "first_bad": result.first_bad,
        "problems": [p.as_dict() for p in result.problems],
        "root": result.root,
    }
    return dump(VerifySchema, body)


@operation(
    "/audit/sod",
    "GET",
    "Segregation-of-duties report",
    SodSchema,
    query=PeriodSchema,
    errors=(403, 422),
)
def audit_sod():
    """`auditor` only. Documents of `flow` created in [`since`, `until`): who created, edited,
    submitted and approved each; overlaps flagged; approvals per person; refused self-reviews."""
    args = PeriodSchema().load(request.args.to_dict())
    report = audit_reports.sod_report(db.session, me(), **args)
    body = {
        "flow": report.flow,
        "documents": len(report.rows),
        "overlaps": report.overlaps,
        "truncated": report.truncated,
        "rows": report.rows,
        "approvals_per_person": [
            {"name": who, "approvals": n} for who, n in report.approvals_per_person
        ],
        "refused_self_reviews": report.refused_self_reviews,
    }
    return dump(SodSchema, body)
