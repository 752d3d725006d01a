"""The web layer: create_app() assembled from small steps (cookiecutter-flask style)."""

from __future__ import annotations

import decimal
import json
from typing import Any

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider

import config as settings
from webui.extensions import babel, csrf, db, login_manager, migrate
from workflow.db import configure_engine, engine_options, normalize_url


class ExactJSONProvider(DefaultJSONProvider):
    """JSON numbers with a fraction are read as Decimal (money is never float) and written back
    as text."""

    ensure_ascii = False  # Chinese text as UTF-8, readable in logs and by integrations

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        kwargs.setdefault("parse_float", decimal.Decimal)
        kwargs.setdefault("parse_constant", _refuse_constant)
        return json.loads(s, **kwargs)

    @staticmethod
    def default(o: Any) -> Any:
        if isinstance(o, decimal.Decimal):
            return format(o, "f")
        return DefaultJSONProvider.default(o)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number this service accepts")


def create_app(config: type[settings.Config] | dict[str, Any] | None = None) -> Flask:
    """Build the application: configuration, extensions, blueprints, error handlers, commands."""
    app = Flask(__name__, instance_path=str(settings.INSTANCE_DIR), instance_relative_config=False)
    app.json = ExactJSONProvider(app)
    configure(app, config)
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


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine)
    migrate.init_app(app, db, directory=str(settings.BASE_DIR / "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.session_protection = app.config["SESSION_PROTECTION"]
    from webui.i18n import select_locale, select_timezone

    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    from webui import auth_loader  # noqa: F401 - registers the user and request loaders
    from webui.i18n import lang

    app.jinja_env.globals["current_lang"] = lang
    login_manager.login_view = "auth.login"


def register_blueprints(app: Flask) -> None:
    from webui.api import bp as api_bp
    from webui.auth import bp as auth_bp
    from webui.inbox import bp as inbox_bp
    from webui.main import bp as main_bp
    from webui.reports import bp as reports_bp

    app.register_blueprint(main_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(inbox_bp)
    app.register_blueprint(reports_bp)
    app.register_blueprint(api_bp, url_prefix="/api/v1")
    csrf.exempt(api_bp)  # the API authenticates with bearer tokens or checks CSRF itself


def register_errorhandlers(app: Flask) -> None:
    from webui.errors import register

    register(app)


def register_commands(app: Flask) -> None:
    from webui.commands import register

    register(app)


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
