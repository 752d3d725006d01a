"""What a person last saw of a document: recorded when they open it, compared on their lists —
"changed since you saw it" (a new revision) and "resubmitted" (back in the same review state in
a new round). One small indexed read per list page; the list's own query is untouched."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from workflow.db import utcnow
from workflow.models import Document, DocumentSeen, User

CHANGED = "changed"
RESUBMITTED = "resubmitted"


def mark(session: Session, user: User, document: Document) -> None:
    """Record that `user` has the document on screen as it is now (one upsert, own commit).
    Best effort: when the database is busy the mark is skipped, never the page."""
    values = {
        "user_id": user.id,
        "document_id": document.id,
        "revision": document.revision,
        "state": document.state,
        "review_round": document.review_round,
        "seen_at": utcnow(),
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(DocumentSeen).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["user_id", "document_id"],
        set_={k: stmt.excluded[k] for k in ("revision", "state", "review_round", "seen_at")},
    )
    try:
        session.execute(stmt)
        session.commit()
    except DBAPIError:  # a busy database (SQLite's write lock) must not fail a page view
        session.rollback()


def change(document: Document, seen: DocumentSeen | None) -> str | None:
    """RESUBMITTED, CHANGED or None, for a document against what its viewer last saw."""
    if seen is None:
        return None  # never opened: nothing to compare with
    if document.state == seen.state and document.review_round > seen.review_round:
        return RESUBMITTED
    if document.revision > seen.revision:
        return CHANGED
    return None


def last_seen(session: Session, user: User, document_id: int) -> DocumentSeen | None:
    return session.get(DocumentSeen, (user.id, document_id))


def changes(session: Session, user: User, documents: Iterable[Document]) -> dict[int, str]:
    """document id → its change since `user` last saw it, for one list page (one query)."""
    by_id = {d.id: d for d in documents}
    if not by_id:
        return {}
    rows = session.scalars(
        select(DocumentSeen).where(
            DocumentSeen.user_id == user.id, DocumentSeen.document_id.in_(list(by_id))
        )
    )
    found = {row.document_id: change(by_id[row.document_id], row) for row in rows}
    return {doc_id: kind for doc_id, kind in found.items() if kind}
