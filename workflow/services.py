"""Use cases: each command is one transaction that commits once or rolls back whole.

Services take explicit arguments (a session, the acting user, ids) and never see a request.
Concurrency is the database's job: the document row is locked (`SELECT … FOR UPDATE` on
PostgreSQL; SQLite transactions begin IMMEDIATE) before anything is read for a decision, and
unique constraints back every "exactly once".
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from workflow import audit
from workflow import fields as field_types
from workflow.definitions.build import load_flow
from workflow.definitions.spec import FlowSpec
from workflow.errors import (
    ActionNotAllowed,
    CheckFailed,
    Conflict,
    DefinitionError,
    Forbidden,
    InvalidData,
    NotFound,
    Refused,
    RoleNotAllowed,
    StaleRevision,
    WorkflowError,
)
from workflow.models import (
    Document,
    DocumentRevision,
    FlowVersion,
    Review,
    User,
)
from workflow.process import DocumentProcess, compiled, may_start
from workflow.review import quorum_reached

MAX_COMMENT_LENGTH = 2000


# --- flow definitions -----------------------------------------------------------------------------
def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def current_version(session: Session, flow_name: str) -> FlowVersion | None:
    return session.scalar(
        select(FlowVersion)
        .where(FlowVersion.flow_name == flow_name)
        .order_by(FlowVersion.version.desc())
        .limit(1)
    )


def publish_flow(
    session: Session,
    text: str,
    path: str,
    actor: User | None = None,
    note: str = "",
    approved_by: str | None = None,
) -> tuple[FlowVersion, bool]:
    """Store `text` as the flow's next version; (version, False) if it equals the current one.

    `note` is the publisher's change note; `approved_by` the second flow admin who approved a
    change that weakens review (workflow/flowadmin.py)."""
    _check_publisher(actor)
    try:
        extra = {"approved_by": approved_by} if approved_by else {}
        result = _stage_version(session, load_flow(text, path), text, actor, note, extra)
    except WorkflowError:
        session.rollback()
        raise
    session.commit()
    return result


def publish_files(session: Session, paths: Iterable[Path], actor: User | None = None) -> list[str]:
    """Publish every changed file in one transaction; if any is invalid, nothing is stored and
    the problems of every invalid file are reported together."""
    _check_publisher(actor)
    loaded, problems = [], []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        try:
            loaded.append((load_flow(text, str(path)), text))
        except DefinitionError as exc:
            problems.extend(exc.problems)
    if problems:
        raise DefinitionError(problems)
    lines = []
    try:
        for spec, text in loaded:
            version, created = _stage_version(session, spec, text, actor)
            state = "published" if created else "unchanged"
            lines.append(f"{version.flow_name}: version {version.version} ({state})")
    except WorkflowError:
        session.rollback()
        raise
    session.commit()
    return lines


def _check_publisher(actor: User | None) -> None:
    # Checked before the YAML is read: a non-admin learns nothing from validation messages.
    if actor is not None and ("flow_admin" not in actor.roles or not actor.active):
        raise Forbidden("only a flow administrator (流程管理员) may publish flows")


def _stage_version(
    session: Session,
    spec: FlowSpec,
    text: str,
    actor: User | None,
    note: str = "",
    extra: Mapping[str, Any] | None = None,
) -> tuple[FlowVersion, bool]:
    """Add the next version of `spec` (and its audit event) to the open transaction."""
    digest = content_hash(text)
    current = current_version(session, spec.name)
    if current is not None and current.content_hash == digest:
        return current, False
    version = FlowVersion(
        flow_name=spec.name,
        version=(current.version if current else 0) + 1,
        yaml_text=text,
        content_hash=digest,
        title_zh=spec.title.zh,
        title_en=spec.title.en,
        created_by_id=actor.id if actor else None,
        note=note,
    )
    session.add(version)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict("another version of this flow was published at the same time") from exc
    audit.append(
        session,
        audit.SYSTEM_CHAIN,
        actor=actor.username if actor else None,
        action="publish",
        outcome="ok",
        flow=spec.name,
        flow_version=version.version,
        comment=note,
        details={
            "content_hash": digest,
            "note": note,
            # What changed, for the auditors (bounded: a definition is at most 64 KB anyway).
            "diff": "".join(
                difflib.unified_diff(
                    current.yaml_text.splitlines(keepends=True) if current else [],
                    text.splitlines(keepends=True),
                    f"v{current.version}" if current else "empty",
                    f"v{version.version}",
                )
            ),
            **(extra or {}),
        },
    )
    return version, True


# --- documents ------------------------------------------------------------------------------------
def create_document(session: Session, actor: User, flow_name: str, data: Any) -> DocumentProcess:
    """Start a document on the flow's current version with validated data (revision 1)."""
    version = current_version(session, flow_name) if isinstance(flow_name, str) else None
    if version is None:
        session.rollback()
        raise NotFound(f"no published flow named `{flow_name}`")
    spec = compiled(version).spec
    initial = spec.state(spec.initial)
    if not may_start(spec, actor):
        refused = RoleNotAllowed(
            f"starting a `{flow_name}` document needs one of the roles "
            f"{', '.join(initial.editable_by)}"
        )
        number = version.version
        session.rollback()  # a refusal leaves an audit event and nothing else (rule 6)
        audit.append(
            session,
            audit.SYSTEM_CHAIN,
            actor=actor.username,
            action="create",
            outcome="refused",
            code=refused.code,
            flow=flow_name,
            flow_version=number,
            details={"message": refused.message},
        )
        session.commit()
        raise refused
    try:
        clean = field_types.clean_data(
            spec.fields, field_types.with_defaults(spec.fields, data or {})
        )
    except InvalidData:
        session.rollback()  # end the transaction: on SQLite it holds the write lock
        raise
    document = Document(
        flow_name=flow_name,
        flow_version_id=version.id,
        state=spec.initial,
        revision=1,
        review_round=0,
        data=clean,
        created_by_id=actor.id,
        entered_by_id=actor.id,
    )
    session.add(document)
    session.flush()
    session.add(DocumentRevision(document_id=document.id, number=1, data=clean, author_id=actor.id))
    audit.open_chain(session, audit.document_chain(document.id))
    _record(session, document, actor, "create", spec.initial, spec.initial)
    session.commit()
    return DocumentProcess(session, document)


