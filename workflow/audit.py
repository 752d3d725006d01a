"""The append-only, keyed, hash-chained audit log: append, verify (replaying the business
tables), anchor, and the keys.

Each document has its own chain (appends are serialized by that chain's row lock, so unrelated
documents never queue behind each other); `system` holds events that belong to no document.
Chains are registered in order in a chained registry, so removing a whole chain is detected.
The registry has lanes: lane 0 starts with `system` and registers the other lanes' roots
(`registry:1` … `registry:16`); a new document's chain is registered in lane 1 + id % 16,
after that lane's last entry. Registering locks only that lane's root, so creations of
different documents do not queue behind one row, and a whole lane cannot vanish without
breaking lane 0.

Every event is sealed with HMAC-SHA256 under an audit key that lives outside the database
(`AUDIT_KEY`); the event names the key's id, so keys can rotate while old events still verify.
A document event also carries the SHA-256 of the exact revision data it acted on, the resulting
state and revision; a review row names the event that recorded it. `verify` replays every
document's chain and checks that the document row, its revisions and its reviews are exactly
what the chain says.

The root printed by `verify` digests every chain head: auditors keep it outside the database
(`flask audit anchor`), because someone holding both the database and the key could otherwise
rebuild every hash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, String, and_, cast, func, literal, or_, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, aliased

from workflow.db import as_utc, utcnow
from workflow.models import (
    Attachment,
    AuditChain,
    AuditEvent,
    Document,
    DocumentRevision,
    FlowVersion,
    Review,
    User,
)

GENESIS = "0" * 64
SYSTEM_CHAIN = "system"
# Lanes of the chain registry besides lane 0 (see the module's docstring). Fixed: a chain's
# lane is part of its seal, so changing this would only move where new chains go.
REGISTRY_LANES = 16
LANE_ROOT = "registry:"
HASHED_FIELDS = (
    "id", "at", "chain_key", "chain_seq", "prev_hash", "document_id", "flow", "flow_version",
    "actor", "action", "outcome", "code", "from_state", "to_state", "revision", "comment",
    "details", "key_id", "data_hash",
)  # fmt: skip
MIN_KEY_LENGTH = 16
MAX_PROBLEMS = 50


# --- keys -----------------------------------------------------------------------------------------
def key_id_of(secret: str) -> str:
    """A short public name for a key (a hash of it), stored in each event it seals."""
    return "k" + hashlib.sha256(b"fuhe-audit-key-id\0" + secret.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Keyring:
    """The current audit key (seals new events) and older keys (still verify old events)."""

    current_id: str
    keys: Mapping[str, bytes]

    @classmethod
    def from_settings(cls, current: str, old: str | Iterable[str] = ()) -> Keyring:
        """Build from AUDIT_KEY and AUDIT_KEYS (older keys, separated by commas or spaces)."""
        olds = old.replace(",", " ").split() if isinstance(old, str) else list(old)
        keys: dict[str, bytes] = {}
        for secret in [current, *olds]:
            if len(secret) < MIN_KEY_LENGTH:
                raise ValueError(
                    f"an audit key must have at least {MIN_KEY_LENGTH} characters "
                    "(generate one with: python -c 'import secrets; print(secrets.token_hex(32))')"
                )
            keys[key_id_of(secret)] = secret.encode()
        return cls(key_id_of(current), keys)

    def seal(self, key_id: str | None, text: str) -> str | None:
        """HMAC-SHA256 of `text` under key `key_id`; None if that key is unknown."""
        secret = self.keys.get(key_id or "")
        if secret is None:
            return None
        return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()


_keyring: Keyring | None = None


def configure(keyring: Keyring) -> None:
    """Install the process's keyring (create_app does this from AUDIT_KEY / AUDIT_KEYS)."""
    global _keyring
    _keyring = keyring


def keyring() -> Keyring:
    if _keyring is None:
        raise RuntimeError(
            "no audit key configured: set AUDIT_KEY (the application generates a development "
            "key under instance/ when it is unset, outside production)"
        )
    return _keyring


# --- hashing --------------------------------------------------------------------------------------
def document_chain(document_id: int) -> str:
    return f"document:{document_id}"


def lane_of(key: str) -> int:
    """The registry lane a new chain is registered in: 1 + id % 16 for a document's chain,
    lane 0 for anything else (`system`, the lanes' roots)."""
    kind, _, number = key.partition(":")
    if kind == "document" and number.isdigit():
        return 1 + int(number) % REGISTRY_LANES
    return 0


def lane_root(lane: int) -> str:
    return f"{LANE_ROOT}{lane}"


