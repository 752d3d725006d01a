"""Marshmallow schemas of every request and response body of the API (and of the OpenAPI
document, which apispec generates from them).

Input schemas refuse unknown fields (`unknown=RAISE`): a `state` or `approved_by` in a body is a
422, never applied. Sizes are capped here, before the engine parses anything. Output schemas
dump engine objects (or the small views in webui/api/views.py); times are ISO 8601 in the
configured display zone, money stays the decimal text the engine stores.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate

from webui.i18n import lang
from workflow.db import as_utc

MAX_DATA_KEYS = 100  # fields in one document's data (and columns in one table row)
MAX_LIST_ITEMS = 200  # rows in one table field
MAX_DATA_DEPTH = 3  # data → table → row → value
MAX_ID = 2**31 - 1
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
NO_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# The same rule for the OpenAPI document: control characters other than tab, LF and CR refused.
NO_CONTROL_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f]*$"


def no_control(value: str) -> None:
    if NO_CONTROL.search(value):
        raise ValidationError("contains control characters")


# --- custom fields -------------------------------------------------------------------------------
class LocalDateTime(fields.DateTime):
    """A stored (UTC) time written in the display zone, e.g. 2026-11-24T09:30:00+08:00."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        zone = ZoneInfo(current_app.config.get("DISPLAY_TIMEZONE", "Asia/Shanghai"))
        return as_utc(value).astimezone(zone).isoformat(timespec="seconds")


class Localized(fields.String):
    """A definition Label written in the caller's language (zh or en)."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        return value.get(lang()) if hasattr(value, "get") else str(value)


class Exact(fields.String):
    """A number from a definition (min, max) written exactly, as text."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else str(value)


class Moment(fields.String):
    """`since`/`until`: a date (YYYY-MM-DD) or an ISO 8601 date-time; without a zone the
    display zone is meant. A date as `until` includes that whole day. Loads as aware UTC."""

    def __init__(self, *, end: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.end = end

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.datetime:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        zone = ZoneInfo(current_app.config.get("DISPLAY_TIMEZONE", "Asia/Shanghai"))
        try:
            if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
                day = dt.date.fromisoformat(text) + dt.timedelta(days=1 if self.end else 0)
                moment = dt.datetime.combine(day, dt.time(), tzinfo=zone)
            elif re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.]+(Z|[+-][0-9:]+)?", text):
                moment = dt.datetime.fromisoformat(text)
                moment = moment if moment.tzinfo else moment.replace(tzinfo=zone)
            else:
                raise ValueError(text)
            return moment.astimezone(dt.UTC)
        except (ValueError, OverflowError) as exc:
            raise ValidationError(
                "must be a date (2026-11-24) or a date-time (2026-11-24T09:30:00+08:00)"
            ) from exc