def get_document(session: Session, document_id: int, actor: User) -> DocumentProcess:
    """The document if `actor` may see it; NotFound otherwise (existence is not disclosed)."""
    document = session.get(Document, document_id) if isinstance(document_id, int) else None
    if document is None:
        raise NotFound(f"document {document_id} does not exist or you may not see it")
    process = DocumentProcess(session, document)
    if not process.may_see(actor):
        raise NotFound(f"document {document_id} does not exist or you may not see it")
    return process


def edit_document(
    session: Session, document_id: int, actor: User, data: Any, revision: int
) -> DocumentProcess:
    """Replace the given fields (editable states only); starts a new revision."""
    process = _locked(session, document_id, actor)
    try:
        if not process.can_edit(actor):
            editors = ", ".join(process.state.editable_by)
            raise ActionNotAllowed(
                f"the data cannot be edited in state `{process.document.state}`"
                + (f" by you (editable by {editors})" if editors else "")
            )
        _check_revision(process.document, revision)
        if not isinstance(data, Mapping):
            raise InvalidData({"data": ["must be an object of field values"]})
        document = process.document
        merged = {**document.data, **data}
        clean = field_types.clean_data(process.spec.fields, merged)
        changed = sorted(
            k for k in set(clean) | set(document.data) if clean.get(k) != document.data.get(k)
        )
        allowed = {f.name for f in process.editable_fields()}
        locked = [k for k in changed if k not in allowed]
        if locked:
            raise ActionNotAllowed(
                f"{', '.join(locked)} cannot be changed in state `{document.state}`: it was "
                f"reviewed already (editable here: {', '.join(sorted(allowed))})",
                {"fields": locked, "editable_fields": sorted(allowed)},
            )
    except Refused as refused:
        _refuse(session, process.document, actor, "edit", refused, "")
    except InvalidData:
        session.rollback()  # release the row lock (and SQLite's write lock) before raising
        raise
    if not changed:
        session.rollback()
        return get_document(session, document_id, actor)
    document.revision += 1
    document.data = clean
    document.updated_at = audit.utcnow()
    session.add(
        DocumentRevision(
            document_id=document.id, number=document.revision, data=clean, author_id=actor.id
        )
    )
    _record(
        session,
        document,
        actor,
        "edit",
        document.state,
        document.state,
        details={"changed": changed},
    )
    _commit(session)
    return process