def _canonical(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return as_utc(value).replace(tzinfo=None).isoformat(timespec="microseconds")
    return value


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def data_hash(data: Mapping[str, Any] | None) -> str:
    """SHA-256 of a revision's data as canonical JSON (key order does not matter)."""
    return hashlib.sha256(canonical_json(dict(data or {})).encode()).hexdigest()


def event_payload(event: Any) -> str:
    """The canonical text an event's HMAC covers (including the previous event's hash)."""
    return canonical_json({name: _canonical(getattr(event, name)) for name in HASHED_FIELDS})


def event_hash(event: Any, keys: Keyring | None = None) -> str | None:
    """HMAC-SHA256 of the event under the key it names; None if that key is unknown."""
    return (keys or keyring()).seal(event.key_id, event_payload(event))


def registry_hash(
    key: str,
    position: int,
    prev_hash: str,
    key_id: str | None,
    keys: Keyring | None = None,
    lane: int = 0,
) -> str | None:
    """The seal of a registry entry. Lane 0 keeps the text it had before lanes existed, so
    registries written then still verify; other lanes name their lane, so an entry cannot be
    moved from one lane to another."""
    where = f"{lane}:{position}" if lane else f"{position}"
    return (keys or keyring()).seal(key_id, f"{prev_hash}|{where}|{key}")


# --- appending ------------------------------------------------------------------------------------
def _lock_chain(session: Session, key: str) -> AuditChain | None:
    stmt = select(AuditChain).where(AuditChain.key == key).with_for_update()
    with session.no_autoflush:  # a pending review row is inserted with its event, never updated
        return session.scalars(stmt.execution_options(populate_existing=True)).one_or_none()


def _new_chain(key: str, position: int, prev_hash: str, lane: int = 0) -> AuditChain:
    keys = keyring()
    return AuditChain(
        key=key,
        lane=lane,
        position=position,
        prev_hash=prev_hash,
        key_id=keys.current_id,
        hash=registry_hash(key, position, prev_hash, keys.current_id, keys, lane),
        length=0,
        head=GENESIS,
    )


def ensure_system_chain(session: Session) -> AuditChain:
    """The registry's first entry; created by setup, found afterwards."""
    chain = _lock_chain(session, SYSTEM_CHAIN)
    if chain is None:
        chain = _new_chain(SYSTEM_CHAIN, 0, GENESIS)
        session.add(chain)
        session.flush()
    return chain


def _register(session: Session, key: str, lane: int, first: AuditChain) -> AuditChain:
    """Add `key` after the last entry of `lane`, whose first entry `first` is locked by the
    caller (that lock is what keeps two registrations from taking the same place)."""
    last = session.scalars(
        select(AuditChain)
        .where(AuditChain.lane == lane)
        .order_by(AuditChain.position.desc())
        .limit(1)
    ).one_or_none()
    # A lane's first chain follows its root, which lives in lane 0.
    position, prev = (last.position + 1, last.hash) if last is not None else (1, first.hash)
    chain = _new_chain(key, position, prev, lane)
    session.add(chain)
    session.flush()
    return chain


def _lock_lane(session: Session, lane: int) -> AuditChain:
    """Lock lane `lane`'s root, registering it in lane 0 the first time (`flask setup` makes
    them all; a database set up before lanes gets each on first use)."""
    key = lane_root(lane)
    root = _lock_chain(session, key)
    if root is None:
        system = ensure_system_chain(session)  # lane 0's lock: one registration at a time
        root = _lock_chain(session, key)  # made by another transaction while this one waited
        if root is None:
            root = _register(session, key, 0, system)
    return root


def ensure_registry(session: Session) -> None:
    """The `system` chain and every lane's root, made where missing (by `flask setup`)."""
    ensure_system_chain(session)
    for lane in range(1, REGISTRY_LANES + 1):
        _lock_lane(session, lane)


def open_chain(session: Session, key: str) -> AuditChain:
    """Register a new chain in its lane (`lane_of`), locking only that lane's root."""
    lane = lane_of(key)
    first = ensure_system_chain(session) if lane == 0 else _lock_lane(session, lane)
    return _register(session, key, lane, first)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def next_event_id(dialect: str) -> Select[Any]:
    """The next event's id, known before the insert because the seal covers it (so reordering
    rows is detected). SQLite: writers are serialized (BEGIN IMMEDIATE), so max + 1 is safe.
    A statement of its own, or a column of the caller's locking statement (one round trip less).
    """
    if dialect == "postgresql":
        return select(func.nextval(func.pg_get_serial_sequence("audit_events", "id")))
    return select(func.coalesce(func.max(AuditEvent.id), 0) + 1)


def append(
    session: Session,
    chain_key: str,
    *,
    review: Review | None = None,
    chain: AuditChain | None = None,
    event_id: int | None = None,
    **fields: Any,
) -> AuditEvent:
    """Append one event to `chain_key` inside the caller's transaction (locks that chain).

    `review`, a review row not yet flushed, is tied to this event (`event_seq`) and inserted
    with it, so review rows are never updated afterwards. `chain` (that chain's row, already
    locked in this transaction) and `event_id` (from `next_event_id`) let a caller that read
    them in its own locking statement skip two round trips.
    """
    keys = keyring()
    if chain is None:
        chain = _lock_chain(session, chain_key)
    elif chain.key != chain_key:
        raise ValueError(f"chain {chain.key!r} given for {chain_key!r}")
    if chain is None:
        chain = ensure_system_chain(session) if chain_key == SYSTEM_CHAIN else None
    if chain is None:
        chain = open_chain(session, chain_key)
    event = AuditEvent(
        id=event_id if event_id is not None else session.scalar(next_event_id(_dialect(session))),
        at=utcnow(),
        chain_key=chain_key,
        chain_seq=chain.length + 1,
        prev_hash=chain.head,
        hash="",
        key_id=keys.current_id,
        comment=fields.pop("comment", None) or "",
        **fields,
    )
    if review is not None:
        review.event_seq = event.chain_seq
        session.add(review)
    # Sealed before it is written: on PostgreSQL a trigger refuses any later UPDATE.
    event.hash = event_hash(event, keys) or ""
    session.add(event)
    chain.length = event.chain_seq
    chain.head = event.hash
    # No flush here: the action's rows go out in one flush at commit (the next append to this
    # chain flushes first anyway, as its locking query autoflushes).
    return event


# --- verifying ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    message: str
    event_id: int | None = None
    document_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.event_id, "document_id": self.document_id, "problem": self.message}


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events: int
    chains: int
    root: str
    problems: tuple[Problem, ...] = ()

    @property
    def problem(self) -> str | None:
        return self.problems[0].message if self.problems else None

    @property
    def bad_event(self) -> int | None:
        return self.problems[0].event_id if self.problems else None

    @property
    def report(self) -> str:
        """Every problem found, one a line."""
        return "\n".join(p.message for p in self.problems)

    @property
    def first_bad(self) -> dict[str, Any] | None:
        return self.problems[0].as_dict() if self.problems else None


