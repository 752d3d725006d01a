"""Managing flow definitions: check a text, list versions, publish with a note, and keep four
eyes on the rules themselves (a change that weakens review waits for a second flow admin).

Publishing itself is services.publish_flow (one transaction, audited with the YAML hash); this
module decides whether a text may be published now or must wait, and answers the editor's reads.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workflow import audit, policy, services
from workflow.definitions.build import load_flow
from workflow.definitions.spec import FlowSpec
from workflow.errors import (
    CheckedDefinitionError,
    Conflict,
    DefinitionError,
    Forbidden,
    InvalidData,
    NotFound,
)
from workflow.models import Document, FlowChange, FlowVersion, User
from workflow.process import compiled

MAX_NOTE_LENGTH = 500
NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,39}", re.ASCII)


def require_admin(actor: User | None) -> None:
    """Only an active flow administrator manages definitions (checked before reading the text)."""
    if actor is None:
        raise Forbidden("only a flow administrator (流程管理员) may manage flows")
    policy.can_publish(actor).enforce()  # the one rule (workflow/policy.py)


def check_text(text: str, name: str) -> FlowSpec:
    """Validate a definition's text as the flow `name`; raise CheckedDefinitionError (each
    problem with its line, message and hint) listing every problem."""
    try:
        return load_flow(text, f"{name}.yaml")
    except DefinitionError as exc:
        raise CheckedDefinitionError(exc.problems) from None


def text_diff(old: str, new: str, old_label: str = "published", new_label: str = "edited") -> str:
    """A unified diff of two definition texts (empty when they are equal)."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), old_label, new_label
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


# --- what counts as weakening review --------------------------------------------------------------
def weakenings(old: FlowSpec, new: FlowSpec) -> list[str]:
    """The ways `new` asks less of reviewers than `old`, in words (empty: not weaker)."""
    reasons = []
    for state in old.states:
        if state.review is None:
            continue
        if not new.has_state(state.name) or new.state(state.name).review is None:
            reasons.append(f"review state `{state.name}` is removed")
            continue
        before, after = state.review, new.state(state.name).review
        assert after is not None
        if after.required < before.required:
            reasons.append(
                f"`{state.name}` needs {after.required} approvals instead of {before.required}"
            )
        dropped = [r for r in before.roles if r not in after.roles]
        if dropped:
            reasons.append(
                f"`{state.name}` no longer needs reviewers with role "
                + ", ".join(f"`{r}`" for r in dropped)
            )
        if before.require_each_role and not after.require_each_role:
            reasons.append(f"`{state.name}` no longer requires each role among the approvers")
        if after.allow_earlier_reviewers and not before.allow_earlier_reviewers:
            reasons.append(f"`{state.name}` lets people who approved earlier approve again")
    return reasons


# --- reads ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VersionInfo:
    version: int
    published_by: str | None
    published_at: object
    note: str
    open_documents: int
    content_hash: str


def versions(session: Session, name: str) -> list[VersionInfo]:
    """Every version of a flow, newest first, with how many unfinished documents are on it."""
    rows = list(
        session.scalars(
            select(FlowVersion)
            .where(FlowVersion.flow_name == name)
            .order_by(FlowVersion.version.desc())
        )
    )
    if not rows:
        raise NotFound(f"no published flow named `{name}`")
    counts: dict[tuple[int, str], int] = {}
    for version_id, state, count in session.execute(
        select(Document.flow_version_id, Document.state, func.count())
        .where(Document.flow_name == name)
        .group_by(Document.flow_version_id, Document.state)
    ):
        counts[(version_id, state)] = count
    result = []
    for row in rows:
        spec = compiled(row).spec
        open_count = sum(
            n
            for (vid, state), n in counts.items()
            if vid == row.id and not (spec.has_state(state) and spec.state(state).final)
        )
        result.append(
            VersionInfo(
                version=row.version,
                published_by=row.created_by.username if row.created_by else None,
                published_at=row.created_at,
                note=row.note or "",
                open_documents=open_count,
                content_hash=row.content_hash,
            )
        )
    return result


def version(session: Session, name: str, number: int | None = None) -> FlowVersion:
    """One stored version (the current one when `number` is None)."""
    if number is None:
        row = services.current_version(session, name)
    else:
        row = session.scalar(
            select(FlowVersion).where(FlowVersion.flow_name == name, FlowVersion.version == number)
        )
    if row is None:
        which = "published version" if number is None else f"version {number}"
        raise NotFound(f"no {which} of a flow named `{name}`")
    return row


def pending_changes(session: Session, name: str) -> list[FlowChange]:
    return list(
        session.scalars(
            select(FlowChange)
            .where(FlowChange.flow_name == name, FlowChange.status == "pending")
            .order_by(FlowChange.id)
        )
    )


# --- publishing -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """What a publish did: a new version, nothing (same text), or a change pending approval."""

    version: FlowVersion | None
    created: bool
    change: FlowChange | None = None


def _note(note: str | None) -> str:
    note = (note or "").strip()
    if len(note) > MAX_NOTE_LENGTH:
        raise InvalidData(
            {"note": [f"at most {MAX_NOTE_LENGTH} characters"]}, "the change note is too long"
        )
    return note


