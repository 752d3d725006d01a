"""`GET /api/v1/documents`: every document the caller may see, with the task list's filters."""

from __future__ import annotations

from marshmallow import fields, validate

from webui.api import schemas as s
from webui.api.views import DocumentView, dump, me, operation, query_args
from webui.extensions import db
from workflow import tasklist

_TEXT = {"metadata": {"pattern": s.NO_CONTROL_PATTERN}}


class DocumentListQuerySchema(s.PageQuerySchema):
    part = fields.String(
        validate=validate.OneOf(tasklist.PARTS),
        load_default="all",
        metadata={
            "description": "all: everything you may see; waiting: your tasks now; acted: "
            "documents you acted on (已办); created: documents you created (我的单据)."
        },
    )
    flow = fields.String(validate=[validate.Length(1, 40), s.no_control], **_TEXT)
    state = fields.String(validate=[validate.Length(1, 40), s.no_control], **_TEXT)
    created_by = fields.String(
        validate=[validate.Length(1, 64), s.no_control],
        metadata={"description": "The creator's username.", "pattern": s.NO_CONTROL_PATTERN},
    )
    q = fields.String(
        validate=[validate.Length(1, tasklist.MAX_TEXT), s.no_control],
        metadata={
            "description": "Number (FH-2026-000123, or its last digits), customer/title or "
            "order number.",
            "pattern": s.NO_CONTROL_PATTERN,
        },
    )
    since = s.Moment(metadata={"description": "Created from this date or time (inclusive)."})
    until = s.Moment(
        end=True,
        metadata={"description": "Created before this time; a date includes the whole day."},
    )
    min = fields.Decimal(
        places=None, allow_nan=False, as_string=True, metadata={"description": "Amount from."}
    )
    max = fields.Decimal(
        places=None, allow_nan=False, as_string=True, metadata={"description": "Amount up to."}
    )
    sort = fields.String(
        validate=validate.OneOf(tasklist.SORTS),
        load_default="waiting",
        metadata={
            "description": "waiting: longest waiting first; newest: newest first; "
            "amount: largest amount first; due: soonest deadline first (none last)."
        },
    )


class DocumentListSchema(s.DocumentPageSchema):
    total = fields.Integer(
        required=True,
        metadata={
            "description": "How many documents match, on all pages: exact when `total_exact`, "
            "else more than 1,000 (given as 1,001; lists stop counting there)."
        },
    )
    total_exact = fields.Boolean(required=True)


@operation(
    "/documents",
    "GET",
    "Documents you may see",
    DocumentListSchema,
    query=DocumentListQuerySchema,
    errors=(422,),
)
def documents():
    """Every document the caller may see (creator, a seeing role of its flow, or acted on it),
    filtered; the same list as the inbox's views."""
    args = query_args(DocumentListQuerySchema)
    filters = tasklist.Filters(
        part=args["part"],
        flow=args.get("flow"),
        state=args.get("state"),
        created_by=args.get("created_by"),
        since=args.get("since"),
        until=args.get("until"),
        q=args.get("q"),
        amount_min=args.get("min"),
        amount_max=args.get("max"),
        sort=args["sort"],
    )
    user = me()
    page = tasklist.documents(db.session, user, filters, args.get("limit"), args.get("cursor"))
    body = {"items": [DocumentView(p, user) for p in page.items], "next": page.next}
    return dump(DocumentListSchema, {**body, "total": page.total, "total_exact": page.total_exact})