@dataclass
class _Replay:
    """What one document's chain says its rows must be."""

    document_id: int
    last_event: int | None = None
    flow: str | None = None
    flow_version: int | None = None
    created_by: str | None = None
    entered_by: str | None = None
    state: str | None = None
    revision: int | None = None
    data_hash: str | None = None
    round: int = 0
    revisions: dict[int, tuple[str | None, str | None]] = field(default_factory=dict)
    reviews: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    attachments: dict[int, tuple[Any, ...]] = field(default_factory=dict)


class _Verifier:
    def __init__(self, session: Session, keys: Keyring, progress: Callable[[int], None] | None):
        self.session = session
        self.keys = keys
        self.progress = progress
        self.problems: list[Problem] = []
        self.seen = 0
        self.versions: dict[tuple[str, int], FlowVersion | None] = {}
        self.published: dict[tuple[str, int], str] = {}
        self.window: dict[str, tuple[int, str]] = {}

    def fail(self, message: str, event_id: int | None = None, document_id: int | None = None):
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(message, event_id, document_id))

    # -- the registry of chains
    def registry(self) -> int:
        """Walk the registry lane by lane, in position order (streamed): lane 0 from `system`,
        every other lane from its root registered in lane 0. Returns the number of entries."""
        roots: dict[int, str] = {}  # lane -> its root's hash (lane 0 is walked first)
        lane, prev, expected, count = 0, GENESIS, 0, 0
        stmt = select(AuditChain.__table__).order_by(AuditChain.lane, AuditChain.position)
        for chain in self.session.execute(stmt.execution_options(yield_per=1000)):
            count += 1
            if chain.lane != lane:
                lane, prev, expected = chain.lane, roots.get(chain.lane, ""), 1
                if not prev:
                    self.fail(
                        f"chain registry lane {lane} has no root `{lane_root(lane)}` in lane 0: "
                        "a lane's root was deleted"
                    )
            if chain.position != expected or chain.prev_hash != prev:
                self.fail(f"chain registry broken at `{chain.key}`: a chain is missing")
            sealed = registry_hash(
                chain.key, chain.position, chain.prev_hash, chain.key_id, self.keys, chain.lane
            )
            if sealed is None:
                self.fail(f"chain registry entry `{chain.key}` is sealed with an unknown key")
            elif not hmac.compare_digest(sealed, chain.hash):
                self.fail(f"chain registry entry `{chain.key}` was altered")
            if lane == 0 and chain.key.startswith(LANE_ROOT):
                number = chain.key.removeprefix(LANE_ROOT)
                if number.isdigit():
                    roots[int(number)] = chain.hash
            prev, expected = chain.hash, chain.position + 1
        return count

    def root(self) -> str:
        """root_digest over every chain, streamed in the same (code point) order."""
        key = AuditChain.key
        if self.session.get_bind().dialect.name == "postgresql":
            key = key.collate("C")  # type: ignore[assignment]  # byte order = code point order
        stmt = select(AuditChain.key, AuditChain.length, AuditChain.head).order_by(key)
        digest = hashlib.sha256()
        for row in self.session.execute(stmt.execution_options(yield_per=1000)):
            digest.update(f"{row.key}|{row.length}|{row.head}\n".encode())
        return digest.hexdigest()

    def chain_head(self, key: str) -> tuple[int, str] | None:
        """(length, head) of a registered chain, read ahead in windows in the events' order."""
        if key not in self.window:
            self.window = {
                row.key: (row.length, row.head)
                for row in self.session.execute(
                    select(AuditChain.key, AuditChain.length, AuditChain.head)
                    .where(AuditChain.key >= key)
                    .order_by(AuditChain.key)
                    .limit(500)
                )
            }
        return self.window.get(key)

    # -- the events, chain by chain
    def events(self, batch: int) -> Iterator[list[Any]]:
        cursor: tuple[str, int] = ("", 0)
        table = AuditEvent.__table__
        while True:
            rows = list(
                self.session.execute(
                    select(table)
                    .where(  # the >= lets the (chain_key, chain_seq) index seek to the cursor
                        table.c.chain_key >= cursor[0],
                        (table.c.chain_key > cursor[0]) | (table.c.chain_seq > cursor[1]),
                    )
                    .order_by(table.c.chain_key, table.c.chain_seq)
                    .limit(batch)
                )
            )
            if not rows:
                return
            yield rows
            cursor = (rows[-1].chain_key, rows[-1].chain_seq)

    def check_event(self, event: Any, last: tuple[int, str, int]) -> None:
        label = f"event {event.id} ({event.chain_key} #{event.chain_seq})"
        last_seq, last_hash, last_id = last
        doc = event.document_id
        if event.chain_seq != last_seq + 1:
            self.fail(f"{label}: event #{last_seq + 1} is missing", event.id, doc)
        elif event.prev_hash != last_hash:
            self.fail(f"{label} does not follow its predecessor", event.id, doc)
        elif event.id <= last_id:
            self.fail(f"{label} is out of order", event.id, doc)
        sealed = event_hash(event, self.keys)
        if event.key_id is None:
            self.fail(f"{label} is not sealed with an audit key", event.id, doc)
        elif sealed is None:
            self.fail(f"{label} is sealed with unknown key `{event.key_id}`", event.id, doc)
        elif not hmac.compare_digest(sealed, event.hash):
            self.fail(f"{label} was altered or forged: its seal does not match", event.id, doc)

    def is_review(self, flow: str | None, version: int | None, state: str | None) -> bool:
        if flow is None or version is None or state is None:
            return False
        if (flow, version) not in self.versions:
            self.versions[(flow, version)] = self.session.scalar(
                select(FlowVersion).where(
                    FlowVersion.flow_name == flow, FlowVersion.version == version
                )
            )
        row = self.versions[(flow, version)]
        if row is None:
            return False
        from workflow.process import compiled  # the engine's own reading of the definition

        spec = compiled(row).spec
        return spec.has_state(state) and spec.state(state).is_review

    def replay(self, replay: _Replay, event: Any) -> None:
        """Advance `replay` by one event, exactly as the services change the rows."""
        replay.last_event = event.id
        if event.outcome != "ok":
            return
        if event.action in ("approve", "reject"):
            details = event.details or {}
            replay.reviews[event.chain_seq] = (
                event.from_state,
                replay.round,
                event.revision,
                event.actor,
                event.action,
                event.comment,
                details.get("on_behalf_of"),  # a delegate's approval names the principal
                details.get("checks"),  # the checklist as answered
            )
        if event.action == "create":
            replay.flow, replay.created_by, replay.entered_by = event.flow, event.actor, event.actor
            replay.state = event.to_state
        elif event.action == "attach":
            facts = (event.details or {}).get("attachment") or {}
            replay.attachments[facts.get("id")] = (
                facts.get("sha256"),
                facts.get("name"),
                facts.get("size"),
                facts.get("content_type"),
                event.actor,
                event.revision,
            )
            if self.is_review(event.flow, event.flow_version, event.from_state):
                replay.round += 1  # attaching in review opens a new round
        elif event.action == "migrate":
            replay.state = event.to_state
            if self.is_review(event.flow, event.flow_version, event.to_state):
                replay.round += 1
        elif event.to_state != event.from_state or event.action == "reject":
            if event.from_state != replay.state:
                self.fail(
                    f"event {event.id} moves document {replay.document_id} from "
                    f"`{event.from_state}`, but its chain had it in `{replay.state}`",
                    event.id,
                    replay.document_id,
                )
            replay.state, replay.entered_by = event.to_state, event.actor
            if self.is_review(event.flow, event.flow_version, event.to_state):
                replay.round += 1
        if event.flow_version is not None:
            replay.flow_version = event.flow_version
        if event.revision is not None and (replay.revision or 0) < event.revision:
            replay.revision = event.revision
            replay.revisions[event.revision] = (event.data_hash, event.actor)
        if event.data_hash is not None:
            replay.data_hash = event.data_hash

    # -- the business tables of a batch of documents
    def check_documents(self, replays: list[_Replay]) -> None:
        if not replays:
            return
        ids = [r.document_id for r in replays]
        creator, enterer = aliased(User), aliased(User)
        documents = {
            row.id: row
            for row in self.session.execute(
                select(
                    Document.id, Document.flow_name, Document.state, Document.revision,
                    Document.review_round, Document.data, FlowVersion.version,
                    creator.username.label("created_by"), enterer.username.label("entered_by"),
                )
                .join(FlowVersion, FlowVersion.id == Document.flow_version_id)
                .join(creator, creator.id == Document.created_by_id)
                .join(enterer, enterer.id == Document.entered_by_id)
                .where(Document.id.in_(ids))
            )
        }  # fmt: skip
        revisions: dict[int, dict[int, Any]] = {i: {} for i in ids}
        for row in self.session.execute(
            select(
                DocumentRevision.document_id, DocumentRevision.number, DocumentRevision.data,
                User.username,
            )
            .join(User, User.id == DocumentRevision.author_id)
            .where(DocumentRevision.document_id.in_(ids))
        ):  # fmt: skip
            revisions[row.document_id][row.number] = row
        reviews: dict[int, list[Any]] = {i: [] for i in ids}
        principal = aliased(User)
        for row in self.session.execute(
            select(Review.__table__, User.username, principal.username.label("principal"))
            .join(User, User.id == Review.user_id)
            .outerjoin(principal, principal.id == Review.on_behalf_of_id)
            .where(Review.document_id.in_(ids))
            .order_by(Review.id)
        ):
            reviews[row.document_id].append(row)
        attachments: dict[int, list[Any]] = {i: [] for i in ids}
        for row in self.session.execute(
            select(Attachment.__table__, User.username)
            .join(User, User.id == Attachment.uploaded_by_id)
            .where(Attachment.document_id.in_(ids))
            .order_by(Attachment.id)
        ):
            attachments[row.document_id].append(row)
        for replay in replays:
            self.check_document(
                replay,
                documents.get(replay.document_id),
                revisions[replay.document_id],
                reviews[replay.document_id],
            )
            self.check_attachments(replay, attachments[replay.document_id])

    def check_attachments(self, replay: _Replay, rows: list[Any]) -> None:
        """Each attachment row is exactly what its `attach` event sealed, and none is missing."""
        d, told = replay.document_id, dict(replay.attachments)
        for row in rows:
            said = told.pop(row.id, None)
            if said is None:
                self.fail(
                    f"document {d}: attachment {row.id} has no audit event (inserted afterwards)",
                    replay.last_event,
                    d,
                )
                continue
            stored = (row.sha256, row.name, row.size, row.content_type, row.username, row.revision)
            names = ("sha256", "name", "size", "type", "uploader", "revision")
            for name, a, b in zip(names, stored, said, strict=True):
                if a != b:
                    self.fail(
                        f"document {d}: attachment {row.id} has {name} `{a}`, "
                        f"the audit chain says `{b}`",
                        replay.last_event,
                        d,
                    )
        for attachment_id in sorted(told, key=str):
            self.fail(f"document {d}: attachment {attachment_id} was deleted", replay.last_event, d)

    def check_document(
        self, replay: _Replay, doc: Any, revisions: dict[int, Any], reviews: list[Any]
    ) -> None:
        d, at = replay.document_id, replay.last_event

        def differ(what: str) -> None:
            self.fail(f"document {d}: {what}", at, d)

        if doc is None:
            differ("the document was deleted (its audit chain still records it)")
            return
        for name, stored, said in (
            ("state", doc.state, replay.state),
            ("revision", doc.revision, replay.revision),
            ("flow", doc.flow_name, replay.flow),
            ("flow version", doc.version, replay.flow_version),
            ("creator", doc.created_by, replay.created_by),
            ("submitter (who moved it into its state)", doc.entered_by, replay.entered_by),
            ("review round", doc.review_round, replay.round),
        ):
            if stored != said:
                differ(f"{name} is `{stored}`, the audit chain says `{said}`")
        if replay.data_hash is not None and data_hash(doc.data) != replay.data_hash:
            current = revisions.get(doc.revision)
            fields = _changed_fields(doc.data, current.data if current is not None else {})
            differ(
                f"data differs from revision {replay.revision} that the audit chain recorded"
                + (f" (fields: {', '.join(fields)})" if fields else "")
            )
        for number in sorted(set(revisions) | set(replay.revisions)):
            row, said = revisions.get(number), replay.revisions.get(number)
            if row is None:
                differ(f"revision {number} was deleted")
            elif said is None:
                differ(f"revision {number} has no audit event (inserted afterwards)")
            else:
                if said[0] is not None and data_hash(row.data) != said[0]:
                    differ(f"revision {number}'s data differs from what the audit chain recorded")
                if row.username != said[1]:
                    differ(
                        f"revision {number} is attributed to {row.username}, "
                        f"the audit chain says {said[1]}"
                    )
        told = dict(replay.reviews)
        for row in reviews:
            said = told.pop(row.event_seq, None) if row.event_seq is not None else None
            who = f"{row.decision} by {row.username}"
            if said is None:
                differ(f"the review ({who}) has no audit event (inserted or re-linked afterwards)")
                continue
            stored = (
                row.state,
                row.round,
                row.revision,
                row.username,
                row.decision,
                row.comment,
                row.principal,
                row.checks,
            )
            for name, a, b in zip(
                (
                    "state",
                    "round",
                    "revision",
                    "reviewer",
                    "decision",
                    "comment",
                    "on behalf of",
                    "checks",
                ),
                stored,
                said,
                strict=True,
            ):
                if a != b:
                    differ(
                        f"the review of event #{row.event_seq} has {name} `{a}`, "
                        f"the audit chain says `{b}`"
                    )
        for seq, said in sorted(told.items()):
            differ(f"the review ({said[4]} by {said[3]}, event #{seq}) was deleted")

    # -- published definitions
    def note_publish(self, event: Any) -> None:
        if event.outcome == "ok" and event.action == "publish" and event.flow:
            content = (event.details or {}).get("content_hash")
            self.published[(event.flow, event.flow_version)] = content

    def check_versions(self) -> None:
        for row in self.session.execute(
            select(
                FlowVersion.flow_name,
                FlowVersion.version,
                FlowVersion.yaml_text,
                FlowVersion.content_hash,
            )
        ):
            name = f"flow `{row.flow_name}` version {row.version}"
            said = self.published.get((row.flow_name, row.version))
            if said is None:
                self.fail(f"{name} has no publish event")
            elif hashlib.sha256(row.yaml_text.encode()).hexdigest() != said:
                self.fail(f"{name}: its definition text differs from what was published")


