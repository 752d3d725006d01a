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
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workflow import audit, deadlines, numbering, policy, references
from workflow import fields as field_types
from workflow import unique as unique_values
from workflow.attachments import AttachmentStore
from workflow.calendar import CHINA
from workflow.definitions.build import load_flow
from workflow.definitions.spec import FlowSpec
from workflow.errors import (
    ActionNotAllowed,
    BulkNotAllowed,
    Claimed,
    Conflict,
    DefinitionError,
    InvalidData,
    NotFound,
    NotInSelection,
    WorkflowError,
)
from workflow.models import (
    Attachment,
    AuditEvent,
    Document,
    DocumentRevision,
    FlowVersion,
    TaskClaim,
    User,
)
from workflow.process import (
    MAX_COMMENT_LENGTH,
    DocumentProcess,
    check_comment,
    check_revision,
    compiled,
)
from workflow.uow import UnitOfWork, unit_of_work

__all__ = ["MAX_COMMENT_LENGTH"]


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
    policy.can_publish(actor).enforce()


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
Finish = Callable[[DocumentProcess], None]


def create_document(
    session: Session,
    actor: User,
    flow_name: str,
    data: Any,
    *,
    before_commit: Finish | None = None,
) -> DocumentProcess:
    """Start a document on the flow's current version with validated data (revision 1)."""
    with unit_of_work(session, actor, "create", flow=str(flow_name)[:40]) as uow:
        version = current_version(session, flow_name) if isinstance(flow_name, str) else None
        if version is None:
            raise NotFound(f"no published flow named `{flow_name}`")
        uow.flow_version = version.version
        spec = compiled(version).spec
        policy.can_start(actor, spec).enforce()
        clean = field_types.clean_data(
            spec.fields, field_types.with_defaults(spec.fields, data or {})
        )
        _only_drafted_fields(spec, clean)
        document = Document(
            flow_name=flow_name,
            flow_version_id=version.id,
            flow_version=version,
            number=numbering.next_number(session, spec),
            state=spec.initial,
            revision=1,
            review_round=0,
            data=clean,
            created_by_id=actor.id,
            created_by=actor,
            entered_by_id=actor.id,
            entered_by=actor,
            entered_at=audit.utcnow(),
        )
        document.due_at = deadlines.due_at(spec, spec.initial, document.entered_at, clean)
        session.add(document)
        session.flush()
        session.add(
            DocumentRevision(document_id=document.id, number=1, data=clean, author_id=actor.id)
        )
        process = DocumentProcess(session, document, reviews=[], editors={actor.id})
        unique_values.sync(session, document, spec)
        references.sync(session, document, spec)
        audit.open_chain(session, audit.document_chain(document.id))
        process.record(actor, "create", spec.initial, spec.initial)
        _finish(uow, process, before_commit)
    return process


def _only_drafted_fields(spec: FlowSpec, clean: dict[str, Any]) -> None:
    """An initial state that lists `editable_fields` keeps the others for later steps: the
    drafter may not fill them in at creation either (款到发货: finance confirms `paid`)."""
    allowed = spec.state(spec.initial).editable_fields
    if not allowed:
        return
    locked = sorted(
        f.name
        for f in spec.fields
        if f.name not in allowed and clean.get(f.name) not in (None, f.default)
    )
    if locked:
        raise ActionNotAllowed(
            f"{', '.join(locked)} cannot be filled in by the drafter: a later step records it "
            f"(editable when drafting: {', '.join(allowed)})",
            {"fields": locked, "editable_fields": list(allowed)},
        )


def get_document(session: Session, document_id: int, actor: User) -> DocumentProcess:
    """The document if `actor` may see it; NotFound otherwise (existence is not disclosed)."""
    return DocumentProcess.load(session, document_id, actor)


