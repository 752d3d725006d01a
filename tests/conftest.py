"""Fixtures: databases (SQLite always; PostgreSQL when TEST_DATABASE_URL is set, as in CI),
engine-level sessions, the Flask app and client, users by role, login_as() and api_as()."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from workflow import audit, security
from workflow.accounts import create_user
from workflow.db import Base, make_engine, normalize_url
from workflow.models import User
from workflow.services import publish_files

ROOT = Path(__file__).resolve().parent.parent
DEFINITIONS = sorted((ROOT / "definitions").glob("*.yaml"))
# The review-rule tests' flows: the shipped ones, with the shipment frozen as it was before issue
# 11 (see tests/data/flows/rules/shipment.yaml).
RULES_DEFINITIONS = sorted(
    [
        ROOT / "tests/data/flows/rules/shipment.yaml",
        *(p for p in DEFINITIONS if p.stem != "shipment"),
    ]
)
PG_URL = os.environ.get("TEST_DATABASE_URL")

# Engine-level tests seal audit events with the testing key (create_app installs the same one).
audit.configure(audit.Keyring.from_settings("testing-audit-key-not-for-production"))

# Real scrypt costs ~50 ms a hash; tests create many users. Production parameters are untouched.
security.SCRYPT_N = 2**4

# (username, roles): two or three people per role, so every quorum can be met by others.
PEOPLE: dict[str, tuple[str, ...]] = {
    "zhang": ("sales_admin",),
    "wang": ("sales_admin",),
    "chen": ("sales_admin",),
    "li": ("warehouse",),
    "zhou": ("warehouse",),
    "xu": ("sales",),
    "liu": ("sales_manager",),
    "sun": ("sales_manager",),
    "zhao": ("finance",),
    "qian": ("finance",),
    "wu": ("finance",),
    "ma": ("gm",),
    "he": ("gm",),
    "shen": ("auditor",),
    "admin": ("flow_admin",),
    "duo": ("sales_admin", "warehouse"),
}
PASSWORD = "correct-horse-9"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the SQLite variant of tests about PostgreSQL's row locks (not a skip: not a test)."""
    kept, dropped = [], []
    for item in items:
        sqlite_variant = "[sqlite" in item.nodeid
        (dropped if sqlite_variant and item.get_closest_marker("postgres_only") else kept).append(
            item
        )
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def backends() -> list[Any]:
    if os.environ.get("FUHE_REQUIRE_POSTGRES") and not PG_URL:
        raise RuntimeError("FUHE_REQUIRE_POSTGRES is set but TEST_DATABASE_URL is not")
    params: list[Any] = ["sqlite"]
    params.append(
        pytest.param(
            "postgresql",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL not set"),
            ],
        )
    )
    return params


_pg_engine: Engine | None = None
# Each test run gets its own PostgreSQL schema, so parallel runs on one database never meet.
PG_SCHEMA = f"fuhe_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"


def postgres_url() -> str:
    """TEST_DATABASE_URL, pointed at this run's schema (usable by subprocesses too)."""
    assert PG_URL
    url = make_url(normalize_url(PG_URL))
    url = url.update_query_dict({"options": f"-csearch_path={PG_SCHEMA}"})
    return url.render_as_string(hide_password=False)


def _postgres_engine() -> Engine:
    global _pg_engine
    if _pg_engine is None:
        admin = make_engine(PG_URL or "")
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{PG_SCHEMA}"'))
        admin.dispose()
        _pg_engine = make_engine(postgres_url(), pool_size=20, max_overflow=20)
        Base.metadata.create_all(_pg_engine)
    return _pg_engine


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _pg_engine is not None:
        _pg_engine.dispose()
        admin = make_engine(PG_URL or "")
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{PG_SCHEMA}" CASCADE'))
        admin.dispose()