def _changed_fields(now: Mapping[str, Any], before: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(now) | set(before) if now.get(k) != before.get(k))


@contextmanager
def snapshot(session: Session) -> Iterator[Session]:
    """A separate read-only session that sees one consistent snapshot of the database.

    PostgreSQL: REPEATABLE READ, READ ONLY. SQLite: one deferred read transaction (WAL keeps
    its snapshot while writers go on; BEGIN IMMEDIATE would block every writer instead).
    """
    bind = session.get_bind()
    engine: Engine = bind.engine if isinstance(bind, Connection) else bind  # type: ignore[assignment]
    with Session(engine) as reader:
        if engine.dialect.name == "postgresql":
            options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        else:
            options = {"fuhe_read_only": True}
        reader.connection(execution_options=options)
        try:
            yield reader
        finally:
            reader.rollback()


def verify(
    session: Session,
    batch: int = 2000,
    *,
    keys: Keyring | None = None,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
) -> VerifyResult:
    """Check every chain and replay every document's events against the business tables.

    Reads one snapshot and streams everything in batches (constant memory: a few hundred
    chains and documents at a time, however long the log) and reports each difference, naming
    the event or document.
    """
    with snapshot(session) as reader:
        return _verify(reader, batch, keys or keyring(), progress, total)


def _verify(
    reader: Session,
    batch: int,
    keys: Keyring,
    progress: Callable[[int], None] | None,
    total: Callable[[int], None] | None,
) -> VerifyResult:
    check = _Verifier(reader, keys, progress)
    count = reader.scalar(select(func.count()).select_from(AuditEvent)) or 0
    if total:
        total(count)
    chain_count = check.registry()
    root = check.root()
    key_of_document = literal("document:") + cast(Document.id, String)
    orphan = reader.scalar(
        select(Document.id)
        .outerjoin(AuditChain, AuditChain.key == key_of_document)
        .where(AuditChain.key.is_(None))
        .order_by(Document.id)
        .limit(1)
    )
    if orphan is not None:
        check.fail(
            f"document {orphan} has no audit history: its chain "
            f"`{document_chain(orphan)}` was deleted",
            document_id=orphan,
        )
    pending: list[_Replay] = []
    current: tuple[str, list[Any]] | None = None  # (chain key, [last seq, hash, id, replay])

    def finish(key: str, last: list[Any]) -> None:
        length, head = check.chain_head(key) or (None, None)
        if length is None:
            check.fail(f"events of `{key}` belong to no registered chain", last[2])
            return
        if (last[0], last[1]) != (length, head):
            check.fail(
                f"chain `{key}` ends at #{last[0]}, its head says #{length}: events were "
                "deleted at its end",
                last[2],
                last[3].document_id if last[3] else None,
            )
        if last[3] is not None:
            pending.append(last[3])
            if len(pending) >= 200:
                check.check_documents(pending)
                pending.clear()

    for rows in check.events(batch):
        for event in rows:
            check.seen += 1
            if current is None or current[0] != event.chain_key:
                if current is not None:
                    finish(*current)
                replay = None
                if event.chain_key.startswith("document:"):
                    replay = _Replay(int(event.chain_key.split(":", 1)[1]))
                current = (event.chain_key, [0, GENESIS, 0, replay])
            last = current[1]
            check.check_event(event, (last[0], last[1], last[2]))
            if last[3] is not None:
                if event.document_id != last[3].document_id:
                    check.fail(
                        f"event {event.id} names document {event.document_id} but sits in "
                        f"`{event.chain_key}`",
                        event.id,
                    )
                check.replay(last[3], event)
            elif event.chain_key == SYSTEM_CHAIN:
                check.note_publish(event)
            last[0], last[1], last[2] = event.chain_seq, event.hash, event.id
        if progress:
            progress(len(rows))
    if current is not None:
        finish(*current)
    check.check_documents(pending)
    has_events = select(AuditEvent.id).where(AuditEvent.chain_key == AuditChain.key).exists()
    for key, length in reader.execute(
        select(AuditChain.key, AuditChain.length)
        .where(
            ~has_events,
            # `system` and the lanes' roots may be empty; a document's chain never is
            or_(
                AuditChain.length > 0,
                and_(AuditChain.key != SYSTEM_CHAIN, ~AuditChain.key.startswith(LANE_ROOT)),
            ),
        )
        .order_by(AuditChain.key)
        .limit(MAX_PROBLEMS)
    ):
        if length:
            check.fail(f"chain `{key}` has lost all {length} of its events")
        else:
            check.fail(f"chain `{key}` has no events")
    check.check_versions()
    if check.seen != count:  # pragma: no cover - one snapshot: cannot happen
        check.fail("the log changed while it was being verified")
    sealed_root = keys.seal(keys.current_id, root) or root
    problems = tuple(check.problems)
    return VerifyResult(not problems, check.seen, chain_count, sealed_root, problems)


