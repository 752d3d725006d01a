"""The append-only, hash-chained audit log: append, verify, and the head to keep outside.

Each document has its own chain (appends are serialized by that chain's row lock, so unrelated
documents never queue behind each other); `system` holds events that belong to no document.
Chains are registered in order in a chained registry, so removing a whole chain is detected.
The root printed by `verify` digests every chain head: auditors keep it outside the database,
because someone with write access to the database could otherwise rebuild every hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workflow.db import as_utc, utcnow
from workflow.models import AuditChain, AuditEvent, Document

GENESIS = "0" * 64
SYSTEM_CHAIN = "system"
HASHED_FIELDS = (
    "id", "at", "chain_key", "chain_seq", "prev_hash", "document_id", "flow", "flow_version",
    "actor", "action", "outcome", "code", "from_state", "to_state", "revision", "comment",
    "details",
)  # fmt: skip


def document_chain(document_id: int) -> str:
    return f"document:{document_id}"


def _canonical(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return as_utc(value).replace(tzinfo=None).isoformat(timespec="microseconds")
    return value


def event_hash(event: AuditEvent) -> str:
    """SHA-256 over the event's canonical JSON (which includes the previous event's hash)."""
    payload = {name: _canonical(getattr(event, name)) for name in HASHED_FIELDS}
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def registry_hash(key: str, position: int, prev_hash: str) -> str:
    return hashlib.sha256(f"{prev_hash}|{position}|{key}".encode()).hexdigest()


def _lock_chain(session: Session, key: str) -> AuditChain | None:
    stmt = select(AuditChain).where(AuditChain.key == key).with_for_update()
    return session.scalars(stmt.execution_options(populate_existing=True)).one_or_none()


def ensure_system_chain(session: Session) -> AuditChain:
    """The registry's first entry; created by setup, found afterwards."""
    chain = _lock_chain(session, SYSTEM_CHAIN)
    if chain is None:
        chain = AuditChain(
            key=SYSTEM_CHAIN,
            position=0,
            prev_hash=GENESIS,
            hash=registry_hash(SYSTEM_CHAIN, 0, GENESIS),
            length=0,
            head=GENESIS,
        )
        session.add(chain)
        session.flush()
    return chain


def open_chain(session: Session, key: str) -> AuditChain:
    """Register a new chain; serialized on the system chain's row (chains open rarely)."""
    ensure_system_chain(session)
    last = session.scalars(select(AuditChain).order_by(AuditChain.position.desc()).limit(1)).one()
    position = last.position + 1
    chain = AuditChain(
        key=key,
        position=position,
        prev_hash=last.hash,
        hash=registry_hash(key, position, last.hash),
        length=0,
        head=GENESIS,
    )
    session.add(chain)
    session.flush()
    return chain


def append(session: Session, chain_key: str, **fields: Any) -> AuditEvent:
    """Append one event to `chain_key` inside the caller's transaction (locks that chain)."""
    chain = _lock_chain(session, chain_key)
    if chain is None:
        chain = ensure_system_chain(session) if chain_key == SYSTEM_CHAIN else None
    if chain is None:
        chain = open_chain(session, chain_key)
    event = AuditEvent(
        at=utcnow(),
        chain_key=chain_key,
        chain_seq=chain.length + 1,
        prev_hash=chain.head,
        hash="",
        comment=fields.pop("comment", None) or "",
        **fields,
    )
    session.add(event)
    session.flush()  # assigns the id, which the hash covers (so reordering rows is detected)
    event.hash = event_hash(event)
    chain.length = event.chain_seq
    chain.head = event.hash
    session.flush()
    return event


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events: int
    chains: int
    root: str
    problem: str | None = None
    bad_event: int | None = None


def _root(chains: list[AuditChain]) -> str:
    digest = hashlib.sha256()
    for chain in chains:
        digest.update(f"{chain.key}|{chain.length}|{chain.head}\n".encode())
    return digest.hexdigest()