def _truncate(engine: Engine) -> None:
    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=backends())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL (schema created) on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.sqlite3'}"
        engine = make_engine(url)
        Base.metadata.create_all(engine)
        engine.dispose()
        yield url
    else:
        engine = _postgres_engine()
        _truncate(engine)
        yield postgres_url()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    if db_url.startswith("postgresql"):
        yield _postgres_engine()
    else:
        eng = make_engine(db_url)
        yield eng
        eng.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as s:
        yield s


@pytest.fixture
def flows(session: Session) -> list[str]:
    """The four shipped flows, published."""
    return publish_files(session, DEFINITIONS)


@pytest.fixture
def rules_flows(session: Session) -> list[str]:
    """The flows the review-rule tests run on (RULES_DEFINITIONS)."""
    return publish_files(session, RULES_DEFINITIONS)


@pytest.fixture
def people(session: Session) -> dict[str, User]:
    """Users by name (see PEOPLE), each with the roles listed there."""
    return {name: create_user(session, name, PASSWORD, roles) for name, roles in PEOPLE.items()}


# --- response bodies ------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def checked_dumps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every response body the suite makes is built both by the compiled dumper
    (webui/api/dumping.py) and by marshmallow's `Schema.dump`, and must be the same JSON."""
    import json

    from webui.api import dumping

    compiled = dumping.dumper

    def checking(schema: type) -> Callable[[Any], Any]:
        fast = compiled(schema)
        reference = schema()

        def dump(obj: Any) -> Any:
            body = fast(obj)
            expected = reference.dump(obj)
            as_json = [json.dumps(b, sort_keys=True, default=repr) for b in (body, expected)]
            assert as_json[0] == as_json[1], f"{schema.__name__}: compiled {body!r} != {expected!r}"
            return body

        return dump

    monkeypatch.setattr(dumping, "dumper", checking)


# --- the web application -------------------------------------------------------------------------
@contextmanager
def seeded_app(db_url: str, tmp_path: Path, **config: Any) -> Iterator[Any]:
    """The app on `db_url` with the shipped flows and PEOPLE, disposed of afterwards; `config`
    adds to or overrides the test settings."""
    from webui import create_app
    from webui.extensions import db

    application = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": db_url,
            "SERVER_NAME": None,
            # uploads go to this test's own directory, never to instance/
            "ATTACHMENT_DIR": str(tmp_path / "attachments"),
            **config,
        }
    )
    with application.app_context():
        publish_files(db.session, DEFINITIONS)
        for name, roles in PEOPLE.items():
            create_user(db.session, name, PASSWORD, roles)
        db.session.remove()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def app(db_url: str, tmp_path: Path):
    with seeded_app(db_url, tmp_path) as application:
        yield application


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def login_as(app) -> Callable[[str], Any]:
    """login_as("li") → a test client signed in through the real login form (with CSRF)."""
    import re

    def _login(username: str, password: str = PASSWORD):
        c = app.test_client()
        page = c.get("/auth/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
        token = token or re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token, "login form has no CSRF token"
        response = c.post(
            "/auth/login",
            data={"username": username, "password": password, "csrf_token": token.group(1)},
        )
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return c

    return _login


@pytest.fixture
def api_as(app) -> Callable[[str], dict[str, str]]:
    """api_as("li") → headers with a fresh bearer token for li."""
    from webui.extensions import db
    from workflow.accounts import issue_token

    def _headers(username: str) -> dict[str, str]:
        with app.app_context():
            token = issue_token(db.session, username)
            db.session.remove()
        return {"Authorization": f"Bearer {token}"}

    return _headers


def unique_name(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say in the log how many tests ran against PostgreSQL and in Chromium (not skipped)."""
    passed = terminalreporter.stats.get("passed", [])
    skipped = terminalreporter.stats.get("skipped", [])
    for label, needle in (("PostgreSQL", "postgresql"), ("browser", "tests/browser/")):
        ran = sum(1 for r in passed if needle in r.nodeid)
        missed = sum(1 for r in skipped if needle in r.nodeid)
        terminalreporter.write_line(f"{label} tests: {ran} passed, {missed} skipped")
