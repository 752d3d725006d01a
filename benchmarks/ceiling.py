"""The ceiling: a trivial WSGI endpoint doing one transactional write, served like the app.

POST /write locks one of many counter rows, inserts a log row and updates the counter, in one
transaction on the same database (SQLAlchemy Core, same engine settings as the app). It is the
most any approve can hope for on this stack. Not part of the product: `gunicorn
benchmarks.ceiling:app` with CEILING_DATABASE_URL (and CEILING_SCHEMA on PostgreSQL).
"""

from __future__ import annotations

import os
import random
from typing import Any

from sqlalchemy import Column, DateTime, Integer, MetaData, Table, func, select, update
from sqlalchemy.engine import Engine

from workflow.db import make_engine, utcnow

ROWS = 1000  # like approvals on unrelated documents: row locks rarely collide
metadata = MetaData()
counters = Table("ceiling_counters", metadata, Column("id", Integer, primary_key=True),
                 Column("n", Integer, nullable=False))  # fmt: skip
writes = Table("ceiling_writes", metadata, Column("id", Integer, primary_key=True),
               Column("counter_id", Integer, nullable=False),
               Column("at", DateTime(timezone=True), nullable=False))  # fmt: skip


def engine_for(url: str, schema: str | None) -> Engine:
    if schema:
        return make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    return make_engine(url)


def prepare(engine: Engine) -> None:
    """Create the two tables and the counter rows (before the server starts)."""
    metadata.drop_all(engine)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(counters.insert(), [{"id": i, "n": 0} for i in range(1, ROWS + 1)])


def total_writes(engine: Engine) -> int:
    with engine.begin() as conn:
        return conn.scalar(select(func.count()).select_from(writes)) or 0


_engine: Engine | None = None


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    global _engine
    if _engine is None:  # per worker, after gunicorn forks
        _engine = engine_for(os.environ["CEILING_DATABASE_URL"], os.environ.get("CEILING_SCHEMA"))
    if environ["REQUEST_METHOD"] != "POST":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ceiling\n"]
    row = random.randint(1, ROWS)
    with _engine.begin() as conn:
        conn.execute(select(counters.c.n).where(counters.c.id == row).with_for_update())
        conn.execute(writes.insert().values(counter_id=row, at=utcnow()))
        conn.execute(update(counters).where(counters.c.id == row).values(n=counters.c.n + 1))
    body = b'{"ok":true}'
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])  # fmt: skip
    return [body]
