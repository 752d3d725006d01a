"""Delegations, the overdue deposits list and the caller's notification settings."""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from webui.api import schemas as s
from webui.api.views import dump, json_body, me, operation, query_args
from webui.extensions import db
from workflow import delegation, notify, queries
from workflow.roles import ROLES

DELEGATION = "/delegations/<int(min=1, max=2147483647):delegation_id>"


# --- schemas -------------------------------------------------------------------------------------
class DelegationCreateSchema(s.InputSchema):
    to = fields.String(
        required=True,
        validate=[validate.Length(1, 64), s.no_control],
        metadata={"description": "The colleague's username."},
    )
    roles = fields.List(
        fields.String(validate=validate.OneOf(list(ROLES))),
        validate=validate.Length(max=len(ROLES)),
        load_default=None,
        metadata={"description": "Roles to hand over; empty or absent: all you may delegate."},
    )
    from_ = fields.Date(
        required=True, data_key="from", metadata={"description": "First day (inclusive)."}
    )
    until = fields.Date(required=True, metadata={"description": "Last day (inclusive)."})


class DelegationListQuerySchema(s.InputSchema):
    all = fields.Boolean(
        load_default=False,
        metadata={"description": "Managers only: every active delegation of the company."},
    )


class DelegationSchema(s.OutputSchema):
    id = fields.Integer(required=True)
    principal = fields.String(
        attribute="principal.username", required=True, metadata={"description": "Who is away."}
    )
    to = fields.String(attribute="delegate.username", required=True)
    roles = fields.List(fields.String(), required=True)
    from_ = fields.Date(attribute="starts_on", data_key="from", required=True)
    until = fields.Date(attribute="ends_on", required=True)
    active = fields.Method("_active", required=True)
    created_at = s.LocalDateTime(required=True)

    def _active(self, row: Any) -> bool:
        today = delegation.today()
        return row.revoked_at is None and row.starts_on <= today <= row.ends_on


class DelegationPageSchema(s.OutputSchema):
    items = fields.List(fields.Nested(DelegationSchema), required=True)
    next = fields.String(allow_none=True, required=True)


class OverdueItemSchema(s.OutputSchema):
    id = fields.Integer(attribute="process.document.id", required=True)
    number = fields.String(attribute="process.document.number", allow_none=True, required=True)
    flow = fields.String(attribute="process.document.flow_name", required=True)
    state = fields.String(attribute="process.document.state", required=True)
    title = fields.String(required=True)
    due_date = fields.Date(required=True, metadata={"description": "The date that passed."})
    days_overdue = fields.Integer(required=True)
    amount = fields.Decimal(as_string=True, allow_none=True, required=True)


class OverduePageSchema(s.OutputSchema):
    items = fields.List(fields.Nested(OverdueItemSchema), required=True)
    next = fields.String(allow_none=True, required=True)


class NotificationSettingsSchema(s.InputSchema):
    email = fields.Boolean(
        metadata={"description": "Mail me notifications (false: in the app only)."}
    )
    digest = fields.Boolean(
        metadata={"description": "One mail a day (08:00 China time) instead of one per event."}
    )


class NotificationSettingsOutSchema(s.OutputSchema):
    email = fields.Boolean(attribute="notify_email", required=True)
    digest = fields.Boolean(attribute="notify_digest", required=True)


# --- endpoints -----------------------------------------------------------------------------------
@operation(
    "/delegations",
    "POST",
    "Delegate roles for a date range",
    DelegationSchema,
    201,
    body=DelegationCreateSchema,
    errors=(403, 415, 422),
)
def create_delegation():
    """While away, let a colleague act in some or all of your roles from `from` to `until`
    (inclusive). Their actions say `on_behalf_of` you; the rules of review hold for both of you.
    The colleague is notified."""
    args = json_body(DelegationCreateSchema)
    row = delegation.create(
        db.session, me(), args["to"], args.get("roles"), args["from_"], args["until"]
    )
    return dump(DelegationSchema, row, 201)


@operation(
    "/delegations",
    "GET",
    "Delegations",
    DelegationPageSchema,
    query=DelegationListQuerySchema,
    errors=(403, 422),
)
def list_delegations():
    """Delegations you gave or received that are not over; `?all=true` (managers: 销售经理,
    总经理) every active delegation."""
    args = query_args(DelegationListQuerySchema)
    rows = delegation.listing(db.session, me(), everyone=args["all"])
    return dump(DelegationPageSchema, {"items": rows, "next": None})


@operation(DELEGATION, "DELETE", "Withdraw a delegation", DelegationSchema, errors=(403, 404))
def revoke_delegation(delegation_id: int):
    """End a delegation you gave, now."""
    return dump(DelegationSchema, delegation.revoke(db.session, me(), delegation_id))


@operation("/overdue", "GET", "Overdue deposits", OverduePageSchema, errors=(403,))
def overdue_list():
    """Documents past their `overdue` date (tender deposits not refunded), most overdue first,
    with days overdue and amount. 内勤, 财务 and managers."""
    items = queries.overdue_deposits(db.session, me())
    return dump(OverduePageSchema, {"items": items, "next": None})


@operation(
    "/notifications/settings",
    "GET",
    "Your notification settings",
    NotificationSettingsOutSchema,
)
def notification_settings():
    """Whether notifications are mailed to you, and whether as one daily digest."""
    return dump(NotificationSettingsOutSchema, me())


@operation(
    "/notifications/settings",
    "PATCH",
    "Change your notification settings",
    NotificationSettingsOutSchema,
    body=NotificationSettingsSchema,
    errors=(415, 422),
)
def change_notification_settings():
    """`{"email": false}` to stop mail (in the app only), `{"digest": true}` for one mail a
    day. The worker honours them from its next round."""
    args = json_body(NotificationSettingsSchema)
    user = notify.set_preferences(db.session, me(), args.get("email"), args.get("digest"))
    return dump(NotificationSettingsOutSchema, user)
