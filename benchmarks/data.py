"""A realistic data set through bulk paths: COPY on PostgreSQL, executemany on SQLite.

Documents walk their flow's main path (as the engine resolves it for the flow's example data)
and stop in every state: drafts, open review tasks with none or one approval, the states
between, finals, and drafts cancelled/withdrawn. Each document gets its revision, its reviews
(distinct reviewers, one per role where the state requires each role) and its full audit
history on its own chain, registered in the chain registry — so `audit verify` passes.

The only coupling to the audit chain's hashing is `seal()`: it hashes an event with the
engine's own `audit.event_hash`, never a copy of it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import multiprocessing
import os
import random
import sqlite3
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy import UniqueConstraint, select, text
from sqlalchemy.orm import Session
from sqlalchemy.schema import AddConstraint, CreateIndex, DropConstraint, DropIndex

from workflow import audit, report_index, security, services
from workflow import fields as field_types
from workflow.db import Base
from workflow.definitions.spec import ReviewSpec
from workflow.models import AuditChain, AuditEvent, FlowVersion
from workflow.process import compiled
from workflow.roles import ROLES

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 20_000  # documents per worker task
REVIEW_STRIDE = 8  # review ids per document (gaps are harmless, ids only need to grow)
EVENT_STRIDE = 24  # event ids per document
BUSY_USER = "busy_reviewer"
BULK_TABLES = ("documents", "document_revisions", "reviews", "audit_events", "audit_chains",
               "report_documents", "report_steps")  # fmt: skip


@dataclass(frozen=True)
class Sizes:
    documents: int
    users: int
    open_tasks: int
    busy_decided: int  # open documents the busy reviewer has already approved


FULL = Sizes(1_000_000, 10_000, 100_000, 50_000)


def scaled(documents: int) -> Sizes:
    """The full mode's proportions (open tasks, the busy reviewer's decisions) at another size."""
    scale = documents / FULL.documents
    return Sizes(documents, FULL.users, max(1, int(FULL.open_tasks * scale)),
                 max(1, int(FULL.busy_decided * scale)))  # fmt: skip


SMALL = Sizes(2_000, 200, 200, 100)
ROLE_SHARE = {
    "sales": 0.30, "sales_admin": 0.25, "warehouse": 0.15, "finance": 0.10,
    "sales_manager": 0.08, "gm": 0.05, "auditor": 0.04, "flow_admin": 0.03,
}  # fmt: skip


# --- the audit coupling -----------------------------------------------------------------------
class Event:
    """An audit event's fields as plain attributes, hashed by the engine's own function."""

    __slots__ = (*audit.HASHED_FIELDS, "hash")

    def __init__(self, **values: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, values.get(name))
        if self.comment is None:
            self.comment = ""


def seal(event: Event) -> str:
    """The event's seal by the engine's own `audit.event_hash`, under the current key (as
    `audit.append` does). The reference the fast `Sealer` is checked against."""
    event.key_id = audit.keyring().current_id  # type: ignore[attr-defined]
    return audit.event_hash(event) or ""  # type: ignore[arg-type]


# The fields that differ between the events of one flow; every other hashed field is the same
# for all events of a flow (its name, version, the example data's hash, the key, "ok", …).
SLOTS = ("id", "at", "chain_key", "chain_seq", "prev_hash", "document_id", "actor", "action",
         "from_state", "to_state", "details", "data_hash")  # fmt: skip


def _format_safe(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


class Sealer:
    """Seals a flow's events as `audit.event_hash` does, ~5x faster: the canonical JSON is a
    template built once per flow from `audit.HASHED_FIELDS` (the constant fields encoded by
    `audit.canonical_json` itself), filled per event; HMAC-SHA256 from a keyed state copied per
    event. Every `CHECK_EVERY`-th event (and the first) is also sealed by `audit.event_hash`
    and must agree, so a change in the audit log's hashing stops the generator rather than
    writing invalid chains."""

    CHECK_EVERY = 997

    def __init__(self, constants: dict[str, Any]) -> None:
        keys = audit.keyring()
        self.key_id = keys.current_id
        self.constants = {**constants, "key_id": self.key_id}
        self.constants.setdefault("comment", "")
        mac = hmac.new(keys.keys[self.key_id], digestmod=hashlib.sha256)
        self._mac = getattr(mac, "_hmac", None) or mac  # OpenSSL's own object: copy() in C
        parts = []
        for name in sorted(audit.HASHED_FIELDS):  # canonical JSON sorts the keys
            key = audit.canonical_json(name)
            if name in SLOTS:
                parts.append(f"{key}:{{{SLOTS.index(name)}}}")
            else:
                value = audit.canonical_json(audit._canonical(self.constants.get(name)))
                parts.append(f"{key}:{_format_safe(value)}")
        self.template = "{{" + ",".join(parts) + "}}"
        self._strings: dict[Any, str] = {}
        self.count = 0

    def text(self, value: str | None) -> str:
        found = self._strings.get(value)
        if found is None:
            found = self._strings[value] = audit.canonical_json(value)
        return found

    def details(self, details: dict[str, Any] | None) -> str | None:
        """The details as canonical JSON text (what is stored, too); None for none."""
        if details is None:
            return None
        key = ("details", *sorted(details.items()))
        found = self._strings.get(key)
        if found is None:
            found = self._strings[key] = audit.canonical_json(details)
        return found

    def seal(
        self,
        event_id: int,
        at: dt.datetime,  # UTC
        chain_key: str,
        chain_seq: int,
        prev_hash: str,
        document_id: int,
        actor: str,
        action: str,
        from_state: str,
        to_state: str,
        details: str | None,  # from self.details()
        data_hash: str,  # every event acts on revision 1's data
    ) -> str:
        text = self.text
        payload = self.template.format(
            event_id,
            '"' + at.isoformat(timespec="microseconds")[:26] + '"',
            '"' + chain_key + '"',
            chain_seq,
            '"' + prev_hash + '"',
            document_id,
            text(actor),
            text(action),
            text(from_state),
            text(to_state),
            details or "null",
            '"' + data_hash + '"',
        )
        mac = self._mac.copy()
        mac.update(payload.encode())
        sealed = mac.hexdigest()
        if self.count % self.CHECK_EVERY == 0:
            values = (event_id, at, chain_key, chain_seq, prev_hash, document_id, actor, action,
                      from_state, to_state, json.loads(details) if details else None,
                      data_hash)  # fmt: skip
            event = Event(**self.constants, **dict(zip(SLOTS, values, strict=True)))
            if seal(event) != sealed:
                raise RuntimeError(
                    "benchmarks.data.Sealer no longer seals as audit.event_hash does: "
                    f"{payload!r} != {audit.event_payload(event)!r}"
                )
        self.count += 1
        return sealed


def registry_seals(key_id: str) -> Any:
    """`audit.registry_hash` of consecutive document chains, from a keyed state (checked
    against the engine's function on the first call)."""
    mac = hmac.new(audit.keyring().keys[key_id], digestmod=hashlib.sha256)
    checked = False

    def registry(doc_id: int, prev: str) -> str:
        nonlocal checked
        m = mac.copy()
        m.update(f"{prev}|{doc_id}|document:{doc_id}".encode())
        sealed = m.hexdigest()
        if not checked:
            reference = audit.registry_hash(audit.document_chain(doc_id), doc_id, prev, key_id)
            if reference != sealed:
                raise RuntimeError("benchmarks.data registry seals differ from audit.registry_hash")
            checked = True
        return sealed

    return registry


# --- the plan of each flow --------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    action: str  # a flow action, or "approve" for a review state's two approvals
    source: str
    dest: str
    roles: tuple[str, ...]
    review: ReviewSpec | None = None
    owner_only: bool = False


VARIED = ("order_no", "customer", "buyer_title", "sales_rep")


def varied_values(contract: int) -> dict[str, str]:
    """A contract's number, customer and sales rep (shipments and invoices of one contract
    share them, so the 合同履行一览表 has realistic lines)."""
    customer = f"客户{contract % 2000:04d}"
    return {
        "order_no": f"SO-{contract:07d}",
        "customer": customer,
        "buyer_title": customer,
        "sales_rep": f"业务员{contract % 50:02d}",
    }


@dataclass
class FlowPlan:
    name: str
    version_id: int
    version: int
    data: dict[str, Any]
    data_json: str
    initial: str
    steps: list[Step]  # the main path, initial to a final state
    side: list[Step] = field(default_factory=list)  # initial straight to another final state
    creator_roles: tuple[str, ...] = ()
    review_states: frozenset[str] = frozenset()  # every review state of the flow
    status: dict[str, str] = field(default_factory=dict)  # state → open|completed|withdrawn
    milestones: frozenset[str] = frozenset()
    report_data: tuple[Any, ...] = ()  # report_documents' data columns, in COLUMNS order
    varied: tuple[str, ...] = ()  # fields that differ per document (contract, customer, rep)
    json_template: str = ""  # data_json with a placeholder per varied field
    canonical_template: str = ""  # the same, as audit.canonical_json

    def document_data(self, contract: int) -> tuple[str, str, tuple[Any, ...]]:
        """(data as JSON, its audit.data_hash, its report columns) of a document that belongs
        to contract number `contract`."""
        if not self.varied:
            return self.data_json, self.fixed_data_hash, self.report_data
        values = varied_values(contract)
        data_json, canonical = self.json_template, self.canonical_template
        for name in self.varied:
            data_json = data_json.replace(f"@@{name}@@", values[name])
            canonical = canonical.replace(f"@@{name}@@", values[name])
        columns = dict(zip(COLUMNS["report_documents"][-7:], self.report_data, strict=True))
        columns["contract_no"] = values["order_no"] if "order_no" in self.varied else None
        for name in ("customer", "buyer_title"):
            if name in self.varied:
                columns["customer"] = values[name]
        if "sales_rep" in self.varied:
            columns["sales_rep"] = values["sales_rep"]
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        return data_json, digest, tuple(columns.values())

    @cached_property
    def fixed_data_hash(self) -> str:
        """The data's hash when no field varies per document (worked out once, not per row)."""
        return audit.data_hash(self.data)

    def review_positions(self) -> list[int]:
        return [i for i, s in enumerate(self.steps) if s.review is not None]


def plan_flows(session: Session) -> list[FlowPlan]:
    """Each published flow's main path, as the engine resolves it for the flow's example."""
    plans = []
    for version in session.scalars(select(FlowVersion).order_by(FlowVersion.flow_name)):
        flow = compiled(version)
        spec = flow.spec
        data = field_types.clean_data(
            spec.fields, field_types.with_defaults(spec.fields, spec.example)
        )
        typed = field_types.typed(spec.fields, data)
        steps: list[Step] = []
        state = spec.initial
        while not spec.state(state).final and len(steps) < 12:
            st = spec.state(state)
            if st.review is not None:
                resolved = flow.resolve("approve", state, typed)
                assert resolved is not None, f"{spec.name}: no approval route from {state}"
                steps.append(Step("approve", state, resolved.dest, st.review.roles, st.review))
                state = resolved.dest
                continue
            options = [t for t in spec.transitions_from(state) if not spec.state(t.dest).final]
            options = options or list(spec.transitions_from(state))
            resolved = flow.resolve(options[0].action, state, typed)
            assert resolved is not None and resolved.transition is not None
            t = resolved.transition
            steps.append(Step(t.action, state, t.dest, t.roles, owner_only=st.owner_only))
            state = t.dest
        side = [
            Step(t.action, t.source, t.dest, t.roles, owner_only=spec.state(t.source).owner_only)
            for t in spec.transitions_from(spec.initial)
            if spec.state(t.dest).final
        ][:1]
        editors = spec.state(spec.initial).editable_by
        first = steps[0].roles if steps else ()
        creator_roles = tuple(r for r in editors if r in first) or tuple(editors)
        columns = report_index.data_columns(spec, data)
        varied = tuple(name for name in VARIED if isinstance(data.get(name), str))
        marked = {**data, **{name: f"@@{name}@@" for name in varied}}
        plans.append(
            FlowPlan(
                spec.name,
                version.id,
                version.version,
                data,
                json.dumps(data, ensure_ascii=False),
                spec.initial,
                steps,
                side,
                creator_roles,
                frozenset(s.name for s in spec.states if s.is_review),
                {s.name: report_index.status_of(spec, s.name) for s in spec.states},
                report_index.MILESTONES.get(spec.name, frozenset()),
                tuple(columns[c] for c in COLUMNS["report_documents"][-7:]),
                varied,
                json.dumps(marked, ensure_ascii=False),
                audit.canonical_json(marked),
            )
        )
    return plans


# --- rows ---------------------------------------------------------------------------------------
COLUMNS = {
    "users": ("id", "username", "display_name", "password_hash", "active", "created_at"),
    "user_roles": ("user_id", "role"),
    "documents": (
        "id", "flow_name", "flow_version_id", "state", "revision", "review_round", "data",
        "created_by_id", "created_at", "updated_at", "entered_by_id", "entered_at",
    ),
    "document_revisions": ("id", "document_id", "number", "data", "author_id", "created_at"),
    "reviews": (
        "id", "document_id", "state", "round", "revision", "user_id", "decision", "comment", "at",
        "event_seq",
    ),
    "audit_events": (
        "hash", "id", "at", "chain_key", "chain_seq", "prev_hash", "document_id", "flow",
        "flow_version", "actor", "action", "outcome", "code", "from_state", "to_state",
        "revision", "comment", "details", "key_id", "data_hash",
    ),
    "audit_chains": (
        "key", "position", "prev_hash", "hash", "length", "head", "opened_at", "key_id",
    ),
    "report_documents": (
        "document_id", "flow", "state", "status", "created_by", "created_at", "finished_at",
        "milestone_at", "last_activity_at",
        # from the data (report_index.data_columns), the same for every document of a flow
        "amount_fen", "contract_amount_fen", "customer", "contract_no", "sales_rep", "paid",
        "due_date",
    ),
    "report_steps": (
        "id", "document_id", "flow", "state", "entered_at", "left_at", "seconds", "outcome",
        "reason", "decided_by",
    ),
}  # fmt: skip
STEP_STRIDE = 8  # report_steps ids per document
OUTCOMES = {"approve": "approved", "reject": "rejected"}


@dataclass
class Job:
    """What a worker needs: the plans, the users by role, where to write, and its slice."""

    url: str
    schema: str | None
    plans: list[FlowPlan]
    pools: dict[str, list[tuple[int, str]]]  # role → [(id, username)]
    busy: tuple[int, str, frozenset[str]]
    sizes: Sizes
    event_base: int
    start: int  # first document index (0-based) of this chunk
    stop: int
    registry_prev: str  # the registry hash before this chunk's first chain
    now: dt.datetime
    seed: int = 15


def _pick(rng: random.Random, pool: list[tuple[int, str]], exclude: set[int]) -> tuple[int, str]:
    while True:
        user = pool[int(rng.random() * len(pool))]
        if user[0] not in exclude:
            return user


def _bucket(rng: random.Random, plan: FlowPlan, sizes: Sizes) -> tuple[list[Step], bool]:
    """Where this document stops: (steps done, whether it waits in a review state)."""
    reviews = plan.review_positions()
    roll = rng.random()
    p_open = sizes.open_tasks / sizes.documents
    if roll < p_open and reviews:
        return plan.steps[: rng.choice(reviews)], True
    roll -= p_open
    if roll < 0.03 and plan.side:
        return plan.side, False
    roll -= 0.03
    if roll < 0.04:
        return [], False  # a draft
    roll -= 0.04
    between = [i for i in range(1, len(plan.steps)) if plan.steps[i].review is None]
    if roll < 0.02 * len(between):
        return plan.steps[: between[int(roll / 0.02)]], False
    return plan.steps, False


def build_chunk(job: Job) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of documents [start, stop): documents, revisions, reviews, events, chains and
    the report rows."""
    rows: dict[str, list[tuple[Any, ...]]] = {k: [] for k in COLUMNS if k not in ("users",)}
    prev_registry = job.registry_prev
    rng = random.Random(job.seed * 1_000_003 + job.start)  # one per chunk: seeding is slow
    sealers = {
        plan.name: Sealer(
            {
                "flow": plan.name,
                "flow_version": plan.version,
                "outcome": "ok",
                "revision": 1,
            }
        )
        for plan in job.plans
    }
    registry = registry_seals(audit.keyring().current_id)
    for index in range(job.start, job.stop):
        prev_registry = _document(job, index, rows, prev_registry, rng, sealers, registry)
    return rows


def _document(
    job: Job,
    index: int,
    rows: dict[str, list[tuple[Any, ...]]],
    prev_registry: str,
    rng: random.Random,
    sealers: dict[str, Sealer],
    registry: Any,
) -> str:
    """Append one document's rows; returns the registry hash after its chain."""
    span = dt.timedelta(days=365)
    origin = job.now - span - dt.timedelta(days=2)
    busy_id, busy_name, busy_roles = job.busy
    # The busy reviewer's roles fit roughly 60 % of open documents.
    busy_share = min(1.0, job.sizes.busy_decided / max(job.sizes.open_tasks * 0.6, 1))
    doc_id = index + 1
    plan = job.plans[index % len(job.plans)]
    sealer = sealers[plan.name]
    steps, waiting = _bucket(rng, plan, job.sizes)
    contract = int(rng.random() * max(1, job.sizes.documents // 6))
    data_json, data_hash, report_data = plan.document_data(contract)
    at = origin + span * (index / job.sizes.documents) + dt.timedelta(seconds=rng.random())
    creator = _pick(rng, job.pools[rng.choice(plan.creator_roles)], {busy_id})
    created_at = at
    chain = audit.document_chain(doc_id)
    events = rows["audit_events"]
    first_event = len(events)
    next_id = job.event_base + index * EVENT_STRIDE + 1
    review_ids = iter(range(index * REVIEW_STRIDE + 1, 1 << 62))
    step_ids = iter(range(index * STEP_STRIDE + 1, 1 << 62))
    head = audit.GENESIS
    seq = 0
    # What report_index would keep (record_event + refresh, event by event).
    open_step: list[Any] | None = None
    finished_at = milestone_at = None
    steps_rows = rows["report_steps"]

    def add(
        actor: str, action: str, source: str, dest: str, details: dict[str, Any] | None = None
    ) -> None:
        nonlocal head, seq, open_step, finished_at, milestone_at
        seq += 1
        event_id = next_id + seq - 1
        details_json = sealer.details(details)
        sealed = sealer.seal(
            event_id,
            at,
            chain,
            seq,
            head,
            doc_id,
            actor,
            action,
            source,
            dest,
            details_json,
            data_hash,
        )
        events.append(
            (sealed, event_id, at, chain, seq, head, doc_id, plan.name, plan.version, actor,
             action, "ok", None, source, dest, 1, "", details_json, sealer.key_id,
             data_hash)
        )  # fmt: skip
        head = sealed
        if source != dest:
            if open_step is not None:
                open_step[5] = at
                open_step[6] = max(0, int((at - open_step[4]).total_seconds()))
                open_step[7] = OUTCOMES.get(action, "moved")
                open_step[9] = actor
                steps_rows.append(tuple(open_step))
                open_step = None
            if dest in plan.review_states:
                open_step = [next(step_ids), doc_id, plan.name, dest, at, None, None, None, None,
                             None]  # fmt: skip
        if plan.status[dest] == "open":
            finished_at = None
        elif finished_at is None:
            finished_at = at
        if dest not in plan.milestones:
            milestone_at = None
        elif milestone_at is None:
            milestone_at = at

    add(creator[1], "create", plan.initial, plan.initial)
    actors = {creator[0], busy_id}
    entered_by = creator
    entered_at = at
    state, review_round = plan.initial, 0
    for step in steps:
        at += dt.timedelta(minutes=5 + int(rng.random() * 596))
        if step.review is None:
            if step.owner_only:
                actor = creator
            else:
                actor = _pick(rng, job.pools[rng.choice(step.roles)], actors)
            actors.add(actor[0])
            add(actor[1], step.action, step.source, step.dest)
            entered_at = at
        else:
            roles = list(step.roles)
            if step.review.require_each_role:
                chosen = [roles[0], roles[1 % len(roles)]]
            else:
                chosen = [rng.choice(roles), rng.choice(roles)]
            for n, role in enumerate(chosen, 1):
                if n == 2:
                    at += dt.timedelta(minutes=1 + int(rng.random() * 120))
                actor = _pick(rng, job.pools[role], actors)
                actors.add(actor[0])
                dest = step.dest if n == 2 else step.source
                rows["reviews"].append(  # tied to the event added next (its chain_seq)
                    (next(review_ids), doc_id, step.source, review_round, 1, actor[0],
                     "approve", "", at, seq + 1)
                )  # fmt: skip
                details = {"approvals": n, "required": step.review.required}
                add(actor[1], "approve", step.source, dest, details)
            entered_at = at
        state = step.dest
        entered_by = actor
        if state in plan.review_states:  # entering a review state opens a round
            review_round += 1
    if waiting:
        review = next(s for s in plan.steps if s.source == state).review
        assert review is not None
        approver = None
        if busy_roles & set(review.roles) and rng.random() < busy_share:
            approver = (busy_id, busy_name)
        elif rng.random() < 0.5:
            approver = _pick(rng, job.pools[rng.choice(review.roles)], actors)
        if approver is not None:
            at += dt.timedelta(minutes=1 + int(rng.random() * 120))
            rows["reviews"].append(  # tied to the event added next (its chain_seq)
                (next(review_ids), doc_id, state, review_round, 1, approver[0], "approve",
                 "", at, seq + 1)
            )  # fmt: skip
            details = {"approvals": 1, "required": review.required}
            add(approver[1], "approve", state, state, details)
    if open_step is not None:
        steps_rows.append(tuple(open_step))
    rows["documents"].append(
        (doc_id, plan.name, plan.version_id, state, 1, review_round, data_json,
         creator[0], created_at, at, entered_by[0], entered_at)
    )  # fmt: skip
    rows["document_revisions"].append((doc_id, doc_id, 1, data_json, creator[0], created_at))
    rows["report_documents"].append(
        (doc_id, plan.name, state, plan.status[state], creator[1], created_at, finished_at,
         milestone_at, at, *report_data)
    )  # fmt: skip
    position = doc_id  # the system chain holds position 0
    sealed = registry(doc_id, prev_registry)
    rows["audit_chains"].append(
        (chain, position, prev_registry, sealed, len(events) - first_event, head, created_at,
         sealer.key_id)
    )  # fmt: skip
    return sealed


# --- writing ------------------------------------------------------------------------------------
def _sqlite_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):  # SQLAlchemy's SQLite format, naive UTC
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return value


def write(url: str, schema: str | None, rows: dict[str, list[tuple[Any, ...]]]) -> float:
    """Write rows in one transaction: binary COPY on PostgreSQL, executemany on SQLite.
    Returns the CPU seconds the PostgreSQL backend spent (when it runs on this machine)."""
    order = ["users", "user_roles", "documents", "document_revisions", "reviews",
             "audit_events", "audit_chains", "report_documents", "report_steps"]  # fmt: skip
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.split("///", 1)[1], timeout=600, isolation_level=None)
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN IMMEDIATE")
        for table in order:
            if rows.get(table):
                cols = COLUMNS[table]
                sql = f"INSERT INTO {table} ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})"
                conn.executemany(sql, ([_sqlite_value(v) for v in r] for r in rows[table]))
        conn.execute("COMMIT")
        conn.close()
        return 0.0
    import psycopg

    conn = psycopg.connect(libpq_url(url), **({"options": _options(schema)} if schema else {}))
    conn.adapters.register_dumper(None, _JsonbDumper)  # by oid: what set_types picks
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        backend = cur.fetchone()[0]  # type: ignore[index]
        before = _proc_cpu(backend)
        try:  # rows are consistent by construction: skip per-row foreign-key triggers
            cur.execute("SET session_replication_role = replica")
        except psycopg.Error:  # not a superuser: keep the checks
            conn.rollback()
        for table in order:
            if rows.get(table):
                types = _column_types(cur, table)
                columns = ",".join(COLUMNS[table])
                with cur.copy(f"COPY {table} ({columns}) FROM STDIN BINARY") as copy:
                    copy.set_types(types)
                    for row in rows[table]:
                        copy.write_row(row)
        conn.commit()
        return _proc_cpu(backend) - before


def _column_types(cur: Any, table: str) -> list[str]:
    """The PostgreSQL type of each column written (binary COPY sends typed values)."""
    cur.execute(
        "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        (table,),
    )
    found = dict(cur.fetchall())
    return [found[c] for c in COLUMNS[table]]


def _jsonb_dumper() -> type:
    from psycopg.adapt import Dumper
    from psycopg.postgres import types
    from psycopg.pq import Format

    class JsonbDumper(Dumper):
        """jsonb, binary: a str is JSON text already (each flow's data, encoded once), other
        values are encoded here."""

        format = Format.BINARY
        oid = types["jsonb"].oid

        def dump(self, obj: Any) -> bytes:
            text = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
            return b"\x01" + text.encode()

    return JsonbDumper


_JsonbDumper = _jsonb_dumper()


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _options(schema: str | None) -> str:
    return f"-csearch_path={schema}" if schema else ""


def _work(job: Job) -> tuple[float, float]:
    """Build and write one chunk; returns (this process's CPU seconds, the PostgreSQL
    backend's CPU seconds spent on the COPY)."""
    begin = time.process_time()
    rows = build_chunk(job)
    backend = write(job.url, job.schema, rows)
    return time.process_time() - begin, backend


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a local process (0 if it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the whole data set -------------------------------------------------------------------------
@dataclass
class Generated:
    seconds: float
    documents: int
    users: int
    open_documents: int
    events: int
    busy: str
    reviewer: str
    auditor: str


def generate(session: Session, url: str, schema: str | None, sizes: Sizes) -> Generated:
    """Create the schema, publish the shipped flows, then bulk-load users and documents."""
    start = time.perf_counter()
    mark = _marker(start)
    Base.metadata.create_all(session.get_bind())
    services.publish_files(session, sorted((ROOT / "definitions").glob("*.yaml")))
    plans = plan_flows(session)
    system = session.scalars(select(AuditChain).where(AuditChain.key == audit.SYSTEM_CHAIN)).one()
    last_id = session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1)) or 0
    now = audit.utcnow()
    users, pools, busy_roles = _users(sizes, system, last_id, now)
    session.commit()
    write(url, schema, users)
    session.execute(
        text("UPDATE audit_chains SET length = :n, head = :h WHERE key = :k"),
        {"n": system.length, "h": system.head, "k": audit.SYSTEM_CHAIN},
    )
    session.commit()
    busy_id = next(u[0] for u in users["users"] if u[1] == BUSY_USER)
    # Secondary indexes are built once after the load, not maintained row by row; on
    # PostgreSQL the unique constraints too (sorted once rather than probed per row; building
    # them checks the rows as inserting would). The primary keys stay: foreign keys need them.
    indexes: list[Any] = [i for t in BULK_TABLES for i in Base.metadata.tables[t].indexes]
    if session.get_bind().dialect.name == "postgresql":
        indexes += [
            c
            for t in BULK_TABLES
            for c in Base.metadata.tables[t].constraints
            if isinstance(c, UniqueConstraint)
        ]
    with session.get_bind().begin() as conn:
        for index in indexes:
            conn.execute(_ddl(index, create=False))
    event_base = last_id + len(users["users"]) + 10
    jobs = []
    prev = system.hash
    registry = registry_seals(audit.keyring().current_id)
    for begin in range(0, sizes.documents, CHUNK):
        stop = min(begin + CHUNK, sizes.documents)
        jobs.append(
            Job(url, schema, plans, pools, (busy_id, BUSY_USER, busy_roles), sizes, event_base,
                begin, stop, prev, now)
        )  # fmt: skip
        for doc_id in range(begin + 1, stop + 1):  # the registry runs on, chunk after chunk
            prev = registry(doc_id, prev)
    mark("users")
    session.close()
    session.get_bind().dispose()  # forked workers must not share the parent's connections
    # One more worker than cores: while one waits for its COPY, another builds rows.
    workers = max(1, min((os.cpu_count() or 1) + 1, len(jobs)))
    if workers == 1:
        spent = [_work(job) for job in jobs]
    else:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            spent = list(pool.imap_unordered(_work, jobs))
    mark(
        "documents",
        f"{workers} workers: {sum(s[0] for s in spent):.1f} s CPU building and sending, "
        f"PostgreSQL backends {sum(s[1] for s in spent):.1f} s CPU",
    )
    _build_indexes(session.get_bind(), indexes)
    mark("indexes")
    _finish(session)
    mark("analyze")
    events = session.scalar(text("SELECT count(*) FROM audit_events")) or 0
    reviewer = pools["warehouse"][0][1]
    auditor = pools["auditor"][0][1]
    open_docs = _open_documents(session, plans)
    session.commit()  # SQLite: every transaction here holds the write lock
    return Generated(
        time.perf_counter() - start,
        sizes.documents,
        len(users["users"]),
        open_docs,
        events,
        BUSY_USER,
        reviewer,
        auditor,
    )


