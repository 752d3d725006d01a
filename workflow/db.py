"""Declarative base, URL handling and the engine settings that make concurrency correct."""

from __future__ import annotations

import datetime as dt
import re
import time
from contextvars import ContextVar
from typing import Any

from sqlalchemy import JSON, MetaData, create_engine, event, exc, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONData = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def normalize_url(url: str) -> str:
    """Let plain `postgresql://` (and Heroku-style `postgres://`) URLs use psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def engine_options(url: str) -> dict[str, Any]:
    """Per-dialect engine options (passed to create_engine or Flask-SQLAlchemy).

    No `pool_pre_ping`: it costs a round trip on every checkout, i.e. on every request; a
    connection is pinged only after it sat idle (see `ping_when_idle`)."""
    if make_url(url).get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {}


# A connection idle for longer than this is pinged before use. A busy worker reuses its
# connection within milliseconds and never pays the ping; one that sat idle across a database
# restart or a failover learns it before the request's first statement, not from it.
PING_AFTER_IDLE = 2.0


def ping_when_idle(engine: Engine) -> Engine:
    """Ping a pooled connection before use if it sat idle for `PING_AFTER_IDLE` seconds.

    A dead one invalidates the whole pool (a restarted server has closed every connection), and
    the pool hands out a fresh connection: the request goes on as if nothing happened. A
    connection that dies while in use still fails its statement: `is_disconnect` errors reach
    the caller as `DatabaseGone` (503, Retry-After), and SQLAlchemy recycles the pool's other
    connections on their next checkout.
    """
    if getattr(engine, "_fuhe_pings", False):
        return engine

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["fuhe_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("fuhe_idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE:
            return  # new (just connected) or in steady use
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            if not engine.dialect.is_disconnect(error, dbapi_connection, None):
                raise
            alive = False
        if not alive:
            raise exc.InvalidatePoolError("the database closed an idle connection")

    engine._fuhe_pings = True  # type: ignore[attr-defined]
    return engine


# Statements that cannot change data: a query, a setting. A WITH query counts only if no
# data-changing statement appears in it (a WITH may wrap one). Anything else is a write.
_READ = re.compile(r"\s*(?:SELECT|SHOW|SET)\b", re.IGNORECASE)
_WITH = re.compile(r"\s*WITH\b", re.IGNORECASE)
_CHANGE = re.compile(r"\b(?:INSERT|UPDATE|DELETE|MERGE)\b", re.IGNORECASE)
_WROTE = "fuhe_wrote"


def only_reads(statement: str) -> bool:
    """Whether a SQL statement only reads (what `note_writes` counts as no write)."""
    return bool(_READ.match(statement)) or (
        bool(_WITH.match(statement)) and not _CHANGE.search(statement)
    )


def note_writes(engine: Engine) -> Engine:
    """Remember, per transaction, whether any statement but a read ran (see `end_reads`)."""
    if getattr(engine, "_fuhe_notes_writes", False):
        return engine

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.info[_WROTE] = False

    @event.listens_for(engine, "before_cursor_execute")
    def _on_execute(connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not only_reads(statement):
            connection.info[_WROTE] = True

    engine._fuhe_notes_writes = True  # type: ignore[attr-defined]
    return engine


def end_reads(session: Session) -> bool:
    """End a PostgreSQL transaction that only read with COMMIT rather than ROLLBACK; True if
    it did.

    Both end a read-only transaction the same way, but psycopg forgets every prepared
    statement on ROLLBACK (DEALLOCATE ALL), and closing a session rolls back. A GET's
    statements were therefore parsed and planned anew on every request: the busy reviewer's
    inbox spent 4.7 ms planning its union of ordered branches against 2.5 ms running it.
    Committed instead, the statements psycopg has prepared (after 5 uses) stay prepared.
    A transaction that wrote, or holds unflushed changes, is left to be rolled back.

    The loaded objects are not expired (as closing the session would not): what a streamed
    response reads after the request, such as the signed-in user, stays readable."""
    if not session.in_transaction() or session.new or session.dirty or session.deleted:
        return False
    connection = session.connection()
    if connection.dialect.name != "postgresql" or connection.info.get(_WROTE, True):
        return False
    expire, session.expire_on_commit = session.expire_on_commit, False
    try:
        session.commit()
    finally:
        session.expire_on_commit = expire
    return True


# Set by the web layer for requests that never write (GET, HEAD); see configure_engine.
READ_ONLY: ContextVar[bool] = ContextVar("fuhe_read_only", default=False)


def configure_engine(engine: Engine) -> Engine:
    """Install SQLite's write-safety settings; on PostgreSQL (which uses row locks), the ping
    of connections that sat idle (`ping_when_idle`) and the note of transactions that wrote
    (`note_writes`, for `end_reads`).

    Python's sqlite3 starts transactions with a deferred BEGIN, so two writers that both read
    first deadlock and one loses with "database is locked". Every transaction here begins
    IMMEDIATE (taking the write lock up front) on a WAL database with a busy timeout.
    """
    if engine.dialect.name != "sqlite":
        return note_writes(ping_when_idle(engine))
    if getattr(engine, "_fuhe_configured", False):
        return engine

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Reads that are known to stay reads take no write lock: a web GET (READ_ONLY), or a
        # reader that asks for it (audit verify); WAL gives them one consistent snapshot while
        # writers go on. Everything else begins IMMEDIATE.
        if READ_ONLY.get() or connection.get_execution_options().get("fuhe_read_only"):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine._fuhe_configured = True  # type: ignore[attr-defined]
    return engine


def refresh_statistics(session: Session) -> bool:
    """Keep SQLite's planner statistics current (run by `flask tick`); True if it ran.

    SQLite has no autovacuum: without `ANALYZE` it plans every query as if each table were
    small, and a list that is 10 ms on a database it knows can walk a whole table on one it does
    not. `analysis_limit` bounds the work to about a thousand rows per index, so this costs
    milliseconds at any size. PostgreSQL's autovacuum does the same on its own.
    """
    if session.get_bind().dialect.name != "sqlite":
        return False
    session.execute(text("PRAGMA analysis_limit=1000"))
    session.execute(text("ANALYZE"))
    session.commit()
    return True


def make_engine(url: str, **options: Any) -> Engine:
    """Create a configured engine from any supported URL (for the CLI, workers and tests)."""
    url = normalize_url(url)
    return configure_engine(create_engine(url, **{**engine_options(url), **options}))


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