def root_digest(chains: Mapping[str, Any]) -> str:
    """SHA-256 over every chain's key, length and head, in key order (sealed as the root)."""
    digest = hashlib.sha256()
    for key, (length, head) in sorted(chains.items()):
        digest.update(f"{key}|{length}|{head}\n".encode())
    return digest.hexdigest()


# --- anchors --------------------------------------------------------------------------------------
def anchor(session: Session, keys: Keyring | None = None) -> dict[str, Any]:
    """The chain head to keep outside the database: every chain's length and head, the last
    event's sequence number, the time, and a root sealed with the current key."""
    keys = keys or keyring()
    with snapshot(session) as reader:
        chains = {
            row.key: [row.length, row.head]
            for row in reader.execute(
                select(AuditChain.key, AuditChain.length, AuditChain.head).order_by(
                    AuditChain.lane, AuditChain.position
                )
            )
        }
        last_seq = reader.scalar(select(func.max(AuditEvent.id))) or 0
        events = reader.scalar(select(func.count()).select_from(AuditEvent)) or 0
    return {
        "at": utcnow().isoformat(timespec="seconds"),
        "seq": last_seq,
        "events": events,
        "key_id": keys.current_id,
        "root": keys.seal(keys.current_id, root_digest(chains)),
        "chains": chains,
    }


