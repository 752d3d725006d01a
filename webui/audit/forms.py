"""The auditors' filters, parsed the same way for the pages and the API."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate

from webui.api.schemas import Moment, no_control
from workflow.audit_reports import Filters


class DocumentRef(fields.Field):
    """A document by number: `17`, `#17`."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        text = str(value).strip().lstrip("#")
        if not re.fullmatch(r"[0-9]{1,10}", text) or not 0 < int(text) < 2**31:
            raise ValidationError("must be a document number, e.g. 17")
        return int(text)


class FilterSchema(Schema):
    class Meta:
        unknown = RAISE

    flow = fields.String(validate=[validate.Length(1, 40), no_control])
    document = DocumentRef(metadata={"description": "A document number (17 or #17)."})
    actor = fields.String(
        validate=[validate.Length(1, 64), no_control],
        metadata={"description": "A login, or part of a person's name (王芳)."},
    )
    action = fields.String(validate=[validate.Length(1, 40), no_control])
    state = fields.String(
        validate=[validate.Length(1, 40), no_control],
        metadata={"description": "Events leaving or entering this state."},
    )
    outcome = fields.String(validate=validate.OneOf(["ok", "refused"]))
    since = Moment(metadata={"description": "From this date or time (inclusive)."})
    until = Moment(
        end=True,
        metadata={"description": "Up to this time (exclusive); a date includes the whole day."},
    )
    limit = fields.Integer(validate=validate.Range(1, 200), metadata={"description": "1–200."})
    cursor = fields.String(validate=[validate.Length(1, 500), no_control])
    format = fields.String(
        validate=validate.OneOf(["json", "csv", "xlsx"]),
        load_default="json",
        metadata={"description": "csv: UTF-8 with BOM, for Excel; xlsx: a workbook."},
    )


class PageFilterSchema(FilterSchema):
    """The web form: unknown keys (the language switch's `back`…) are ignored."""

    class Meta:
        unknown = EXCLUDE


FILTER_KEYS = ("flow", "document", "actor", "action", "state", "outcome", "since", "until")


def parse(args: Any, schema: type[Schema] = FilterSchema) -> dict[str, Any]:
    """Query arguments → loaded values; blank form fields count as absent."""
    raw = {k: v for k, v in args.items() if str(v).strip() != ""}
    return schema().load(raw)


def filters_of(values: dict[str, Any]) -> Filters:
    return Filters(**{k: values[k] for k in FILTER_KEYS if k in values})


class PeriodSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    flow = fields.String(validate=[validate.Length(1, 40), no_control])
    since = Moment()
    until = Moment(end=True)
