"""Bulk approve: many tasks of one flow and one state decided in one request, each on its own —
its own transaction, its own audit event (allowed or refused), its own answer. One refused item
never holds back or undoes another."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflow import services
from workflow.errors import BulkNotAllowed, InvalidData, NotInSelection, WorkflowError
from workflow.models import Document, User
from workflow.process import DocumentProcess
from workflow.tasklist import visible

__all__ = ["ACTIONS", "MAX_ITEMS", "BulkNotAllowed", "NotInSelection", "act_each", "selection"]

MAX_ITEMS = 50
ACTIONS = ("approve",)  # a rejection needs its own reason: never in bulk


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


def selection(session: Session, actor: User, items: list[tuple[int, int]]) -> tuple[str, str]:
    """The one (flow, state) the selected tasks are in — of those the actor may see (the others
    are answered `not_found` on their own). Tasks of several flows or states are refused as a
    whole (422, nothing decided): a bulk approve is for a screenful of the same kind of task."""
    ids = sorted({doc_id for doc_id, _ in items})
    found = set(
        session.execute(
            select(Document.flow_name, Document.state)
            .where(Document.id.in_(ids), visible(session, actor))
            .distinct()
        ).all()
    )
    session.rollback()  # the read's transaction ends; each action opens its own
    if len(found) > 1:
        kinds = ", ".join(sorted(f"{flow}/{state}" for flow, state in found))
        raise InvalidData(
            {"items": [f"must all be of one flow and one state, not {kinds}"]},
            "a bulk approve covers tasks of one flow and one state "
            "(一次只批同一流程、同一状态的单据)",
        )
    return found.pop() if found else ("", "")


def act_each(
    session: Session,
    actor: User,
    action: str,
    items: list[tuple[int, int]],
    comment: str = "",
    chosen: tuple[str, str] | None = None,
    checks: Mapping[str, Any] | None = None,
) -> list[ItemResult]:
    """`action` on each (document id, revision) in turn, each through `services.act`, which
    checks under the row lock that the document is still of the selected flow and state and
    that its flow allows bulk approval (refusals are audited like any other).

    `chosen` is the (flow, state) the tasks were selected in, when the caller says so (the
    inbox's form does): a task that moved on since is then answered on its own
    (`not_in_selection`). Otherwise the tasks must be of one flow and state now.

    `checks` is the state's checklist, confirmed once for every selected task (the reviewer
    confirms each point for each document); without every point each task is refused on its
    own (`checklist_incomplete`), as a single approval would be."""
    check_items(action, items)
    if chosen is None:
        chosen = selection(session, actor, items)
    results = []
    for doc_id, revision in items:
        result = ItemResult(doc_id)
        try:
            result.process = services.act(
                session,
                doc_id,
                actor,
                action,
                revision,
                comment,
                checks=checks,
                selection=chosen,
            )
        except WorkflowError as exc:
            session.rollback()
            result.error = exc
        results.append(result)
    return results
