"""The JSON API under /api/v1 (see docs/api.md and /api/v1/openapi.json).

Every request but the OpenAPI document and its page needs credentials: a bearer token
(`flask users token NAME`) or the browser session. Session requests that change something must
carry the CSRF token in an `X-CSRFToken` header; bearer requests need none.
"""

from __future__ import annotations

from flask import Blueprint, request
from flask_login import current_user
from werkzeug.routing import BaseConverter

from webui.extensions import csrf
from workflow.errors import Unauthorized

bp = Blueprint("api", __name__, template_folder="templates")

PUBLIC_ENDPOINTS = {"api.openapi_json", "api.openapi_page"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class FlowNameConverter(BaseConverter):
    """A flow name in a URL: `[a-z][a-z0-9_]*`, at most 40 characters (anything else is 404)."""

    regex = "[a-z][a-z0-9_]{0,39}"


@bp.record_once
def _register_converters(state) -> None:
    state.app.url_map.converters.setdefault("flowname", FlowNameConverter)


@bp.before_request
def _authenticate() -> None:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    if not current_user.is_authenticated:
        raise Unauthorized(
            "sign in, or send `Authorization: Bearer <token>` (from `flask users token NAME`)"
        )
    if request.method not in SAFE_METHODS and not current_user.via_token:
        csrf.protect()  # session requests: the X-CSRFToken header, else 400 csrf_failed


@bp.after_request
def _challenge(response):
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="fuhe"'
    return response


from webui.api import (  # noqa: E402, F401
    audit_views,
    bulk,
    deadline_views,
    flows,
    lists,
    openapi,
    report_views,
    users,
    views,
)