def publish(
    session: Session, text: str, name: str, actor: User, note: str | None = None
) -> Outcome:
    """Publish `text` as the next version of `name`, unless it weakens review: then store it as
    a change pending a second flow admin's approval. Invalid text stores nothing."""
    require_admin(actor)
    note = _note(note)
    spec = load_flow(text, f"{name}.yaml")
    current = services.current_version(session, name)
    if current is not None and current.content_hash != services.content_hash(text):
        reasons = weakenings(compiled(current).spec, spec)
        if reasons:
            return Outcome(
                None, False, _propose(session, spec, text, current, actor, note, reasons)
            )
    row, created = services.publish_flow(session, text, f"{name}.yaml", actor, note=note)
    return Outcome(row, created)


def _propose(
    session: Session,
    spec: FlowSpec,
    text: str,
    current: FlowVersion,
    actor: User,
    note: str,
    reasons: list[str],
) -> FlowChange:
    change = FlowChange(
        flow_name=spec.name,
        base_version=current.version,
        yaml_text=text,
        content_hash=services.content_hash(text),
        note=note,
        reasons=reasons,
        status="pending",
        proposed_by_id=actor.id,
    )
    session.add(change)
    session.flush()
    audit.append(
        session,
        audit.SYSTEM_CHAIN,
        actor=actor.username,
        action="propose_flow",
        outcome="ok",
        flow=spec.name,
        flow_version=current.version,
        comment=note,
        details={
            "change": change.id,
            "content_hash": change.content_hash,
            "weakens": reasons,
            "diff": text_diff(current.yaml_text, text)[:20000],
        },
    )
    session.commit()
    return change


def approve_change(session: Session, name: str, change_id: int, actor: User) -> Outcome:
    """A second flow admin approves a pending change: it is published as the next version."""
    require_admin(actor)
    change = session.scalar(
        select(FlowChange)
        .where(FlowChange.id == change_id, FlowChange.flow_name == name)
        .with_for_update(of=FlowChange)
    )
    if change is None or change.status != "pending":
        raise NotFound(f"no pending change {change_id} of flow `{name}`")
    if change.proposed_by_id == actor.id:
        raise Forbidden("a change that weakens review needs a second flow administrator")
    current = services.current_version(session, name)
    if current is None or current.version != change.base_version:
        raise Conflict(
            f"flow `{name}` was published again since this change was proposed; propose it anew"
        )
    change.status = "approved"
    change.decided_by_id = actor.id
    change.decided_at = audit.utcnow()
    proposer = session.get(User, change.proposed_by_id)
    note = change.note or ""
    row, created = services.publish_flow(
        session,
        change.yaml_text,
        f"{name}.yaml",
        proposer,
        note=note,
        approved_by=actor.username,
    )
    return Outcome(row, created, change)


# --- moving documents in flight -------------------------------------------------------------------
@dataclass(frozen=True)
class MigrationRow:
    """What migrating one document would do (the preview; services.migrate_documents applies)."""

    document_id: int
    from_version: int
    from_state: str
    to_state: str
    problems: tuple[str, ...]
    voided: tuple[str, ...]  # who approved in the current round: their approvals stop counting


def in_flight(session: Session, name: str) -> list[Document]:
    """Unfinished documents of `name` on versions older than the current one, oldest first."""
    current = services.current_version(session, name)
    if current is None:
        raise NotFound(f"no published flow named `{name}`")
    rows = session.scalars(
        select(Document)
        .where(Document.flow_name == name, Document.flow_version_id != current.id)
        .order_by(Document.id)
    )
    return [d for d in rows if not compiled(d.flow_version).spec.state(d.state).final]


def preview_migration(
    session: Session, name: str, document_ids: list[int], mapping: dict[str, str], actor: User
) -> list[MigrationRow]:
    """Per chosen document: where it would go, why it cannot, and whose approvals it voids.
    The same rules as services.migrate_documents, which applies the move; nothing is stored."""
    from workflow import fields as field_types
    from workflow.process import DocumentProcess

    require_admin(actor)
    target = services.current_version(session, name)
    if target is None:
        raise NotFound(f"no published flow named `{name}`")
    spec = compiled(target).spec
    chosen = set(document_ids)
    rows = []
    for document in in_flight(session, name):
        if document.id not in chosen:
            continue
        process = DocumentProcess(session, document)
        new_state = mapping.get(document.state) or document.state
        problems = []
        if not spec.has_state(new_state):
            problems.append(
                f"state `{document.state}` does not exist in version {target.version}; map it"
            )
        try:
            field_types.clean_data(spec.fields, document.data)
        except InvalidData as exc:
            problems.append(
                "its data does not fit the new fields: " + ", ".join(sorted(exc.errors))
            )
        voided = (
            tuple(r.user.username for r in process.current_approvals())
            if process.state.is_review
            else ()
        )
        rows.append(
            MigrationRow(
                document.id,
                document.flow_version.version,
                document.state,
                new_state,
                tuple(problems),
                voided,
            )
        )
    return rows
