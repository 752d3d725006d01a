"""Document numbers a person can say on the phone: `FH-2026-000123`, per flow and year.

The number comes from a counter row per (flow, year), bumped by one upsert inside the create
transaction: the row stays locked until that transaction ends, so a concurrent creation waits
and then gets the next number. A rolled-back creation rolls its bump back too, so the numbers
that exist are the numbers of documents that exist; a committed number is never given again.
"""

from __future__ import annotations

import datetime as dt
import os
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from workflow.definitions.spec import FlowSpec
from workflow.models import Document, DocumentCounter

# The year on the number is the business's calendar year, not UTC's (31 Dec 20:00 UTC is
# already New Year in Shanghai).
ZONE = ZoneInfo(os.environ.get("DISPLAY_TIMEZONE", "Asia/Shanghai"))
WIDTH = 6


def prefix_of(spec: FlowSpec) -> str:
    """The flow's number prefix: `number_prefix` from its definition, else its name."""
    return spec.number_prefix or spec.name.upper()


def format_number(prefix: str, year: int, sequence: int) -> str:
    """`FH-2026-000123`; more than 999,999 a year simply grows wider."""
    return f"{prefix}-{year}-{sequence:0{WIDTH}d}"


def next_number(session: Session, spec: FlowSpec, now: dt.datetime | None = None) -> str:
    """Take the next number of `spec`'s flow for this year, in the open transaction."""
    year = (now or dt.datetime.now(dt.UTC)).astimezone(ZONE).year
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(DocumentCounter).values(flow_name=spec.name, year=year, last=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[DocumentCounter.flow_name, DocumentCounter.year],
        set_={"last": DocumentCounter.last + 1},
    ).returning(DocumentCounter.last)
    sequence = session.execute(stmt).scalar_one()
    return format_number(prefix_of(spec), year, sequence)


def number_condition(text: str) -> ColumnElement[bool]:
    """Documents whose number is `text` or ends with it (`123` finds `FH-2026-000123`)."""
    text = text.strip().upper()
    if text.isdigit():
        return or_(Document.number.like(f"%-{text.zfill(WIDTH)}"), Document.id == int(text[:18]))
    return func.upper(Document.number) == text
