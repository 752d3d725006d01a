"""The one place that maps engine errors to HTTP: JSON under /api, HTML pages elsewhere.

Every handler rolls the session back first, so no half-applied change can be committed later
in the same request. No stack trace, SQL or version ever reaches the client.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, flash, g, jsonify, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from webui.extensions import db
from workflow.errors import (
    ActionNotAllowed,
    CheckFailed,
    DefinitionError,
    Forbidden,
    InvalidData,
    NotFound,
    Refused,
    StaleRevision,
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
        return error.details()
    if isinstance(error, Refused):
        return error.details
    return None


def register(app: Flask) -> None:
    @app.errorhandler(WorkflowError)
    def _workflow_error(error: WorkflowError):
        db.session.rollback()
        return error_response(status_of(error), error.code, error.message, details_of(error))

    # The reviewers' HTML forms (webui/inbox): friendly answers instead of an error page.
    def _document_page(message: str):
        flash(message, "error")
        doc_id = (request.view_args or {}).get("doc_id")
        if doc_id is None:
            return redirect(url_for("inbox.inbox"), 303)
        return redirect(url_for("inbox.document", doc_id=doc_id), 303)

    def _html_form() -> bool:
        return (
            request.blueprint in ("inbox", "auth") and request.method == "POST" and not wants_json()
        )

    def _moved_on(error: StaleRevision | ActionNotAllowed):
        # A stale revision, or an action our page offered that is no longer allowed: either
        # way the document moved on while the reviewer looked at it.
        db.session.rollback()
        if not _html_form():
            return _workflow_error(error)
        from webui.inbox.helpers import t

        return _document_page(
            t("此单据已变更，请查看新版本。", "This document changed — review the new version.")
        )

    app.register_error_handler(StaleRevision, _moved_on)
    app.register_error_handler(ActionNotAllowed, _moved_on)

    @app.errorhandler(CheckFailed)
    def _check_failed(error: CheckFailed):
        db.session.rollback()
        if not _html_form():
            return _workflow_error(error)
        from webui.i18n import lang

        message = (error.details or {}).get("message", {}).get(lang()) or error.message
        return _document_page(message)

    @app.errorhandler(InvalidData)
    def _invalid(error: InvalidData):
        db.session.rollback()
        if not _html_form():
            return _workflow_error(error)
        rerender = g.get("rerender")
        if rerender is not None:
            return rerender(error.errors), 422
        messages = "; ".join(
            f"{key}: {', '.join(value) if isinstance(value, list) else value}"
            for key, value in error.errors.items()
        )
        return _document_page(messages or error.message)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        db.session.rollback()
        status = error.code or 500
        if status == 401 and not wants_json():
            return error.get_response()
        code = "csrf_failed" if isinstance(error, CSRFError) else HTTP_CODES.get(status, "error")
        return error_response(status, code, error.description or code)

    @app.errorhandler(ValidationError)
    def _invalid_request(error: ValidationError):
        # A request body or query that does not fit its marshmallow schema (webui/api).
        db.session.rollback()
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
