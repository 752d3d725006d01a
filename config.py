"""Settings from the environment: Config, DevelopmentConfig, TestingConfig, ProductionConfig."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = Path(os.environ.get("FUHE_INSTANCE_DIR", BASE_DIR / "instance"))


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept under instance/."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    return _generated_once("secret_key")


def _audit_key() -> str:
    """AUDIT_KEY from the environment, else a development key generated once under instance/.

    The key seals the audit chain; it must never be stored in the database."""
    if os.environ.get("AUDIT_KEY"):
        return os.environ["AUDIT_KEY"]
    return _generated_once("audit_key")


def _generated_once(name: str) -> str:
    """A random key kept in instance/<name>, made by whichever process asks first.

    Processes start together (gunicorn's workers, two mail workers): each writes a whole key
    to a private file, readable by its owner only, and links it into place; `link` fails if
    the name exists, so exactly one key wins and everyone reads that one, never a half-written
    file or a second key (a second audit key would seal events the first cannot verify)."""
    path = INSTANCE_DIR / name
    if not path.exists():
        INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
        draft = INSTANCE_DIR / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_hex(32))
            os.link(draft, path)
        except FileExistsError:
            pass  # another process was first: use its key
        finally:
            draft.unlink(missing_ok=True)
    key = path.read_text().strip()
    if not key:
        raise RuntimeError(
            f"{path} is empty: restore it from a backup (a new audit key cannot verify the "
            "events the old one sealed), or remove it on an installation with no data yet"
        )
    return key


class Config:
    SECRET_KEY = None  # resolved in init_app so importing config has no side effects
    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'fuhe.sqlite3'}"
    )
    MAX_CONTENT_LENGTH = 1024 * 1024  # Flask has no limit by default
    MAX_FORM_MEMORY_SIZE = 512 * 1024
    # Below gunicorn's own limits (gunicorn.conf.py), so the app answers in its error shape.
    MAX_URL_LENGTH = 4096
    MAX_HEADER_BYTES = 16 * 1024
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_DURATION = timedelta(days=14)
    PERMANENT_SESSION_LIFETIME = timedelta(hours=12)
    SESSION_PROTECTION = "strong"
    # The token lives as long as the sign-in (the session): a page left open overnight still
    # submits while its sign-in is valid; logout ends the session and with it the token.
    WTF_CSRF_TIME_LIMIT = None
    BABEL_DEFAULT_LOCALE = "zh_Hans"
    BABEL_DEFAULT_TIMEZONE = "Asia/Shanghai"
    DISPLAY_TIMEZONE = os.environ.get("DISPLAY_TIMEZONE", "Asia/Shanghai")
    DEFINITIONS_DIR = str(BASE_DIR / "definitions")
    # Mail for notifications: off unless SMTP_HOST is set (then `worker` delivers them).
    SMTP_HOST = os.environ.get("SMTP_HOST")
    SMTP_PORT = int(os.environ.get("SMTP_PORT", "25"))
    SMTP_FROM = os.environ.get("SMTP_FROM", "fuhe@localhost")
    SMTP_USER = os.environ.get("SMTP_USER")
    SMTP_PASSWORD = os.environ.get("SMTP_PASSWORD")
    SMTP_STARTTLS = os.environ.get("SMTP_STARTTLS", "") == "1"
    BASE_URL = os.environ.get("BASE_URL", "http://127.0.0.1:5000")
    # Deadlines count working days by the Chinese calendar; a company adds its own closing
    # days and extra working days (ISO dates, comma-separated).
    WORK_HOLIDAYS = os.environ.get("WORK_HOLIDAYS", "")
    WORK_DAYS = os.environ.get("WORK_DAYS", "")
    LOGIN_MAX_FAILURES = 5
    LOGIN_LOCK_MINUTES = 15
    # Attached files (receipts, scans): stored by content hash in this directory; unset means
    # `attachments/` under the Flask instance path. Back it up with the database.
    ATTACHMENT_DIR = os.environ.get("ATTACHMENT_DIR") or None
    ATTACHMENT_MAX_SIZE = int(os.environ.get("ATTACHMENT_MAX_SIZE", str(10 * 1024 * 1024)))
    TESTING = False
    DEBUG = False

    AUDIT_KEY = None  # resolved in init_app, like SECRET_KEY
    AUDIT_KEYS = os.environ.get("AUDIT_KEYS", "")  # older keys: events they sealed still verify
    MAIL_SERVER = os.environ.get("MAIL_SERVER", "")  # host[:port], for `audit anchor --mail-to`
    MAIL_FROM = os.environ.get("MAIL_FROM", "")

    @classmethod
    def init_app(cls, app) -> None:
        if not app.config.get("SECRET_KEY"):
            app.config["SECRET_KEY"] = _secret_key()
        if not app.config.get("AUDIT_KEY"):
            app.config["AUDIT_KEY"] = _audit_key()


class DevelopmentConfig(Config):
    DEBUG = False  # the Werkzeug debugger stays off unless FLASK_DEBUG=1 on a developer's machine


class TestingConfig(Config):
    TESTING = True
    SECRET_KEY = "testing-secret-key-not-for-production"  # noqa: S105
    AUDIT_KEY = "testing-audit-key-not-for-production"
    AUDIT_KEYS = ""
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL", "sqlite://")
    WTF_CSRF_ENABLED = True
    LOGIN_MAX_FAILURES = 5


class ProductionConfig(Config):
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True

    @classmethod
    def init_app(cls, app) -> None:
        if not os.environ.get("SECRET_KEY"):
            raise RuntimeError("production needs SECRET_KEY in the environment")
        if not os.environ.get("AUDIT_KEY"):
            raise RuntimeError(
                "production needs AUDIT_KEY in the environment: the key that seals the audit "
                "log, kept outside the database (see docs/deploy.md, 'The audit key')"
            )
        app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
        app.config["AUDIT_KEY"] = os.environ["AUDIT_KEY"]


CONFIGS = {
    "default": Config,
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def config_from_env() -> type[Config]:
    return CONFIGS[os.environ.get("FUHE_CONFIG", "default")]