def act(
    session: Session,
    document_id: int,
    actor: User,
    action: str,
    revision: int,
    comment: str = "",
) -> DocumentProcess:
    """Take `action` on the document at `revision` (approve, reject or a definition action)."""
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT_LENGTH:
        raise InvalidData({"comment": [f"is longer than {MAX_COMMENT_LENGTH} characters"]})
    process = _locked(session, document_id, actor)
    document = process.document
    try:
        _check_revision(document, revision)
        refused = process.refusal(actor, action)
        if refused is not None:
            raise refused
        if action == "reject" and not comment:
            raise InvalidData(
                {"comment": ["a rejection needs a reason (驳回需填写原因)"]},
                "a rejection needs a reason",
            )
        if process.state.is_review:
            _decide(session, process, actor, action, comment)
        else:
            _transition(session, process, actor, action, comment)
    except Refused as refused:
        _refuse(session, document, actor, action, refused, comment)
    except (IntegrityError, DBAPIError) as exc:  # a constraint caught a concurrent change
        session.rollback()
        raise Conflict("someone changed this document at the same time; reload and retry") from exc
    except Exception:
        session.rollback()  # release the row lock (and SQLite's write lock) before raising
        raise
    _commit(session)
    return process


def _decide(
    session: Session, process: DocumentProcess, actor: User, action: str, comment: str
) -> None:
    document, state = process.document, process.state
    assert state.review is not None
    facts = process.review_facts()
    relaxed = actor.id in facts.approved_other_states and state.review.allow_earlier_reviewers
    session.add(
        Review(
            document_id=document.id,
            state=document.state,
            round=document.review_round,
            revision=document.revision,
            user_id=actor.id,
            decision=action,
            comment=comment,
        )
    )
    if action == "reject":
        assert state.on_reject is not None
        _record(session, document, actor, "reject", document.state, state.on_reject, comment)
        _enter(document, state.on_reject, actor, process)
        return
    approvals = len(set(facts.approved_this_round) | {actor.id})
    details: dict[str, Any] = {"approvals": approvals, "required": state.review.required}
    if relaxed:
        details["relaxed"] = "allow_earlier_reviewers"
    target = document.state
    if quorum_reached(facts, actor.id, actor.roles):
        resolved = process.flow.resolve("approve", document.state, process.typed_data())
        if resolved is None:
            raise ActionNotAllowed("no approval route applies to this document's data")
        target = resolved
    _record(session, document, actor, "approve", document.state, target, comment, details)
    if target != document.state:
        _enter(document, target, actor, process)


def _transition(
    session: Session, process: DocumentProcess, actor: User, action: str, comment: str
) -> None:
    document = process.document
    transition = process.transition(action)
    if transition is None:  # pragma: no cover - refusal() already checked this
        raise ActionNotAllowed(f"`{action}` is not possible now")
    data = process.typed_data()
    for check in transition.checks:
        if not check.rule.evaluate(data):
            raise CheckFailed(
                f"{check.message.zh} / {check.message.en}",
                {"rule": check.rule.source, "message": check.message.as_dict()},
            )
    _record(session, document, actor, action, document.state, transition.dest, comment)
    _enter(document, transition.dest, actor, process)