def edit_document(
    session: Session,
    document_id: int,
    actor: User,
    data: Any,
    revision: int,
    *,
    before_commit: Finish | None = None,
) -> DocumentProcess:
    """Replace the given fields (editable states only); starts a new revision."""
    with unit_of_work(session, actor, "edit", target=f"document {document_id}") as uow:
        process = DocumentProcess.load(session, document_id, actor, for_update=True)
        uow.document = process.document
        process.edit(actor, data, revision)
        _finish(uow, process, before_commit)
    return process


def act(
    session: Session,
    document_id: int,
    actor: User,
    action: str,
    revision: int,
    comment: str = "",
    *,
    checks: Mapping[str, Any] | None = None,
    failed_checks: list[str] | None = None,
    before_commit: Finish | None = None,
    selection: tuple[str, str] | None = None,
) -> DocumentProcess:
    """Take `action` on the document at `revision` (approve, reject or a definition action).

    `selection` is a bulk approve's (flow, state): the document must be of it — checked under
    the row lock, so a task that moved on since it was listed is refused, not decided in a
    state nobody selected — and its flow must allow bulk approval."""
    about = {
        "target": f"document {document_id}",
        "comment": comment if isinstance(comment, str) else "",
    }
    with unit_of_work(session, actor, action, **about) as uow:
        check_comment(comment)  # bounded input is refused before anything is read
        process = DocumentProcess.load(session, document_id, actor, for_update=True)
        uow.document = process.document
        if selection is not None:
            _check_selection(process, selection)
        process.apply(action, actor, revision, comment, checks, failed_checks)
        _finish(uow, process, before_commit)
    return process


def _check_selection(process: DocumentProcess, selection: tuple[str, str]) -> None:
    document = process.document
    if not process.spec.bulk:
        raise BulkNotAllowed(
            f"`{process.spec.name}` documents are decided one by one, never in bulk "
            "(此类单据须逐张审批)"
        )
    if (document.flow_name, document.state) != selection:
        raise NotInSelection(
            f"this document is `{document.flow_name}` in `{document.state}`, not the selected "
            f"`{selection[0]}` in `{selection[1]}`; open it and decide it on its own page "
            "(单据不属于所选流程与状态，请单独处理)"
        )


def comment(
    session: Session, document_id: int, actor: User, text: Any
) -> tuple[DocumentProcess, AuditEvent]:
    """A question or remark on a document without approving or rejecting it."""
    with unit_of_work(session, actor, "comment", target=f"document {document_id}") as uow:
        text = check_comment(text)
        if not text:
            raise InvalidData({"text": ["write the comment"]})
        process = DocumentProcess.load(session, document_id, actor)
        uow.document = process.document
        policy.can_comment(actor).enforce()
        document = process.document
        event = process.record(actor, "comment", document.state, document.state, text)
    return process, event


def attach(
    session: Session,
    store: AttachmentStore,
    document_id: int,
    actor: User,
    stream: BinaryIO,
    name: str | None,
    revision: Any,
    *,
    before_commit: Callable[[DocumentProcess, Attachment], None] | None = None,
) -> tuple[DocumentProcess, Attachment]:
    """Attach a file to the document at `revision` (rule `attach`): a new revision.

    Who may attach and the revision are checked before the upload is even copied; then the
    file is hashed, measured and its type read from its first bytes. It is moved into the
    store (atomic rename; a file with the same hash is reused) only after everything else is
    done, just before the commit; a refusal or failure leaves no file and no row behind."""
    staged = None
    try:
        with unit_of_work(session, actor, "attach", target=f"document {document_id}") as uow:
            process = DocumentProcess.load(session, document_id, actor, for_update=True)
            uow.document = process.document
            policy.can_attach(actor, process.document, process.spec).enforce()
            check_revision(process.document, revision)
            staged = store.stage(stream, name)
            attachment = process.attach(actor, staged, revision)
            if before_commit is not None:
                uow.before_commit(lambda: before_commit(process, attachment))
            # Last, after a flush (constraints answer first): only the commit itself can still
            # fail after the rename, and then the file stays unreferenced — harmless, it is
            # named by its content, and the next upload of the same content reuses it.
            uow.before_commit(lambda: (session.flush(), staged.keep()))
    finally:
        if staged is not None and not staged.kept:
            staged.discard()  # refused or failed: no file left behind
    return process, attachment


