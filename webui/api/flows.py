"""The flow editor's API: check a text without storing it, list versions, approve a pending
change. (PUT /flows/{name}, which publishes, lives in views.py.)"""

from __future__ import annotations

from flask import request
from marshmallow import fields
from werkzeug.exceptions import UnsupportedMediaType

from webui.api import schemas as s
from webui.api.views import YAML_TYPES, dump, me, operation
from webui.extensions import db
from webui.i18n import lang
from workflow import flowadmin, queries
from workflow.definitions.diagram import render_svg

YAML_BODY = {
    "type": "string",
    "maxLength": 65536,
    "description": "The definition's YAML text; its `name` must be the URL's.",
}


class CheckedSchema(s.OutputSchema):
    ok = fields.Boolean(required=True)
    diagram = fields.String(required=True, metadata={"description": "The flow as SVG."})
    weakens = fields.List(
        fields.String(),
        required=True,
        metadata={
            "description": "How the text weakens review compared with the current version "
            "(publishing it then needs a second flow_admin)."
        },
    )

    diff = fields.String(metadata={"description": "Unified diff against the current version."})


class VersionSchema(s.OutputSchema):
    version = fields.Integer(required=True)
    published_by = fields.String(allow_none=True, required=True)
    published_at = s.LocalDateTime(required=True)
    note = fields.String(required=True)
    open_documents = fields.Integer(required=True)
    content_hash = fields.String(required=True)


class VersionPageSchema(s.OutputSchema):
    items = fields.List(fields.Nested(VersionSchema), required=True)
    next = fields.String(allow_none=True, required=True)


class ChangeSchema(s.OutputSchema):
    id = fields.Integer(required=True)
    flow = fields.String(attribute="flow_name", required=True)
    base_version = fields.Integer(required=True)
    status = fields.String(required=True)
    note = fields.String(required=True)
    reasons = fields.List(fields.String(), required=True)
    proposed_by = fields.String(attribute="proposed_by.username", required=True)
    proposed_at = s.LocalDateTime(required=True)


class ChangePageSchema(s.OutputSchema):
    items = fields.List(fields.Nested(ChangeSchema), required=True)
    next = fields.String(allow_none=True, required=True)


def yaml_text() -> str:
    if request.mimetype not in YAML_TYPES:
        raise UnsupportedMediaType("send the definition as YAML (Content-Type: application/yaml)")
    return request.get_data(as_text=True)


@operation(
    "/flows/<flowname:name>/check",
    "POST",
    "Check a definition without storing it",
    CheckedSchema,
    errors=(403, 415, 422),
    raw_body=YAML_BODY,
)
def check_flow(name: str):
    """`flow_admin` only. 200 `{ok, diagram, weakens}` when the text validates; 422 with
    `details` a list of `{line, message, hint}` when it does not. Nothing is stored."""
    flowadmin.require_admin(me())
    text = yaml_text()
    spec = flowadmin.check_text(text, name)
    current = flowadmin.services.current_version(db.session, name)
    weakens = (
        flowadmin.weakenings(flowadmin.compiled(current).spec, spec) if current is not None else []
    )
    published = current.yaml_text if current is not None else ""
    result = {
        "ok": True,
        "diagram": render_svg(spec, lang()),
        "weakens": weakens,
        "diff": flowadmin.text_diff(published, text),
    }
    return dump(CheckedSchema, result)


@operation(
    "/flows/<flowname:name>/versions",
    "GET",
    "Every version of a flow",
    VersionPageSchema,
    errors=(403, 404),
)
def flow_versions(name: str):
    """`flow_admin` only. Newest first: version, who published it and when, the change note and
    how many unfinished documents are still on it."""
    flowadmin.require_admin(me())
    return dump(VersionPageSchema, queries.Page(flowadmin.versions(db.session, name), None))


@operation(
    "/flows/<flowname:name>/changes",
    "GET",
    "Changes waiting for a second flow admin",
    ChangePageSchema,
    errors=(403,),
)
def flow_changes(name: str):
    """`flow_admin` only. Published texts that weaken review and wait for a second approval."""
    flowadmin.require_admin(me())
    return dump(ChangePageSchema, queries.Page(flowadmin.pending_changes(db.session, name), None))


@operation(
    "/flows/<flowname:name>/changes/<int(min=1, max=2147483647):change_id>/approve",
    "POST",
    "Approve a change that weakens review",
    s.PublishedSchema,
    201,
    errors=(403, 404, 409),
)
def approve_flow_change(name: str, change_id: int):
    """A second `flow_admin` (not the one who proposed it) approves a pending change; it is
    published as the next version. 409 when the flow was published again meanwhile."""
    outcome = flowadmin.approve_change(db.session, name, change_id, me())
    return dump(s.PublishedSchema, outcome.version, 201 if outcome.created else 200)


def publish_response(name: str, text: str, note: str | None):
    """PUT /flows/{name}: 201 published, 200 unchanged, 202 pending a second flow admin."""
    outcome = flowadmin.publish(db.session, text, name, me(), note)
    if outcome.change is not None:
        body = {
            "version": None,
            "change": outcome.change.id,
            "status": "pending",
            "weakens": outcome.change.reasons,
        }
        return dump(s.PublishOutcomeSchema, body, 202)
    body = {"version": outcome.version.version}  # the contract's 201/200 body, unchanged
    return dump(s.PublishOutcomeSchema, body, 201 if outcome.created else 200)
