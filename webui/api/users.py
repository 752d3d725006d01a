"""`/api/v1/users`: people administration for user administrators (deny by default).

Rules (who may, nobody grants themselves roles) are the policy's; changes are
workflow/accounts.py services, each one transaction with its audit events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, current_app
from marshmallow import fields, validate

from webui.api import dumping
from webui.api import schemas as s
from webui.api.views import dump, idempotency_claim, json_body, me, operation, replay
from webui.extensions import db
from workflow import accounts, idempotency, policy
from workflow.models import User
from workflow.roles import ROLES

USERNAME_PATTERN = r"^[^\s/]{1,64}$"
_ROLES = fields.List(
    fields.String(validate=validate.OneOf(list(ROLES))),
    validate=validate.Length(max=len(ROLES)),
    metadata={"description": "Role names: " + ", ".join(ROLES) + "."},
)


class UserSchema(s.OutputSchema):
    username = fields.String(required=True)
    display_name = fields.String(required=True)
    roles = fields.Method("_roles", required=True)
    active = fields.Boolean(required=True)
    must_change_password = fields.Boolean(
        required=True,
        metadata={
            "description": "A user administrator reset the password; it is changed "
            "at the next sign-in."
        },
    )
    created_at = s.LocalDateTime(required=True)

    def _roles(self, user) -> list[str]:
        return sorted(user.roles)


class UserPageSchema(s.OutputSchema):
    items = fields.List(fields.Nested(UserSchema), required=True)
    next = fields.String(allow_none=True, required=True)


class UserCreateSchema(s.InputSchema):
    username = fields.String(
        required=True,
        validate=[validate.Regexp(USERNAME_PATTERN), s.no_control],
        metadata={"pattern": USERNAME_PATTERN},
    )
    display_name = fields.String(
        load_default="",
        validate=[validate.Length(max=120), s.no_control],
        metadata={"pattern": s.NO_CONTROL_PATTERN},
    )
    roles = fields.List(
        fields.String(validate=validate.OneOf(list(ROLES))),
        required=True,
        validate=validate.Length(max=len(ROLES)),
        metadata={"description": "Role names: " + ", ".join(ROLES) + "."},
    )
    password = fields.String(
        required=True,
        validate=validate.Length(8, 256),
        metadata={"description": "The first password (8–256 characters)."},
    )


class UserPatchSchema(s.InputSchema):
    display_name = fields.String(
        validate=[validate.Length(max=120), s.no_control],
        metadata={"pattern": s.NO_CONTROL_PATTERN},
    )
    roles = _ROLES
    active = fields.Boolean(metadata={"description": "false disables (ends every sign-in)."})
    password = fields.String(
        validate=validate.Length(8, 256),
        metadata={
            "description": "Resets the password; the user must change it at the next "
            "sign-in. Never your own."
        },
    )
    revoke_tokens = fields.Boolean(
        metadata={"description": "true revokes every API token of the user."}
    )


@operation("/users", "GET", "Every user (user administrators)", UserPageSchema, errors=(403,))
def list_users():
    """Every account with its roles, by login name (`next` is always null)."""
    policy.can_manage_users(me()).enforce()
    return dump(UserPageSchema, {"items": accounts.list_users(db.session), "next": None})


@operation(
    "/users",
    "POST",
    "Add a user (user administrators)",
    UserSchema,
    201,
    body=UserCreateSchema,
    errors=(403, 415, 422),
)
def create_user():
    """A new account with roles and a first password; audited (`user_create`)."""
    args = json_body(UserCreateSchema)
    return _perform(
        201,
        lambda hook: accounts.admin_create_user(
            db.session,
            me(),
            args["username"],
            args["password"],
            args["roles"],
            args["display_name"],
            before_commit=hook,
        ),
    )


@operation(
    "/users/<username>",
    "PATCH",
    "Change a user (user administrators)",
    UserSchema,
    body=UserPatchSchema,
    errors=(403, 404, 415, 422),
)
def update_user(username: str):
    """Any of `roles`, `active`, `password` (a reset: changed at the next sign-in),
    `display_name`, `revoke_tokens`; each change is audited. Nobody changes their own roles,
    disables themselves or resets their own password (`403 self_administration`)."""
    args = json_body(UserPatchSchema)
    if "revoke_tokens" in args:
        args["revoke_api_tokens"] = args.pop("revoke_tokens")
    return _perform(
        200,
        lambda hook: accounts.admin_update_user(
            db.session, me(), username, before_commit=hook, **args
        ),
    )


def _perform(status: int, call: Callable[[Callable[[User], None]], Any]) -> Response:
    """Run one accounts service; with an `Idempotency-Key` the answer is stored in the same
    transaction and a retry gets it again (nothing is done twice)."""
    claim = idempotency_claim()
    if claim is not None and (found := idempotency.stored(db.session, claim)) is not None:
        return replay(found)
    built: dict[str, str] = {}

    def hook(user: User) -> None:
        built["body"] = current_app.json.dumps(dumping.dumper(UserSchema)(user))
        if claim is not None:
            idempotency.remember(db.session, claim, status, built["body"])

    call(hook)
    return Response(built["body"], status, mimetype="application/json")
