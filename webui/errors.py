"""The one place that maps engine errors to HTTP: JSON under /api, HTML pages elsewhere.

Every handler rolls the session back first, so no half-applied change can be committed later
in the same request. No stack trace, SQL or version ever reaches the client.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from webui.extensions import db
from workflow.errors import (
    DefinitionError,
    Forbidden,
    InvalidData,
    NotFound,
    Refused,
    Unauthorized,
    WorkflowError,
)

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
    500: "internal_error",
}


def wants_json() -> bool:
    return request.path.startswith("/api/") or (request.accept_mimetypes.best == "application/json")


def error_response(status: int, code: str, message: str, details: Any = None):
    if wants_json():
        body = {"error": {"code": code, "message": message, "details": details}}
        return jsonify(body), status
    return render_template(
        "error.html", status=status, code=code, message=message, details=details
    ), status


def status_of(error: WorkflowError) -> int:
    if isinstance(error, Refused):
        return error.status
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, InvalidData | DefinitionError):
        return 422
    if isinstance(error, Unauthorized):
        return 401
    if isinstance(error, Forbidden):
        return 403
    return 400


def details_of(error: WorkflowError) -> Any:
    if isinstance(error, InvalidData):
        return error.errors
    if isinstance(error, DefinitionError):
        return [p.as_dict() for p in error.problems]
    if isinstance(error, Refused):
        return error.details
    return None


def register(app: Flask) -> None:
    @app.errorhandler(WorkflowError)
    def _workflow_error(error: WorkflowError):
        db.session.rollback()
        return error_response(status_of(error), error.code, error.message, details_of(error))

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        db.session.rollback()
        status = error.code or 500
        if status == 401 and not wants_json():
            return error.get_response()
        code = HTTP_CODES.get(status, "error")
        return error_response(status, code, error.description or code)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        db.session.rollback()
        log.exception("unhandled error")
        return error_response(
            500, "internal_error", "something went wrong on our side; the change was not applied"
        )