class DocumentData(fields.Dict):
    """Document data: an object of field values, its size capped before the engine parses it."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict:
        if not isinstance(value, Mapping):
            raise ValidationError("must be an object of field values")
        _check_size(value, 1)
        return dict(value)


def _check_size(value: Any, depth: int) -> None:
    if isinstance(value, Mapping):
        if len(value) > MAX_DATA_KEYS:
            raise ValidationError(f"an object may have at most {MAX_DATA_KEYS} keys")
        if any(not isinstance(k, str) or len(k) > 64 for k in value):
            raise ValidationError("keys must be field names of at most 64 characters")
        children = list(value.values())
    elif isinstance(value, list):
        if len(value) > MAX_LIST_ITEMS:
            raise ValidationError(f"a list may have at most {MAX_LIST_ITEMS} items")
        children = value
    else:
        return
    if depth > MAX_DATA_DEPTH and children:
        raise ValidationError("the data is nested too deeply (a table's cells are plain values)")
    for child in children:
        _check_size(child, depth + 1)


# --- requests ------------------------------------------------------------------------------------
class InputSchema(Schema):
    class Meta:
        unknown = RAISE


class DocumentCreateSchema(InputSchema):
    flow = fields.String(
        required=True,
        validate=validate.Regexp(NAME_PATTERN),
        metadata={"description": "The flow's name, e.g. shipment."},
    )
    data = DocumentData(
        required=True,
        metadata={
            "description": f"Field values (at most {MAX_DATA_KEYS} keys, tables at most "
            f'{MAX_LIST_ITEMS} rows); money as decimal text such as "12800.00".'
        },
    )


class DocumentEditSchema(InputSchema):
    data = DocumentData(required=True, metadata={"description": "The fields to change."})
    revision = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(1, MAX_ID),
        metadata={"description": "The revision you are editing."},
    )


class ActionSchema(InputSchema):
    action = fields.String(
        required=True,
        validate=validate.Regexp(NAME_PATTERN),
        metadata={"description": "approve, reject, or a flow action."},
    )
    revision = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(1, MAX_ID),
        metadata={"description": "The revision you reviewed."},
    )
    comment = fields.String(
        load_default="",
        validate=[validate.Length(max=2000), no_control],
        metadata={
            "description": "Required to reject (the reason). At most 2000 characters; control "
            "characters other than tab and line breaks are refused.",
            "pattern": NO_CONTROL_PATTERN,
        },
    )
    checks = fields.Dict(
        keys=fields.String(validate=validate.Regexp(NAME_PATTERN)),
        values=fields.Boolean(truthy={True}, falsy={False}),
        validate=validate.Length(max=50),
        metadata={
            "description": "Approving in a review with a checklist: every point confirmed, "
            '`{"qty": true, …}`; a missing point is `422 checklist_incomplete`.'
        },
    )
    failed_checks = fields.List(
        fields.String(validate=validate.Regexp(NAME_PATTERN)),
        validate=validate.Length(max=50),
        metadata={"description": "Rejecting: the checklist points that failed."},
    )


class CommentSchema(InputSchema):
    text = fields.String(
        required=True,
        validate=[validate.Length(1, 2000), no_control],
        metadata={"description": "The question or remark.", "pattern": NO_CONTROL_PATTERN},
    )


class UploadSchema(InputSchema):
    """The form fields sent along with an uploaded file (multipart/form-data)."""

    revision = fields.Integer(
        required=True,
        strict=False,
        validate=validate.Range(1, MAX_ID),
        metadata={"description": "The revision you are attaching to (as for an edit)."},
    )


class Include(fields.String):
    """`attachments,comments`: what a single document comes with, as a set."""

    NAMES = ("attachments", "comments")

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        if len(text) > 40:
            raise ValidationError("at most 40 characters")
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = sorted(set(names) - set(self.NAMES))
        if unknown:
            raise ValidationError(
                f"unknown: {', '.join(unknown)[:80]}; choose from {', '.join(self.NAMES)}"
            )
        return frozenset(names)


class DocumentQuerySchema(InputSchema):
    include = Include(
        load_default=frozenset(),
        metadata={
            "maxLength": 40,
            "description": "Comma-separated: `attachments` (the files, and `can_attach`), "
            "`comments` (questions and remarks without an action).",
            "pattern": "^(attachments|comments)(,(attachments|comments))?$",
        },
    )


class PageQuerySchema(InputSchema):
    limit = fields.Integer(validate=validate.Range(1, 200), metadata={"description": "1–200."})
    cursor = fields.String(
        validate=[validate.Length(1, 500), no_control],
        metadata={
            "description": "Opaque: only the `next` value of the previous page of the same "
            "list, with the same filters; any other value is refused with 422. 1–500 "
            "characters, no control characters.",
            "pattern": NO_CONTROL_PATTERN,
        },
    )


class AuditQuerySchema(PageQuerySchema):
    flow = fields.String(
        validate=[validate.Length(1, 40), no_control], metadata={"pattern": NO_CONTROL_PATTERN}
    )
    actor = fields.String(
        validate=[validate.Length(1, 64), no_control], metadata={"pattern": NO_CONTROL_PATTERN}
    )
    action = fields.String(
        validate=[validate.Length(1, 40), no_control], metadata={"pattern": NO_CONTROL_PATTERN}
    )
    since = Moment(metadata={"description": "From this date or time (inclusive)."})
    until = Moment(
        end=True,
        metadata={"description": "Up to this time (exclusive); a date includes the whole day."},
    )
    format = fields.String(
        validate=validate.OneOf(["json", "csv"]),
        load_default="json",
        metadata={"description": "csv: UTF-8 with BOM, for Excel."},
    )


# --- responses -----------------------------------------------------------------------------------
class OutputSchema(Schema):
    """Responses may gain fields in later versions (the contract is extended, never broken)."""

    class Meta:
        unknown = EXCLUDE


class ErrorBodySchema(OutputSchema):
    code = fields.String(required=True, metadata={"description": "A machine code."})
    message = fields.String(required=True)
    details = fields.Raw(allow_none=True)


class ErrorSchema(OutputSchema):
    error = fields.Nested(ErrorBodySchema, required=True)


class ApprovalSchema(OutputSchema):
    user = fields.String(attribute="user.username", required=True)
    name = fields.String(
        attribute="user.name",
        metadata={"description": "The approver's display name (their login when they have none)."},
    )
    at = LocalDateTime(required=True)
    comment = fields.String(required=True)
    checks = fields.Dict(
        allow_none=True,
        metadata={"description": 'The checklist as confirmed: `{"confirmed": [ids]}`.'},
    )


class ClaimSchema(OutputSchema):
    user = fields.String(attribute="user.username", required=True)
    name = fields.String(attribute="user.name", required=True)
    until = LocalDateTime(required=True)


class ChecklistItemSchema(OutputSchema):
    id = fields.String(required=True)
    label = Localized(required=True)


class ReviewStatusSchema(OutputSchema):
    required = fields.Integer(required=True)
    roles = fields.List(fields.String(), required=True)
    checklist = fields.List(
        fields.Nested(ChecklistItemSchema),
        metadata={"description": "Points an approval must confirm (`checks`), if any."},
    )
    blind = fields.Boolean(
        metadata={"description": "Others' decisions stay hidden until you have decided."}
    )
    approvals = fields.List(
        fields.Nested(ApprovalSchema),
        required=True,
        metadata={
            "description": "Approvals of the current round (in a blind review: only yours, "
            "until you have decided)."
        },
    )


class AttachmentSchema(OutputSchema):
    id = fields.Integer(required=True)
    name = fields.String(required=True, metadata={"description": "The file name as uploaded."})
    size = fields.Integer(required=True, metadata={"description": "Bytes."})
    content_type = fields.String(
        required=True,
        metadata={
            "description": "application/pdf, image/jpeg or image/png, read from the content."
        },
    )
    sha256 = fields.String(required=True, metadata={"description": "The content's SHA-256 (hex)."})
    revision = fields.Integer(
        required=True,
        metadata={
            "description": "The document revision attaching it started (right after an "
            "upload: the document's revision now, which approvals must name)."
        },
    )
    uploaded_by = fields.String(attribute="uploaded_by.username", required=True)
    at = LocalDateTime(required=True)
    url = fields.Method("_url", required=True, metadata={"description": "Where to GET the file."})

    def _url(self, row: Any) -> str:
        return f"/api/v1/documents/{row.document_id}/attachments/{row.id}"


class DocumentSchema(OutputSchema):
    id = fields.Integer(required=True)
    number = fields.String(
        allow_none=True,
        required=True,
        metadata={
            "description": "The number people say and print, e.g. FH-2026-000123: unique within "
            "the flow, never reused (null only for documents older than numbering)."
        },
    )
    flow = fields.String(required=True)
    flow_version = fields.Integer(required=True)
    state = fields.String(required=True)
    state_label = Localized(required=True)
    revision = fields.Integer(required=True)
    data = fields.Dict(required=True, metadata={"description": "Money as decimal text."})
    created_by = fields.String(required=True)
    created_by_name = fields.String(
        metadata={"description": "The creator's display name (their login when they have none)."}
    )
    created_at = LocalDateTime(required=True)
    claim = fields.Nested(
        ClaimSchema,
        allow_none=True,
        metadata={"description": 'Who said "I am on it" (a soft, expiring claim), or null.'},
    )
    review = fields.Nested(
        ReviewStatusSchema,
        allow_none=True,
        required=True,
        metadata={"description": "null outside review states."},
    )
    actions = fields.List(
        fields.String(), required=True, metadata={"description": "What the caller may do now."}
    )
    can_edit = fields.Boolean(required=True)
    can_attach = fields.Boolean(
        metadata={"description": "Whether the caller may attach a file now (with `attachments`)."}
    )
    overdue = fields.Boolean(required=True)
    attachments = fields.List(
        fields.Nested(AttachmentSchema),
        metadata={
            "description": "The attached files, oldest first. Present when asked for: "
            "GET /documents/{id}?include=attachments (lists and the responses of writes leave "
            "it out)."
        },
    )
    comments = fields.List(
        fields.Nested(lambda: CommentOutSchema()),
        metadata={
            "description": "Questions and remarks without an action, oldest first (in a blind "
            "review the others' of the current round stay hidden until you have decided). "
            "Present when asked for: GET /documents/{id}?include=comments."
        },
    )


class DocumentPageSchema(OutputSchema):
    items = fields.List(fields.Nested(DocumentSchema), required=True)
    next = fields.String(allow_none=True, required=True)


class CommentOutSchema(OutputSchema):
    id = fields.Integer(attribute="id", required=True)
    at = LocalDateTime(required=True)
    user = fields.String(attribute="actor", required=True)
    text = fields.String(attribute="comment", required=True)


class NotificationSchema(OutputSchema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True, metadata={"description": "task_waiting, rejected, …"})
    document_id = fields.Integer(allow_none=True, required=True)
    text = fields.Method("_text", required=True)
    created_at = LocalDateTime(required=True)
    read = fields.Method("_read", required=True)

    def _text(self, row: Any) -> str:
        from workflow.notify import subject

        return subject(row.kind, row.details or {}, lang())

    def _read(self, row: Any) -> bool:
        return bool(row.read)  # for the caller: set by workflow.notify.recent


class NotificationPageSchema(OutputSchema):
    items = fields.List(fields.Nested(NotificationSchema), required=True)
    next = fields.String(allow_none=True, required=True)


class EventSchema(OutputSchema):
    seq = fields.Integer(attribute="id", required=True)
    at = LocalDateTime(required=True)
    document_id = fields.Integer(allow_none=True, required=True)
    flow = fields.String(allow_none=True, required=True)
    flow_version = fields.Integer(allow_none=True, required=True)
    actor = fields.String(allow_none=True, required=True)
    action = fields.String(required=True)
    outcome = fields.String(required=True, validate=validate.OneOf(["ok", "refused"]))
    code = fields.String(allow_none=True, required=True)
    from_state = fields.String(allow_none=True, required=True)
    to_state = fields.String(allow_none=True, required=True)
    revision = fields.Integer(allow_none=True, required=True)
    comment = fields.String(required=True)
    hash = fields.String(required=True)
    on_behalf_of = fields.Method(
        "_on_behalf_of",
        allow_none=True,
        required=True,
        metadata={"description": "The principal a delegate acted for (null: in their own name)."},
    )

    def _on_behalf_of(self, event: Any) -> str | None:
        return (event.details or {}).get("on_behalf_of")


class EventPageSchema(OutputSchema):
    items = fields.List(fields.Nested(EventSchema), required=True)
    next = fields.String(allow_none=True, required=True)


class LabelSchema(OutputSchema):
    zh = fields.String(required=True)
    en = fields.String(required=True)


class FlowSummarySchema(OutputSchema):
    name = fields.String(required=True)
    title = Localized(required=True)
    titles = fields.Nested(LabelSchema, required=True)
    version = fields.Integer(required=True)
    published_at = LocalDateTime(required=True)


class FlowPageSchema(OutputSchema):
    items = fields.List(fields.Nested(FlowSummarySchema), required=True)
    next = fields.String(allow_none=True, required=True)


class FieldSchema(OutputSchema):
    name = fields.String(required=True)
    type = fields.String(required=True)
    label = Localized(required=True)
    help = Localized(allow_none=True)
    required = fields.Boolean(required=True)
    default = fields.Raw(allow_none=True)
    min = Exact(allow_none=True)
    max = Exact(allow_none=True)
    places = fields.Integer()
    max_length = fields.Integer(allow_none=True)
    choices = fields.List(fields.String())
    columns = fields.List(fields.Nested(lambda: FieldSchema()))
    max_rows = fields.Integer()


class ReviewRuleSchema(OutputSchema):
    required = fields.Integer(required=True)
    roles = fields.List(fields.String(), required=True)


class StateSchema(OutputSchema):
    name = fields.String(required=True)
    label = Localized(required=True)
    review = fields.Nested(ReviewRuleSchema, allow_none=True, required=True)
    editable_by = fields.List(fields.String(), required=True)
    final = fields.Boolean(required=True)


class TransitionSchema(OutputSchema):
    action = fields.String(required=True)
    source = fields.String(data_key="from", required=True)
    dest = fields.String(data_key="to", required=True)
    roles = fields.List(fields.String(), required=True)
    label = Localized(required=True)


class FlowSchema(FlowSummarySchema):
    yaml = fields.String(required=True, metadata={"description": "The definition's text."})
    initial = fields.String(required=True)
    states = fields.List(fields.Nested(StateSchema), required=True)
    fields_ = fields.List(
        fields.Nested(FieldSchema), data_key="fields", attribute="fields", required=True
    )
    transitions = fields.List(fields.Nested(TransitionSchema), required=True)


class PublishedSchema(OutputSchema):
    version = fields.Integer(required=True)


class PublishOutcomeSchema(OutputSchema):
    """PUT /flows/{name}: the new (or unchanged) version, or a change pending approval."""

    version = fields.Integer(allow_none=True, required=True)
    status = fields.String(metadata={"description": "`pending` (202 only)."})
    change = fields.Integer(metadata={"description": "The pending change's id (202 only)."})
    weakens = fields.List(
        fields.String(), metadata={"description": "How the text weakens review (when pending)."}
    )