def _enter(document: Document, state: str, actor: User, process: DocumentProcess) -> None:
    """Move the document; entering a review state opens a fresh round (voiding old approvals)."""
    document.state = state
    document.entered_by_id = actor.id
    document.entered_at = audit.utcnow()
    document.updated_at = document.entered_at
    if process.spec.state(state).is_review:
        document.review_round += 1


def _locked(session: Session, document_id: int, actor: User) -> DocumentProcess:
    """Lock the document row for this transaction, then load it fresh."""
    if not isinstance(document_id, int) or isinstance(document_id, bool):
        raise NotFound(f"document {document_id} does not exist")
    try:
        found = session.execute(
            select(Document.id).where(Document.id == document_id).with_for_update()
        ).scalar_one_or_none()
    except DBAPIError as exc:
        session.rollback()
        raise Conflict("the document is busy; try again") from exc
    if found is None:
        session.rollback()
        raise NotFound(f"document {document_id} does not exist or you may not see it")
    document = session.scalars(
        select(Document).where(Document.id == document_id).execution_options(populate_existing=True)
    ).one()
    process = DocumentProcess(session, document)
    if not process.may_see(actor):
        session.rollback()
        raise NotFound(f"document {document_id} does not exist or you may not see it")
    return process


def _check_revision(document: Document, revision: Any) -> None:
    if isinstance(revision, bool) or not isinstance(revision, int):
        raise InvalidData({"revision": ["must be the revision number you reviewed"]})
    if revision != document.revision:
        raise StaleRevision(
            f"the document changed: you saw revision {revision}, it is now at revision "
            f"{document.revision}; review the new version",
            {"current_revision": document.revision},
        )


def _record(
    session: Session,
    document: Document,
    actor: User,
    action: str,
    from_state: str,
    to_state: str,
    comment: str = "",
    details: dict[str, Any] | None = None,
    outcome: str = "ok",
    code: str | None = None,
) -> None:
    audit.append(
        session,
        audit.document_chain(document.id),
        document_id=document.id,
        flow=document.flow_name,
        flow_version=document.flow_version.version,
        actor=actor.username,
        action=action,
        outcome=outcome,
        code=code,
        from_state=from_state,
        to_state=to_state,
        revision=document.revision,
        comment=comment,
        details=details,
    )


def _refuse(
    session: Session, document: Document, actor: User, action: str, refused: Refused, comment: str
) -> None:
    """Roll back everything, record the refusal in its own transaction, then raise it."""
    document_id = document.id
    session.rollback()
    document = session.get(Document, document_id)  # type: ignore[assignment]
    try:
        _record(
            session,
            document,
            actor,
            action if isinstance(action, str) else "?",
            document.state,
            document.state,
            comment[:MAX_COMMENT_LENGTH],
            {"message": refused.message},
            outcome="refused",
            code=refused.code,
        )
        session.commit()
    except Exception:
        session.rollback()
        raise
    raise refused


def _commit(session: Session) -> None:
    """Commit; a unique-constraint or lock failure means a concurrent change won."""
    try:
        session.commit()
    except (IntegrityError, DBAPIError) as exc:
        session.rollback()
        raise Conflict("someone changed this document at the same time; reload and retry") from exc


# --- reads ----------------------------------------------------------------------------------------
def list_flows(session: Session) -> list[FlowVersion]:
    """The current version of every published flow, by name."""
    latest = (
        select(FlowVersion.flow_name, func.max(FlowVersion.version).label("version"))
        .group_by(FlowVersion.flow_name)
        .subquery()
    )
    stmt = (
        select(FlowVersion)
        .join(
            latest,
            (FlowVersion.flow_name == latest.c.flow_name)
            & (FlowVersion.version == latest.c.version),
        )
        .order_by(FlowVersion.flow_name)
    )
    return list(session.scalars(stmt))