def _marker(start: float) -> Any:
    def mark(label: str, note: str = "") -> None:
        if os.environ.get("BENCH_VERBOSE"):
            print(f"  data: {label} done at {time.perf_counter() - start:.1f} s {note}".rstrip(),
                  flush=True)  # fmt: skip

    return mark


def _open_documents(session: Session, plans: list[FlowPlan]) -> int:
    pairs = {(p.version_id, s.source) for p in plans for s in p.steps if s.review is not None}
    total = 0
    for version_id, state in pairs:
        total += session.scalar(
            text("SELECT count(*) FROM documents WHERE flow_version_id = :v AND state = :s"),
            {"v": version_id, "s": state},
        )
    return total


def _users(
    sizes: Sizes, system: AuditChain, last_id: int, now: dt.datetime
) -> tuple[dict[str, list[tuple[Any, ...]]], dict[str, list[tuple[int, str]]], frozenset[str]]:
    """Users with one role each (plus the busy reviewer), and their `user_create` events on
    the system chain, which `system` is advanced over."""
    password = security.hash_password("bench-password")  # one hash: scrypt is not measured
    rows: dict[str, list[tuple[Any, ...]]] = {"users": [], "user_roles": [], "audit_events": []}
    pools: dict[str, list[tuple[int, str]]] = {role: [] for role in ROLES}
    base_id = 1000  # above the few users publishing may create
    roles = [r for r, share in ROLE_SHARE.items() for _ in range(max(2, round(share * 100)))]
    busy_roles = frozenset({"warehouse", "finance", "sales_manager"})
    people = [(f"u{n:06d}", (roles[n % len(roles)],)) for n in range(1, sizes.users)]
    people.append((BUSY_USER, tuple(sorted(busy_roles))))
    at = now - dt.timedelta(days=400)
    for n, (name, user_roles) in enumerate(people):
        user_id = base_id + n
        rows["users"].append((user_id, name, f"用户{n}", password, True, at))
        for role in user_roles:
            rows["user_roles"].append((user_id, role))
            if name != BUSY_USER:
                pools[role].append((user_id, name))
        event = Event(
            id=last_id + 1 + n,
            at=at,
            chain_key=audit.SYSTEM_CHAIN,
            chain_seq=system.length + 1,
            prev_hash=system.head,
            action="user_create",
            outcome="ok",
            details={"user": name, "roles": list(user_roles)},
        )
        event.hash = seal(event)
        system.length, system.head = event.chain_seq, event.hash
        rows["audit_events"].append(
            (event.hash, *(getattr(event, f) for f in COLUMNS["audit_events"][1:]))
        )
    return rows, pools, busy_roles