def check_anchor(session: Session, kept: dict[str, Any], keys: Keyring | None = None) -> str | None:
    """None if the history an earlier anchor saw is still there, hash for hash; else why not.

    New events since the anchor are fine (chains grow); a chain that shrank, vanished or whose
    anchored event now hashes differently means the history was rewritten.
    """
    keys = keys or keyring()
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
        if event.hash != head or event_hash(event, keys) != head:
            return f"event {event.id} ({key} #{length}) differs from the anchored history"
    return None


# --- PostgreSQL: the tables only grow -------------------------------------------------------------
APPEND_ONLY_TABLES = ("audit_events", "reviews", "document_revisions")
POSTGRES_GUARD_SQL = (
    """CREATE OR REPLACE FUNCTION fuhe_refuse_rewrite() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'fuhe: % on % is refused: the audit history is append-only', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$""",
    """CREATE OR REPLACE FUNCTION fuhe_chain_grows_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.key IS DISTINCT FROM OLD.key OR NEW.lane IS DISTINCT FROM OLD.lane
     OR NEW.position IS DISTINCT FROM OLD.position
     OR NEW.prev_hash IS DISTINCT FROM OLD.prev_hash OR NEW.hash IS DISTINCT FROM OLD.hash
     OR NEW.key_id IS DISTINCT FROM OLD.key_id OR NEW.opened_at IS DISTINCT FROM OLD.opened_at
     OR NEW.length IS DISTINCT FROM OLD.length + 1 THEN
    RAISE EXCEPTION 'fuhe: audit chain % may only grow by one event at a time', OLD.key
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$""",
    *(
        sql
        for table in APPEND_ONLY_TABLES
        for sql in (
            f"CREATE TRIGGER fuhe_{table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION fuhe_refuse_rewrite()",
            f"CREATE TRIGGER fuhe_{table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION fuhe_refuse_rewrite()",
        )
    ),
    "CREATE TRIGGER fuhe_audit_chains_grow BEFORE UPDATE ON audit_chains "
    "FOR EACH ROW EXECUTE FUNCTION fuhe_chain_grows_only()",
    "CREATE TRIGGER fuhe_audit_chains_no_delete BEFORE DELETE ON audit_chains "
    "FOR EACH ROW EXECUTE FUNCTION fuhe_refuse_rewrite()",
    "CREATE TRIGGER fuhe_audit_chains_no_truncate BEFORE TRUNCATE ON audit_chains "
    "FOR EACH STATEMENT EXECUTE FUNCTION fuhe_refuse_rewrite()",
    # documents change state, but are never deleted (cancelling is an action in the history)
    "CREATE TRIGGER fuhe_documents_no_delete BEFORE DELETE ON documents "
    "FOR EACH ROW EXECUTE FUNCTION fuhe_refuse_rewrite()",
    "CREATE TRIGGER fuhe_documents_no_truncate BEFORE TRUNCATE ON documents "
    "FOR EACH STATEMENT EXECUTE FUNCTION fuhe_refuse_rewrite()",
)
POSTGRES_UNGUARD_SQL = (
    *(
        f"DROP TRIGGER IF EXISTS fuhe_{table}_{kind} ON {table}"
        for table in APPEND_ONLY_TABLES
        for kind in ("append_only", "no_truncate")
    ),
    "DROP TRIGGER IF EXISTS fuhe_audit_chains_grow ON audit_chains",
    "DROP TRIGGER IF EXISTS fuhe_audit_chains_no_delete ON audit_chains",
    "DROP TRIGGER IF EXISTS fuhe_audit_chains_no_truncate ON audit_chains",
    "DROP TRIGGER IF EXISTS fuhe_documents_no_delete ON documents",
    "DROP TRIGGER IF EXISTS fuhe_documents_no_truncate ON documents",
    "DROP FUNCTION IF EXISTS fuhe_chain_grows_only()",
    "DROP FUNCTION IF EXISTS fuhe_refuse_rewrite()",
)


