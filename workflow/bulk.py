"""Bulk approve: many tasks decided in one request, each on its own — its own transaction, its
own audit event, its own answer. One refused item never holds back or undoes another."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from workflow import services
from workflow.errors import InvalidData, Refused, WorkflowError
from workflow.models import User
from workflow.process import DocumentProcess

MAX_ITEMS = 50
ACTIONS = ("approve",)  # a rejection needs its own reason: never in bulk


class BulkNotAllowed(Refused):
    """The flow says `bulk: false`: each document is decided on its own page."""

    code = "bulk_not_allowed"


@dataclass
class ItemResult:
    id: int
    process: DocumentProcess | None = None
    error: WorkflowError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def check_items(action: str, items: list[tuple[int, int]]) -> None:
    """The request as a whole: a bulk action, 1 to MAX_ITEMS items."""
    if action not in ACTIONS:
        raise InvalidData({"action": [f"must be one of {', '.join(ACTIONS)}"]})
    if not 1 <= len(items) <= MAX_ITEMS:
        raise InvalidData({"items": [f"must hold 1 to {MAX_ITEMS} items"]})


def act_each(
    session: Session,
    actor: User,
    action: str,
    items: list[tuple[int, int]],
    comment: str = "",
) -> list[ItemResult]:
    """`action` on each (document id, revision) in turn, each through `services.act`."""
    check_items(action, items)
    results = []
    for doc_id, revision in items:
        result = ItemResult(doc_id)
        try:
            process = services.get_document(session, doc_id, actor)
            if not process.spec.bulk:
                raise BulkNotAllowed(
                    f"`{process.spec.name}` documents are decided one by one, never in bulk "
                    "(此类单据须逐张审批)"
                )
            session.rollback()  # the read's transaction ends; act opens its own
            result.process = services.act(session, doc_id, actor, action, revision, comment)
        except WorkflowError as exc:
            session.rollback()
            result.error = exc
        results.append(result)
    return results