def open_attachment(
    session: Session, store: AttachmentStore, document_id: int, attachment_id: int, actor: User
) -> tuple[Attachment, Path]:
    """An attachment and its stored file, for someone who may open it (rule
    `open_attachment`); NotFound when the document is not visible to them."""
    process = DocumentProcess.load(session, document_id, actor)
    attachment = session.get(Attachment, attachment_id)
    if attachment is None or attachment.document_id != process.document.id:
        raise NotFound(f"document {document_id} has no attachment {attachment_id}")
    verdict = policy.can_open_attachment(actor, process.document, process.spec)
    if not verdict:
        policy.can_open_attachment(
            actor, process.document, process.spec, process.acted_on(actor)
        ).enforce()
    path = store.open(attachment.sha256)
    if path is None:
        raise NotFound(
            f"the file of attachment {attachment_id} is missing from the attachment store; "
            "tell the administrator (the audit log keeps its SHA-256)"
        )
    return attachment, path


CLAIM_MINUTES = 30


def claim(
    session: Session, document_id: int, actor: User, minutes: int = CLAIM_MINUTES
) -> DocumentProcess:
    """Say "I am on it" for `minutes`; never blocks anyone from acting (a soft lock)."""
    with unit_of_work(session, actor, "claim", target=f"document {document_id}") as uow:
        process = DocumentProcess.load(session, document_id, actor, for_update=True)
        document = uow.document = process.document
        if not process.actions_for(actor):
            raise ActionNotAllowed("there is nothing for you to do on this document to claim")
        held = process.active_claim()
        if held is not None and held.user_id != actor.id:
            raise Claimed(
                f"{held.user.name} is on it until {held.until:%H:%M} (UTC); you may still act",
                {"user": held.user.username, "until": held.until.isoformat()},
            )
        until = audit.utcnow() + dt.timedelta(minutes=minutes)
        row = session.get(TaskClaim, document.id)
        if row is None:
            row = TaskClaim(document_id=document.id, user_id=actor.id, state="", until=until)
            session.add(row)
        row.user_id, row.user, row.until, row.claimed_at = actor.id, actor, until, audit.utcnow()
        row.state, row.round = document.state, document.review_round
        document.claim = row
        process.record(actor, "claim", document.state, document.state,
                       details={"until": until.isoformat()})  # fmt: skip
    return process


def release_claim(session: Session, document_id: int, actor: User) -> DocumentProcess:
    """Give a claim up (only its holder; an expired one is gone anyway)."""
    with unit_of_work(session, actor, "release", target=f"document {document_id}") as uow:
        process = DocumentProcess.load(session, document_id, actor, for_update=True)
        document = uow.document = process.document
        row = session.get(TaskClaim, document.id)
        if row is None or row.user_id != actor.id:
            raise ActionNotAllowed("you hold no claim on this document")
        session.delete(row)
        document.claim = None
        process.record(actor, "release", document.state, document.state)
    return process


def _finish(uow: UnitOfWork, process: DocumentProcess, before_commit: Finish | None) -> None:
    if before_commit is not None:
        uow.before_commit(lambda: before_commit(process))


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
    """`tick` as of the start of `today` (China time): the documents newly marked overdue.

    Reminders and escalations go with it (workflow/deadlines.py); safe on many hosts at once."""
    now = None
    if today is not None:
        now = dt.datetime.combine(today, dt.time(), CHINA).astimezone(dt.UTC)
    return deadlines.tick(session, now).overdue


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
    policy.can_publish(actor).enforce()
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
        document.due_at = deadlines.due_at(spec, new_state, document.entered_at, document.data)
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
