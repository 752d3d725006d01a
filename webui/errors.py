"""The one place that maps engine errors to HTTP: JSON under /api, HTML pages elsewhere.

Every handler rolls the session back first, so no half-applied change can be committed later
in the same request. No stack trace, SQL or version ever reaches the client.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, g, jsonify, make_response, render_template, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from marshmallow import ValidationError
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from webui.extensions import db
from webui.messages import HEADLINES  # what a person reads first, by code (translated)
from workflow.errors import (
    DatabaseGone,
    DefinitionError,
    Forbidden,
    IdempotencyKeyReused,
    InvalidData,
    NotFound,
    Refused,
    Unauthorized,
    Unavailable,
    WorkflowError,
)
from workflow.uow import record_refused_request, summary

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
    414: "uri_too_long",
    431: "headers_too_large",
    500: "internal_error",
    503: "unavailable",
}


def wants_json() -> bool:
    return request.path.startswith("/api/") or (request.accept_mimetypes.best == "application/json")


def _json_keys(details: Any) -> Any:
    """Details with every key a string: a key of None (the request as a whole; marshmallow
    says `_schema`) or a list index beside field names cannot be sorted as JSON keys."""
    if isinstance(details, dict):
        return {
            ("_schema" if key is None else str(key)): _json_keys(value)
            for key, value in details.items()
        }
    if isinstance(details, list | tuple):
        return [_json_keys(value) for value in details]
    return details


def error_response(status: int, code: str, message: str, details: Any = None):
    details = _json_keys(details)
    if wants_json():
        body = {"error": {"code": code, "message": message, "details": details}}
        return jsonify(body), status
    doc_id = (request.view_args or {}).get("doc_id")
    page = render_template(
        "error.html",
        status=status,
        code=code,
        headline=HEADLINES.get(code),
        message=message,
        field_errors=_field_errors(details),
        doc_id=doc_id,
        other_doc=other_document(details),
    )
    return make_response(page, status), status


def notice(error: WorkflowError) -> tuple[str, str] | None:
    """The bilingual headline of a refusal (None: its own message says it best)."""
    return HEADLINES.get(error.code)


def other_document(details: Any) -> int | None:
    """The other document a cross-document refusal names (duplicate_value, over_limit)."""
    if isinstance(details, dict) and isinstance(details.get("document_id"), int):
        return details["document_id"]
    return None


def _field_errors(details: Any) -> dict[str, list[Any]]:
    """Field → its messages, for an error page (other details are for the API); each message
    is translated by its code in the template (`field_message`)."""
    if not isinstance(details, dict):
        return {}
    return {
        str(field): value if isinstance(value, list) else [value]
        for field, value in details.items()
        if isinstance(value, list | str)
    }


def status_of(error: WorkflowError) -> int:
    if isinstance(error, Refused):
        return error.status
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, InvalidData | DefinitionError | IdempotencyKeyReused):
        return 422
    if isinstance(error, Unavailable):
        return 503
    if isinstance(error, Unauthorized):
        return 401
    if isinstance(error, Forbidden):
        return 403
    return 400


def details_of(error: WorkflowError) -> Any:
    if isinstance(error, InvalidData):
        return error.errors
    if isinstance(error, DefinitionError):
        return error.details()
    if isinstance(error, Refused):
        return error.details
    return None


def register(app: Flask) -> None:
    @app.errorhandler(WorkflowError)
    def _workflow_error(error: WorkflowError):
        # A page and the API give the same answer to the same refusal: the same status and
        # code; a page shows it as an error page with a way back to the document.
        db.session.rollback()
        if not error.recorded and isinstance(error, InvalidData | Refused | IdempotencyKeyReused):
            _record(error.code, summary(error))
        if _html_form():
            # The document page again, now as it is, with the refusal on it and what was typed
            # kept; or a create/edit form again with its field errors. Same status as the API.
            refused = g.get("rerender_refusal")
            if refused is not None:
                return refused(error, notice(error)), status_of(error)
            rerender = g.get("rerender")
            if rerender is not None and isinstance(error, InvalidData):
                return rerender(error.errors), 422
        response = error_response(status_of(error), error.code, error.message, details_of(error))
        if isinstance(error, Unavailable):
            response[0].headers["Retry-After"] = "1"
        return response

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        db.session.rollback()
        status = error.code or 500
        if status == 401 and not wants_json():
            return error.get_response()
        code = "csrf_failed" if isinstance(error, CSRFError) else HTTP_CODES.get(status, "error")
        body, status = error_response(status, code, error.description or code)
        response = make_response(body, status)
        for name, value in error.get_headers():
            if name.lower() != "content-type":  # e.g. `Allow` on a 405
                response.headers[name] = value
        return response

    @app.errorhandler(ValidationError)
    def _invalid_request(error: ValidationError):
        # A request body or query that does not fit its marshmallow schema (webui/api).
        db.session.rollback()
        fields = ", ".join(sorted(str(k)[:40] for k in error.messages_dict)[:20])
        _record("invalid_request", f"invalid request: {fields}")
        return error_response(
            422, "invalid_request", "the request does not validate; see details", error.messages
        )

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        db.session.rollback()
        log.exception("unhandled error")
        return error_response(
            500, "internal_error", "something went wrong on our side; the change was not applied"
        )

    @app.errorhandler(DBAPIError)
    def _database_error(error: DBAPIError):
        # A connection that died under a read or outside a use case (a restart, a failover):
        # an outage to retry (503), not a crash. Any other database error is a bug (500).
        if not error.connection_invalidated:
            return _unexpected(error)
        log.warning("the database connection broke: %s", error.orig)
        return _workflow_error(DatabaseGone())


def _record(code: str, message: str) -> None:
    """Every refused change leaves a security event, also when no use case ran (rule 6)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    actor = current_user.row if current_user and current_user.is_authenticated else None
    try:
        record_refused_request(
            db.session, actor, request.endpoint or "request", code, message, request.path
        )
    except Exception:  # the answer matters more than its trace; log and go on
        db.session.rollback()
        log.exception("could not record a refused request")


def _html_form() -> bool:
    return (
        request.blueprint in ("inbox", "auth", "people")
        and request.method == "POST"
        and not wants_json()
    )
