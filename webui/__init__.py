"""The web layer: create_app() assembled from small steps (cookiecutter-flask style)."""

from __future__ import annotations

import decimal
import json
from typing import Any

from flask import Flask, Request, g, request
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import BadRequest, RequestHeaderFieldsTooLarge, RequestURITooLarge

import config as settings
from webui.extensions import babel, csrf, db, login_manager, migrate
from workflow.db import READ_ONLY, configure_engine, end_reads, engine_options, normalize_url
from workflow.errors import InvalidData


class ExactJSONProvider(DefaultJSONProvider):
    """JSON numbers with a fraction are read as Decimal (money is never float) and written back
    as text. Numbers are bounded before they are converted: at most 40 characters, no
    exponent — so no request can make the server build a huge number."""

    ensure_ascii = False  # Chinese text as UTF-8, readable in logs and by integrations

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        kwargs.setdefault("parse_float", _bounded_decimal)
        kwargs.setdefault("parse_int", _bounded_int)
        kwargs.setdefault("parse_constant", _refuse_constant)
        return json.loads(s, **kwargs)

    @staticmethod
    def default(o: Any) -> Any:
        if isinstance(o, decimal.Decimal):
            return format(o, "f")
        return DefaultJSONProvider.default(o)


MAX_NUMBER_LENGTH = 40
UPLOAD_OVERHEAD = 64 * 1024  # the multipart framing and form fields around an uploaded file


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number this service accepts")


class RefusedNumber(ValueError):
    """A JSON number refused before it is converted (too long, or with an exponent)."""


def _bounded_int(text: str) -> int:
    # Refused before int() runs: a million-digit number would cost seconds of CPU.
    if len(text) > MAX_NUMBER_LENGTH:
        raise RefusedNumber(f"a number is longer than {MAX_NUMBER_LENGTH} characters")
    return int(text)


def _bounded_decimal(text: str) -> decimal.Decimal:
    if len(text) > MAX_NUMBER_LENGTH:
        raise RefusedNumber(f"a number is longer than {MAX_NUMBER_LENGTH} characters")
    if "e" in text or "E" in text:
        raise RefusedNumber(f"`{text}`: numbers with an exponent are not accepted; write digits")
    return decimal.Decimal(text)


class BoundedRequest(Request):
    """Says why a JSON body was refused (Flask's message is generic outside debug mode)."""

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if isinstance(e, RefusedNumber):
            raise InvalidData({"body": [str(e)]}, f"a number in the body is refused: {e}")
        raise BadRequest(f"the body is not valid JSON: {e}")


class NoCookieForAPI(SecureCookieSessionInterface):
    """API responses, and answers to requests that authenticate by header, set no cookie: a
    bearer client that keeps cookies must not pick up a session (its token alone counts)."""

    def save_session(self, app: Flask, session: Any, response: Any) -> None:
        from webui.auth_loader import uses_header_auth

        if request.path.startswith("/api/") or uses_header_auth():
            return
        super().save_session(app, session, response)


def create_app(config: type[settings.Config] | dict[str, Any] | None = None) -> Flask:
    """Build the application: configuration, extensions, blueprints, error handlers, commands."""
    app = Flask(__name__, instance_path=str(settings.INSTANCE_DIR), instance_relative_config=False)
    app.request_class = BoundedRequest
    app.json = ExactJSONProvider(app)
    configure(app, config)
    register_read_only(app)  # first: a GET's transaction must know it only reads
    register_request_limits(app)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    register_security_headers(app)
    return app