def verify(session: Session, batch: int = 2000) -> VerifyResult:
    """Walk the registry and every chain; report the first event that does not check out."""
    chains = list(session.scalars(select(AuditChain).order_by(AuditChain.position)))
    # The registry has no head of its own: removing the newest chain leaves it consistent. So
    # every document still in the database must still have its history.
    keys = {c.key for c in chains}
    for document_id in session.scalars(select(Document.id).order_by(Document.id)):
        if document_chain(document_id) not in keys:
            return _fail(chains, 0, f"document {document_id} has no audit history: its chain "
                         f"`{document_chain(document_id)}` was deleted")  # fmt: skip
    prev = GENESIS
    for expected_position, chain in enumerate(chains):
        if chain.position != expected_position or chain.prev_hash != prev:
            return _fail(chains, 0, f"chain registry broken at `{chain.key}`: a chain is missing")
        if chain.hash != registry_hash(chain.key, chain.position, chain.prev_hash):
            return _fail(chains, 0, f"chain registry entry `{chain.key}` was altered")
        prev = chain.hash
    known = {c.key: c for c in chains}
    total = session.scalar(select(func.count()).select_from(AuditEvent)) or 0
    seen = 0
    cursor: tuple[str, int] = ("", 0)
    state: dict[str, tuple[int, str, int]] = {}  # key → (last seq, last hash, last id)
    while True:
        rows = list(
            session.scalars(
                select(AuditEvent)
                .where(
                    (AuditEvent.chain_key > cursor[0])
                    | ((AuditEvent.chain_key == cursor[0]) & (AuditEvent.chain_seq > cursor[1]))
                )
                .order_by(AuditEvent.chain_key, AuditEvent.chain_seq)
                .limit(batch)
            )
        )
        if not rows:
            break
        for event in rows:
            seen += 1
            last_seq, last_hash, last_id = state.get(event.chain_key, (0, GENESIS, 0))
            label = f"event {event.id} ({event.chain_key} #{event.chain_seq})"
            if event.chain_key not in known:
                return _fail(chains, seen, f"{label} belongs to no registered chain", event.id)
            if event.chain_seq != last_seq + 1:
                return _fail(chains, seen, f"{label}: event #{last_seq + 1} is missing", event.id)
            if event.prev_hash != last_hash:
                return _fail(chains, seen, f"{label} does not follow its predecessor", event.id)
            if event.id <= last_id:
                return _fail(chains, seen, f"{label} is out of order", event.id)
            if event_hash(event) != event.hash:
                return _fail(chains, seen, f"{label} was altered", event.id)
            state[event.chain_key] = (event.chain_seq, event.hash, event.id)
        cursor = (rows[-1].chain_key, rows[-1].chain_seq)
        for row in rows:  # keep memory flat on long logs, and leave the caller's
            session.expunge(row)  # own objects attached
    for chain in chains:
        last_seq, last_hash, _ = state.get(chain.key, (0, GENESIS, 0))
        if (last_seq, last_hash) != (chain.length, chain.head):
            return _fail(
                chains,
                seen,
                f"chain `{chain.key}` ends at #{last_seq}, its head says "
                f"#{chain.length}: events were deleted at its end",
            )
    if seen != total:  # pragma: no cover - rows changing while we read
        return _fail(chains, seen, "the log changed while it was being verified")
    return VerifyResult(True, seen, len(chains), _root(chains))


def _fail(
    chains: list[AuditChain], seen: int, problem: str, event_id: int | None = None
) -> VerifyResult:
    return VerifyResult(False, seen, len(chains), _root(chains), problem, event_id)


def anchor(session: Session) -> dict[str, Any]:
    """Every chain's length and head: what auditors keep outside the database."""
    chains = list(session.scalars(select(AuditChain).order_by(AuditChain.position)))
    return {
        "root": _root(chains),
        "chains": {c.key: [c.length, c.head] for c in chains},
    }


def check_anchor(session: Session, kept: dict[str, Any]) -> str | None:
    """None if the history an earlier anchor saw is still there, hash for hash; else why not.

    New events since the anchor are fine (chains grow); a chain that shrank, vanished or whose
    anchored event now hashes differently means the history was rewritten.
    """
    chains = kept.get("chains")
    if not isinstance(chains, dict):
        return "the anchor file has no `chains`"
    for key, entry in sorted(chains.items()):
        length, head = entry
        if length == 0:
            continue
        event = session.scalar(
            select(AuditEvent).where(AuditEvent.chain_key == key, AuditEvent.chain_seq == length)
        )
        if event is None:
            return f"chain `{key}` no longer has event #{length} that the anchor saw"
        if event.hash != head or event_hash(event) != head:
            return f"event {event.id} ({key} #{length}) differs from the anchored history"
    return None


def record_refusal(
    session: Session,
    *,
    actor: str | None,
    action: str,
    code: str,
    message: str,
    document: Document | None = None,
    flow: str | None = None,
    flow_version: int | None = None,
    target: str | None = None,
    comment: str = "",
) -> AuditEvent:
    """A refused action's security event: on the document's chain when there is a document the
    actor could see, else on the system chain (naming the target)."""
    action = action if isinstance(action, str) and len(action) <= 40 else "?"
    details: dict[str, Any] = {"message": message[:500]}
    if document is not None:
        return append(
            session,
            document_chain(document.id),
            document_id=document.id,
            flow=document.flow_name,
            flow_version=document.flow_version.version,
            actor=actor,
            action=action,
            outcome="refused",
            code=code,
            from_state=document.state,
            to_state=document.state,
            revision=document.revision,
            comment=comment,
            details=details,
        )
    if target:
        details["target"] = target[:200]
    return append(
        session,
        SYSTEM_CHAIN,
        actor=actor,
        action=action,
        outcome="refused",
        code=code,
        flow=flow,
        flow_version=flow_version,
        comment=comment,
        details=details,
    )
