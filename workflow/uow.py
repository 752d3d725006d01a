"""The unit of work: one use case, one transaction — committed whole, or rolled back whole.

Services open one with `unit_of_work(session, actor, action)` and never commit, roll back or
record a refusal themselves. On the way out the unit of work:

- runs the `before_commit` hooks (the response is built and an idempotency key stored from the
  transaction's own objects, in the same transaction), then commits;
- on a refusal (and on invalid input or a hidden document, which are refusals too) rolls back
  and records a security event in a transaction of its own (rule 6: every action, allowed or
  refused, leaves an audit event; a refused one changes nothing else);
- turns a constraint or lock failure into `Conflict`, and a connection lost while committing
  into `CommitUnknown` (the change may be stored: the client must retry with its
  Idempotency-Key, not be told "conflict").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from workflow import audit
from workflow.errors import (
    CommitUnknown,
    Conflict,
    DatabaseGone,
    DefinitionError,
    InvalidData,
    NotFound,
    Refused,
    Unavailable,
    WorkflowError,
)
from workflow.models import Document, User

MAX_RECORDED_COMMENT = 2000

Hook = Callable[[], None]


@dataclass
class UnitOfWork:
    """What the running use case tells the unit of work about itself."""

    session: Session
    actor: User | None
    action: str
    # What a refusal is recorded against: a document, or else a flow (creating) or a target.
    document: Document | None = None
    flow: str | None = None
    flow_version: int | None = None
    target: str | None = None
    comment: str = ""
    hooks: list[Hook] = field(default_factory=list)

    def before_commit(self, hook: Hook) -> None:
        """Run `hook` inside the transaction, after the change and before the commit."""
        self.hooks.append(hook)


@contextmanager
def unit_of_work(
    session: Session, actor: User | None, action: str, **about: Any
) -> Iterator[UnitOfWork]:
    """Run one use case in one transaction (see the module docstring)."""
    uow = UnitOfWork(session, actor, action, **about)
    try:
        yield uow
        for hook in uow.hooks:
            hook()
        session.flush()
    except Refused as refused:
        session.rollback()
        _record_refusal(uow, refused.code, refused.message)
        refused.recorded = True
        raise
    except (InvalidData, NotFound) as error:
        session.rollback()
        _record_refusal(uow, error.code, _summary(error))
        error.recorded = True
        raise
    except WorkflowError:
        session.rollback()
        raise
    except (IntegrityError, DBAPIError) as exc:  # a constraint or a lock caught a concurrent change
        session.rollback()
        if exc.connection_invalidated:  # not a conflict: the database went away mid-way
            raise DatabaseGone() from exc
        raise Conflict("someone changed this document at the same time; reload and retry") from exc
    except BaseException:
        session.rollback()  # release the row lock (and SQLite's write lock) before raising
        raise
    try:
        session.commit()
    except DBAPIError as exc:
        session.rollback()
        if exc.connection_invalidated:
            raise CommitUnknown(
                "the connection to the database broke while saving; the change may or may not "
                "have been stored — retry with the same Idempotency-Key, or reload and check"
            ) from exc
        raise Conflict("someone changed this document at the same time; reload and retry") from exc


def record_refused_request(
    session: Session, actor: User | None, action: str, code: str, message: str, target: str
) -> None:
    """A request refused before any use case ran (a bad body, a refused number…): its security
    event, in a transaction of its own. Nothing but the bounded message is stored."""
    uow = UnitOfWork(session, actor, action[:40], target=target[:200])
    session.rollback()
    _record_refusal(uow, code, message[:300])


def summary(error: WorkflowError) -> str:
    """What a refusal's security event says (bounded; never the refused values)."""
    return _summary(error)


def _summary(error: WorkflowError) -> str:
    if isinstance(error, InvalidData):
        # Field names only: the refused values may be anything, of any size.
        return "invalid: " + ", ".join(sorted(str(k)[:60] for k in error.errors)[:20])
    if isinstance(error, DefinitionError):
        return "invalid definition"
    return error.message[:300]


def _record_refusal(uow: UnitOfWork, code: str, message: str) -> None:
    """The refusal's security event, in a transaction of its own (nothing else is stored)."""
    session = uow.session
    try:
        document = uow.document
        if document is not None:
            document = session.get(Document, document.id)
        audit.record_refusal(
            session,
            actor=uow.actor.username if uow.actor is not None else None,
            action=uow.action,
            code=code,
            message=message,
            document=document,
            flow=uow.flow,
            flow_version=uow.flow_version,
            target=uow.target,
            comment=uow.comment[:MAX_RECORDED_COMMENT],
        )
        session.commit()
    except DBAPIError as exc:
        session.rollback()
        if exc.connection_invalidated:
            # The refusal stands, but its security event could not be written: say so as an
            # outage (503, retry), never as a crash, and never answer without the record.
            raise Unavailable(
                "the connection to the database broke while recording this refusal; nothing was "
                "changed — retry in a moment"
            ) from exc
        raise
    except Exception:
        session.rollback()
        raise