def configure(app: Flask, config: type[settings.Config] | dict[str, Any] | None) -> None:
    base = settings.config_from_env()
    overrides: dict[str, Any] = {}
    if isinstance(config, dict):
        overrides = config
        base = settings.TestingConfig if config.get("TESTING") else base
    elif config is not None:
        base = config
    app.config.from_object(base)
    app.config.update(overrides)
    base.init_app(app)
    url = normalize_url(app.config["SQLALCHEMY_DATABASE_URI"])
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(url))
    if url.startswith("sqlite:///") and "instance" in url:
        settings.INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    from workflow import audit

    # The key is process-wide: the engine seals events outside any request, too.
    audit.configure(
        audit.Keyring.from_settings(app.config["AUDIT_KEY"], app.config.get("AUDIT_KEYS") or "")
    )
    from workflow import calendar

    # The company's working days (extra closing days and working days beside the official ones).
    calendar.configure(
        calendar.WorkCalendar.from_settings(
            app.config.get("WORK_HOLIDAYS"), app.config.get("WORK_DAYS")
        )
    )


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine)
    migrate.init_app(app, db, directory=str(settings.BASE_DIR / "migrations"))
    from webui import auth_loader  # registers the session user loader

    # Who is asking is settled before the CSRF check: the header first, then the sign-in
    # (whose CSRF secret it restores — see auth_loader.bind_csrf_to_sign_in).
    app.before_request(auth_loader.authenticate_by_header)
    app.before_request(auth_loader.load_sign_in)
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.session_protection = app.config["SESSION_PROTECTION"]
    from webui.i18n import select_locale, select_timezone

    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    app.session_interface = NoCookieForAPI()
    from webui.i18n import LOCALE_NAMES, html_lang, lang, locale_name, t, tr

    app.jinja_env.globals.update(
        current_lang=lang,
        current_locale=locale_name,
        html_lang=html_lang,
        locale_names=LOCALE_NAMES,
        t=t,
        tr=tr,
    )
    login_manager.login_view = "auth.login"


def register_blueprints(app: Flask) -> None:
    from webui.api import bp as api_bp
    from webui.audit import bp as audit_bp
    from webui.auth import bp as auth_bp
    from webui.flows import bp as flows_bp
    from webui.inbox import bp as inbox_bp
    from webui.main import bp as main_bp
    from webui.people import bp as people_bp
    from webui.reports import bp as reports_bp

    app.register_blueprint(main_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(inbox_bp)
    app.register_blueprint(audit_bp, url_prefix="/audit")
    app.register_blueprint(flows_bp)
    app.register_blueprint(reports_bp)
    app.register_blueprint(people_bp)
    app.register_blueprint(api_bp, url_prefix="/api/v1")
    csrf.exempt(api_bp)  # the API authenticates with bearer tokens or checks CSRF itself


def register_errorhandlers(app: Flask) -> None:
    from webui.errors import register

    register(app)


def register_commands(app: Flask) -> None:
    from webui.commands import register

    register(app)


def register_read_only(app: Flask) -> None:
    """GET and HEAD requests only read: on SQLite their transactions take no write lock, and
    on PostgreSQL one that only read ends with COMMIT, keeping its prepared statements."""

    @app.before_request
    def _read_only() -> None:
        # GET and HEAD never write: on SQLite their transactions begin without the write lock.
        if request.method in ("GET", "HEAD"):
            token = READ_ONLY.set(True)
            g.read_only_token = token

    @app.teardown_request
    def _end_read_only(exc: BaseException | None) -> None:
        token = g.pop("read_only_token", None)
        if token is None:
            return
        READ_ONLY.reset(token)
        if exc is None:
            try:  # a GET that only read keeps its prepared statements (workflow.db.end_reads)
                end_reads(db.session())
            except SQLAlchemyError as error:  # the session's removal still rolls back
                app.logger.warning("ending a read-only transaction failed: %s", error)


def register_request_limits(app: Flask) -> None:
    """Over-long URLs and header blocks are refused by the app (JSON under /api), below the
    limits gunicorn enforces itself (gunicorn.conf.py), so clients get the usual error shape."""

    @app.before_request
    def _upload_limit() -> None:
        # Views marked `accepts_upload` take a file up to ATTACHMENT_MAX_SIZE; every other
        # request keeps MAX_CONTENT_LENGTH. Set before CSRF protection reads the form.
        view = app.view_functions.get(request.endpoint or "")
        if getattr(view, "accepts_upload", False):
            request.max_content_length = app.config["ATTACHMENT_MAX_SIZE"] + UPLOAD_OVERHEAD

    @app.before_request
    def _limits() -> None:
        uri = request.environ.get("RAW_URI") or request.full_path
        if len(uri) > app.config["MAX_URL_LENGTH"]:
            raise RequestURITooLarge(
                f"the URL is longer than {app.config['MAX_URL_LENGTH']} characters"
            )
        size = sum(len(k) + len(v) + 4 for k, v in request.headers.items())
        if size > app.config["MAX_HEADER_BYTES"]:
            raise RequestHeaderFieldsTooLarge(
                f"the request headers are larger than {app.config['MAX_HEADER_BYTES']} bytes"
            )


def register_security_headers(app: Flask) -> None:
    @app.after_request
    def _headers(response):
        headers = response.headers
        headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
        )
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        if request.authorization or request.cookies.get(app.config["SESSION_COOKIE_NAME"]):
            headers["Cache-Control"] = "no-store"
        return response