def record_overdue(session: Session, today: dt.date | None = None) -> list[int]:
    """Record an `overdue` audit event once per overdue document and due date.

    Safe to run from many hosts at once: the unique notice row decides who records it, and the
    loser's transaction is rolled back whole.
    """
    from workflow.models import OverdueNotice
    from workflow.queries import overdue

    recorded = []
    for process in overdue(session, today):
        document = process.document
        due = document.data[process.spec.overdue.field]  # type: ignore[union-attr]
        doc_id = document.id
        exists = select(OverdueNotice.id).where(
            OverdueNotice.document_id == doc_id, OverdueNotice.due_date == due
        )
        if session.scalar(exists) is not None:
            continue
        try:
            session.execute(select(Document.id).where(Document.id == doc_id).with_for_update())
            if session.scalar(exists) is not None:
                session.rollback()
                continue
            session.add(OverdueNotice(document_id=doc_id, due_date=due))
            session.flush()
            audit.append(
                session,
                audit.document_chain(doc_id),
                document_id=doc_id,
                flow=document.flow_name,
                flow_version=document.flow_version.version,
                actor=None,
                action="overdue",
                outcome="ok",
                from_state=document.state,
                to_state=document.state,
                revision=document.revision,
                details={"due": due},
            )
            session.commit()
        except IntegrityError:
            session.rollback()
            continue
        recorded.append(doc_id)
    return recorded


def migrate_documents(
    session: Session,
    flow_name: str,
    mapping: Mapping[str, str],
    actor: User | None = None,
    document_ids: Iterable[int] | None = None,
) -> list[int]:
    """Move every unfinished document of `flow_name` on an older version to the current one
    (only those in `document_ids`, when given: the migration page's choice).

    `mapping` renames states (old → new); unmapped states keep their name and must exist in the
    new version. Documents entering a review state start a fresh round: approvals given under
    the old definition do not carry over. All documents move, or none (one transaction).
    """
    if actor is not None and "flow_admin" not in actor.roles:
        raise Forbidden("only a flow administrator (流程管理员) may migrate documents")
    target = current_version(session, flow_name)
    if target is None:
        raise NotFound(f"no published flow named `{flow_name}`")
    spec = compiled(target).spec
    chosen = select(Document.id).where(
        Document.flow_name == flow_name, Document.flow_version_id != target.id
    )
    if document_ids is not None:
        chosen = chosen.where(Document.id.in_(list(document_ids)))
    ids = session.scalars(chosen.order_by(Document.id).with_for_update()).all()
    problems: dict[str, list[str]] = {}
    moves = []
    for doc_id in ids:
        document = session.get(Document, doc_id)
        assert document is not None
        old = DocumentProcess(session, document)
        if old.state.final:
            continue
        new_state = mapping.get(document.state, document.state)
        if not spec.has_state(new_state):
            problems.setdefault(f"document {doc_id}", []).append(
                f"state `{document.state}` does not exist in version {target.version}; "
                f"map it with {document.state}=<state>"
            )
            continue
        try:
            field_types.clean_data(spec.fields, document.data)
        except InvalidData as exc:
            problems.setdefault(f"document {doc_id}", []).append(
                "its data does not fit the new fields: " + ", ".join(sorted(exc.errors))
            )
            continue
        moves.append((document, document.flow_version.version, new_state))
    if problems:
        session.rollback()
        summary = "; ".join(f"{key}: {' '.join(text)}" for key, text in sorted(problems.items()))
        raise InvalidData(problems, f"nothing was migrated: {summary}")
    for document, old_version, new_state in moves:
        from_state = document.state
        document.flow_version_id = target.id
        document.flow_version = target
        document.state = new_state
        if spec.state(new_state).is_review:
            document.review_round += 1
        document.updated_at = audit.utcnow()
        audit.append(
            session,
            audit.document_chain(document.id),
            document_id=document.id,
            flow=flow_name,
            flow_version=target.version,
            actor=actor.username if actor else None,
            action="migrate",
            outcome="ok",
            from_state=from_state,
            to_state=new_state,
            revision=document.revision,
            details={"from_version": old_version, "to_version": target.version},
        )
    session.commit()
    return [document.id for document, _, _ in moves]