def _build_indexes(bind: Any, indexes: list[Any]) -> None:
    """Create the secondary indexes (and on PostgreSQL the unique constraints) after the load;
    on PostgreSQL on two connections at once (largest tables first), each with enough memory
    to sort in one pass."""
    if bind.dialect.name != "postgresql":
        with bind.begin() as conn:
            for index in indexes:
                _timed_create(index, conn)
        return
    import threading

    todo = sorted(indexes, key=lambda i: i.table.name != "audit_events")
    lock = threading.Lock()

    def builder() -> None:
        with bind.connect() as conn:
            conn.execute(text("SET maintenance_work_mem = '256MB'"))
            while True:
                with lock:
                    if not todo:
                        return
                    index = todo.pop(0)
                _timed_create(index, conn)
                conn.commit()

    threads = [threading.Thread(target=builder) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _ddl(index: Any, *, create: bool) -> Any:
    """The statement that creates or drops an index or a unique constraint."""
    if isinstance(index, UniqueConstraint):
        return AddConstraint(index) if create else DropConstraint(index)
    return CreateIndex(index) if create else DropIndex(index)


def _timed_create(index: Any, conn: Any) -> None:
    started = time.perf_counter()
    conn.execute(_ddl(index, create=True))
    if os.environ.get("BENCH_VERBOSE"):
        print(f"    index {index.name}: {time.perf_counter() - started:.1f} s", flush=True)


def _finish(session: Session) -> None:
    """Sequences past the loaded ids (PostgreSQL) and fresh planner statistics."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        for table in ("users", "documents", "document_revisions", "reviews", "audit_events",
                      "report_steps"):  # fmt: skip
            session.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
            )
        session.commit()
        with bind.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            # Tables read through index-only scans need the visibility map, which VACUUM sets:
            # the documents (the inbox's order index), the reviews (the four-eyes probes and
            # the approvals per reviewer) and the report tables (covering indexes). A running
            # database has it from autovacuum, which vacuums insert-only tables too (PostgreSQL
            # 13+); a host where autovacuum is off would otherwise measure heap fetches
            # production does not make. Everything else only needs planner statistics.
            vacuumed = ("documents", "reviews", "report_documents", "report_steps")
            conn.execute(text(f"VACUUM ANALYZE {', '.join(vacuumed)}"))
            # This schema's other tables only: a bare ANALYZE walks every schema of the
            # database (a test database holds many), 30 s more at 1M beside one other data set.
            rest = [t for t in Base.metadata.tables if t not in vacuumed]
            conn.execute(text(f"ANALYZE {', '.join(rest)}"))
    else:
        session.execute(text("ANALYZE"))
        session.commit()


def main() -> None:
    """`python -m benchmarks.data [--documents N] [--keep] URL`: generate only (schema
    `fuhe_gen` on PostgreSQL), print the stages and the time, then `audit verify`."""
    import argparse
    import secrets

    from sqlalchemy.orm import sessionmaker

    from workflow.db import make_engine

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("url")
    parser.add_argument("--documents", type=int, default=FULL.documents)
    parser.add_argument("--no-verify", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("BENCH_VERBOSE", "1")
    audit.configure(audit.Keyring.from_settings(os.environ.get("AUDIT_KEY", secrets.token_hex(32))))
    security.SCRYPT_N = 2**4
    url, schema = args.url, None
    if url.startswith("postgresql"):
        schema = "fuhe_gen"
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        engine.dispose()
        url = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    sizes = scaled(args.documents)
    factory = sessionmaker(make_engine(url), expire_on_commit=False)
    gen = generate(factory(), url, schema, sizes)
    print(f"generated {gen.documents:,} documents, {gen.events:,} events, "
          f"{gen.open_documents:,} open tasks in {gen.seconds:.1f} s", flush=True)  # fmt: skip
    if not args.no_verify:
        begin = time.perf_counter()
        result = audit.verify(factory())
        print(f"audit verify: {'ok' if result.ok else result.report} ({result.events:,} events, "
              f"{result.chains:,} chains, {time.perf_counter() - begin:.1f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