# --- export for offline verification --------------------------------------------------------------
def export_lines(session: Session, batch: int = 2000) -> Iterator[str]:
    """The history as JSON lines: first `{"anchor": …}`, then each event exactly as sealed (the
    fields its seal covers, canonical, and its hash), chain by chain; one snapshot, streamed."""
    with snapshot(session) as reader:
        chains = {
            row.key: [row.length, row.head]
            for row in reader.execute(
                select(AuditChain.key, AuditChain.length, AuditChain.head).order_by(
                    AuditChain.lane, AuditChain.position
                )
            )
        }
        keys = keyring()
        yield canonical_json(
            {
                "anchor": {
                    "at": utcnow().isoformat(timespec="seconds"),
                    "seq": reader.scalar(select(func.max(AuditEvent.id))) or 0,
                    "key_id": keys.current_id,
                    "root": keys.seal(keys.current_id, root_digest(chains)),
                    "chains": chains,
                }
            }
        )
        for rows in _Verifier(reader, keys, None).events(batch):
            for event in rows:
                body = {name: _canonical(getattr(event, name)) for name in HASHED_FIELDS}
                body["hash"] = event.hash
                yield canonical_json(body)


def export(session: Session, path: Any) -> int:
    """Write `export_lines` to `path`; returns the number of events written."""
    count = -1
    with open(path, "w", encoding="utf-8") as out:
        for line in export_lines(session):
            out.write(line + "\n")
            count += 1
    return count


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
