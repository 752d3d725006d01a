"""`POST /api/v1/tasks/bulk`: approve selected tasks, each decided on its own, per-item results."""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from webui.api import schemas as s
from webui.api.views import dump, json_body, me, operation
from webui.errors import status_of
from webui.extensions import db
from workflow import bulk

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"


class BulkItemSchema(s.InputSchema):
    id = fields.Integer(required=True, strict=True, validate=validate.Range(1, s.MAX_ID))
    revision = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(1, s.MAX_ID),
        metadata={"description": "The revision you reviewed (as listed)."},
    )


class BulkSchema(s.InputSchema):
    action = fields.String(
        required=True,
        validate=validate.OneOf(bulk.ACTIONS),
        metadata={"description": "approve (a rejection needs its own reason: never in bulk)."},
    )
    comment = fields.String(
        load_default="",
        validate=[validate.Length(max=2000), s.no_control],
        metadata={
            "description": "The same comment on each approval.",
            "pattern": s.NO_CONTROL_PATTERN,
        },
    )
    flow = fields.String(
        validate=validate.Regexp(NAME_PATTERN),
        metadata={"description": "The flow the tasks were selected in (with `state`)."},
    )
    state = fields.String(
        validate=validate.Regexp(NAME_PATTERN),
        metadata={
            "description": "The state the tasks were selected in: a task that moved on since "
            "answers `not_in_selection`. Without `flow` and `state` the tasks must all be of "
            "one flow and one state (else 422)."
        },
    )
    checks = fields.Dict(
        keys=fields.String(validate=validate.Regexp(NAME_PATTERN)),
        values=fields.Boolean(truthy={True}, falsy={False}),
        validate=validate.Length(max=50),
        metadata={
            "description": "The state's checklist, confirmed for every selected task: "
            '`{"qty": true, …}`, every point true. Without it, tasks in a state with a '
            "checklist are each refused `checklist_incomplete` (422)."
        },
    )
    items = fields.List(
        fields.Nested(BulkItemSchema),
        required=True,
        validate=validate.Length(1, bulk.MAX_ITEMS),
        metadata={"description": f"1 to {bulk.MAX_ITEMS} tasks."},
    )

    @validates_schema
    def _both_or_neither(self, data: dict, **_: object) -> None:
        if ("flow" in data) != ("state" in data):
            raise ValidationError("give both `flow` and `state`, or neither", "state")


class BulkErrorSchema(s.OutputSchema):
    code = fields.String(required=True)
    message = fields.String(required=True)


class BulkResultSchema(s.OutputSchema):
    id = fields.Integer(required=True)
    ok = fields.Boolean(required=True)
    status = fields.Integer(
        required=True, metadata={"description": "What the single action would have answered."}
    )
    state = fields.String(allow_none=True, required=True)
    revision = fields.Integer(allow_none=True, required=True)
    error = fields.Nested(BulkErrorSchema, allow_none=True, required=True)


class BulkResultsSchema(s.OutputSchema):
    results = fields.List(fields.Nested(BulkResultSchema), required=True)
    done = fields.Integer(
        required=True, metadata={"description": "How many items were carried out."}
    )


@operation(
    "/tasks/bulk",
    "POST",
    "Approve several tasks",
    BulkResultsSchema,
    body=BulkSchema,
    errors=(415, 422),
)
def bulk_act():
    """Each item through the single action's rules, in its own transaction with its own audit
    event; one refused item changes nothing for the others. Flows with `bulk: false` refuse
    every item (`bulk_not_allowed`)."""
    args = json_body(BulkSchema)
    items = [(item["id"], item["revision"]) for item in args["items"]]
    chosen = (args["flow"], args["state"]) if "flow" in args and "state" in args else None
    results = bulk.act_each(
        db.session, me(), args["action"], items, args["comment"], chosen, args.get("checks")
    )
    body = []
    for result in results:
        document = result.process.document if result.process else None
        error = result.error
        body.append(
            {
                "id": result.id,
                "ok": result.ok,
                "status": 200 if error is None else status_of(error),
                "state": document.state if document else None,
                "revision": document.revision if document else None,
                "error": {"code": error.code, "message": error.message} if error else None,
            }
        )
    return dump(BulkResultsSchema, {"results": body, "done": sum(r.ok for r in results)})
