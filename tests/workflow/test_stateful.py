"""A hypothesis state machine throws random people and random actions at a few shipments.

Each example starts from a fresh SQLite file database. After every step the database is read
back and checked against the rules of review (not against the engine's own bookkeeping), and
against a small independent model of what each action should have done. A refused action must
change nothing but the audit log.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)
from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import PASSWORD

# The review rules are tested on the frozen shipment (tests/data/flows/rules/shipment.yaml).
from tests.conftest import RULES_DEFINITIONS as DEFINITIONS
from workflow import accounts, audit, security, services
from workflow.db import Base, make_engine
from workflow.errors import (
    ActionNotAllowed,
    AlreadyReviewed,
    CheckFailed,
    InvalidData,
    NotFound,
    NotOwner,
    Refused,
    RoleNotAllowed,
    SelfReview,
    StaleRevision,
    WorkflowError,
)
from workflow.models import AuditEvent, Document, DocumentRevision, Review, User

security.SCRYPT_N = 2**4  # as in conftest: cheap hashes for test users

# --- the shipment flow, modelled by hand (definitions/shipment.yaml) ---------------------------
FLOW_ROLES = frozenset({"sales_admin", "gm", "sales_manager", "warehouse"})
# state → (required, roles, on_approve, on_reject); both say `require_each_role: true`
REVIEW = {
    "gm_exception": (2, ("gm", "sales_manager"), "double_check", "draft"),
    "double_check": (2, ("sales_admin", "warehouse"), "ready_to_ship", "draft"),
}
EDITABLE = {
    "draft": frozenset({"sales_admin"}),
    "ready_to_ship": frozenset({"warehouse"}),
    "shipped": frozenset({"sales_admin"}),
}
# A draft is its creator's: colleagues with the role are refused (`owner_only`, by default on
# the initial state).
OWNER_ONLY = frozenset({"draft"})
# After review only these fields may change (the definition's `editable_fields`).
EDITABLE_FIELDS = {"ready_to_ship": {"tracking_no"}, "shipped": {"delivery_note_signed"}}
STATES = ("draft", "gm_exception", "double_check", "ready_to_ship", "shipped", "delivered",
          "cancelled")  # fmt: skip


def covered(approvers: list[set[str]], roles: tuple[str, ...]) -> int:
    """How many of `roles` distinct approvers can stand for at once (by brute force)."""
    best = 0
    for pick in itertools.product(range(-1, len(approvers)), repeat=len(roles)):
        used = [a for a in pick if a >= 0]
        if len(used) == len(set(used)) and all(
            a < 0 or role in approvers[a] for role, a in zip(roles, pick, strict=True)
        ):
            best = max(best, len(used))
    return best


def _items_total(data: Mapping[str, Any]) -> Decimal:
    return sum((r["qty"] * Decimal(r["unit_price"]) for r in data["items"]), Decimal(0))


def _needs_gm(data: Mapping[str, Any]) -> bool:
    return data.get("held_orders", 0) >= 2 or not data.get("paid", False)


def _amount_matches(data: Mapping[str, Any]) -> bool:
    return _items_total(data) == Decimal(data["amount"])


def _can_ship(data: Mapping[str, Any]) -> bool:
    return data["carrier"] == "自提" or data.get("tracking_no", "") != ""


# action → [(source, roles, when, dest, check)], in definition order
TRANSITIONS: dict[str, list[tuple[str, frozenset[str], Callable[..., bool] | None, str,
                                  Callable[..., bool]]]] = {
    "submit": [
        ("draft", frozenset({"sales_admin"}), _needs_gm, "gm_exception", _amount_matches),
        ("draft", frozenset({"sales_admin"}), None, "double_check", _amount_matches),
    ],
    "ship": [("ready_to_ship", frozenset({"warehouse"}), None, "shipped", _can_ship)],
    "confirm_delivery": [
        ("shipped", frozenset({"sales_admin"}), None, "delivered",
         lambda d: bool(d.get("delivery_note_signed"))),
    ],
    "cancel": [("draft", frozenset({"sales_admin"}), None, "cancelled", lambda d: True)],
}  # fmt: skip

USERS: dict[str, tuple[str, ...]] = {
    "zhang": ("sales_admin",),
    "wang": ("sales_admin",),
    "chen": ("sales_admin",),
    "li": ("warehouse",),
    "zhou": ("warehouse",),
    "liu": ("sales_manager",),
    "sun": ("sales_manager",),
    "ma": ("gm",),
    "he": ("gm",),
    "shen": ("auditor",),
    "xu": ("sales",),  # no part in shipments: may not even see them
    "admin": ("flow_admin",),
    "duo": ("sales_admin", "warehouse"),
    "gm_wh": ("gm", "warehouse"),  # can approve both levels: cross-level rule matters
    "mgr_sa": ("sales_manager", "sales_admin"),
    "audit_sa": ("auditor", "sales_admin"),  # an auditor never acts, whatever else they hold
}
NAMES = sorted(USERS)

# --- data ---------------------------------------------------------------------------------------
ITEMS = {
    "two_lines": [
        {"product": "阿莫西林胶囊", "spec": "0.25g*24粒", "qty": 100, "unit_price": "28.00"},
        {"product": "布洛芬缓释胶囊", "spec": "0.3g*20粒", "qty": 200, "unit_price": "50.00"},
    ],
    "syringes": [{"product": "一次性注射器", "spec": "5ml", "qty": 3, "unit_price": "0.85"}],
    "free_sample": [{"product": "口罩样品", "qty": 2, "unit_price": "0.00"}],
}


def base_data(items: str, paid: bool, held: int, carrier: str) -> dict[str, Any]:
    rows = ITEMS[items]
    data = {
        "customer": "安庆某医药公司",
        "order_no": "SO-2026-1024",
        "items": rows,
        "amount": f"{_items_total({'items': rows}):.2f}",
        "carrier": carrier,
        "ship_by": "2026-12-01",
        "paid": paid,
        "held_orders": held,
        "delivery_note_signed": False,  # the definition's default, stored as such
    }
    return data


# A patch is (label, valid, build) where build(current data) → the patch sent to the engine.
VALID_PATCHES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "samples": lambda d: {"samples": "随货赠送口罩样品 2 盒"},
    "samples_other": lambda d: {"samples": "无"},
    "carrier_self": lambda d: {"carrier": "自提"},
    "carrier_express": lambda d: {"carrier": "快递"},
    "tracking": lambda d: {"tracking_no": "SF1234567890"},
    "clear_tracking": lambda d: {"tracking_no": ""},
    "paid": lambda d: {"paid": True},
    "unpaid": lambda d: {"paid": False},
    "held_0": lambda d: {"held_orders": 0},
    "held_2": lambda d: {"held_orders": 2},
    "signed": lambda d: {"delivery_note_signed": True},
    "wrong_amount": lambda d: {"amount": "1.00"},
    "fix_amount": lambda d: {"amount": f"{_items_total(d):.2f}"},
    "items_only": lambda d: {"items": ITEMS["syringes"]},
    "items_and_amount": lambda d: {"items": ITEMS["two_lines"], "amount": "12800.00"},
    "same": lambda d: {"carrier": d["carrier"]},  # changes nothing: no new revision
}
INVALID_PATCHES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "rounds_money": lambda d: {"amount": "0.005"},
    "negative_money": lambda d: {"amount": "-1.00"},
    "fullwidth": lambda d: {"amount": "１２３"},
    "no_items": lambda d: {"items": []},
    "zero_qty": lambda d: {"items": [{"product": "x", "qty": 0, "unit_price": "1.00"}]},
    "bad_choice": lambda d: {"carrier": "飞机"},
    "negative_held": lambda d: {"held_orders": -1},
    "bad_date": lambda d: {"ship_by": "2026-02-30"},
    "unknown_field": lambda d: {"discount": "10"},
    "yes_boolean": lambda d: {"paid": "yes"},
    "too_long": lambda d: {"order_no": "X" * 41},
    "clear_required": lambda d: {"customer": ""},
    "not_a_mapping": lambda d: ["amount", "1.00"],
}
PATCHES = sorted(VALID_PATCHES) + sorted(INVALID_PATCHES)

ACTIONS = ["approve", "approve", "approve", "reject", "submit", "ship", "cancel",
           "confirm_delivery", "to_ready_to_ship", "trigger", "delete"]  # fmt: skip
REVISIONS = ["current"] * 6 + ["stale", "future", "text", "bool"]
COMMENTS = ["", "", "核对无误", "规格与订单不符", "  ", "x" * 2001]


def _merge(data: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """What the engine stores: the merged data, with empty optional fields left out."""
    merged = {**data, **patch}
    return {k: v for k, v in merged.items() if v not in ("", None, [])}


# --- the model ----------------------------------------------------------------------------------
@dataclass
class ModelDoc:
    id: int
    creator: str
    data: dict[str, Any]
    state: str = "draft"
    revision: int = 1
    round: int = 0
    entered_by: str = ""
    editors: set[str] = field(default_factory=set)
    # (state, round, user, decision, revision)
    reviews: list[tuple[str, int, str, str, int]] = field(default_factory=list)

    def approvers(self) -> list[str]:
        return [
            u for s, r, u, d, rev in self.reviews
            if (s, r, d, rev) == (self.state, self.round, "approve", self.revision)
        ]  # fmt: skip

    def enter(self, state: str, actor: str) -> None:
        self.state = state
        self.entered_by = actor
        if state in REVIEW:
            self.round += 1


def may_see(doc: ModelDoc, user: str) -> bool:
    roles = set(USERS[user])
    return user == doc.creator or "auditor" in roles or bool(roles & FLOW_ROLES)


def predict_act(doc: ModelDoc, user: str, action: str, revision: Any, comment: str
                ) -> type[WorkflowError] | None:  # fmt: skip
    """The error the engine must raise, or None when the action must succeed."""
    roles = set(USERS[user])
    if len(comment.strip()) > services.MAX_COMMENT_LENGTH:
        return InvalidData
    if not may_see(doc, user):
        return NotFound
    if isinstance(revision, bool) or not isinstance(revision, int):
        return InvalidData
    if revision != doc.revision:
        return StaleRevision
    if doc.state in REVIEW:
        required, review_roles, _, _ = REVIEW[doc.state]
        if action not in ("approve", "reject"):
            return ActionNotAllowed
        if "auditor" in roles or not roles & set(review_roles):
            return RoleNotAllowed
        if user in (doc.creator, doc.entered_by) or user in doc.editors:
            return SelfReview
        decided = {u for s, r, u, _, _ in doc.reviews if (s, r) == (doc.state, doc.round)}
        if user in decided:
            return AlreadyReviewed
        approved_elsewhere = {
            u for s, _, u, d, _ in doc.reviews if d == "approve" and s != doc.state
        }
        if user in approved_elsewhere:
            return AlreadyReviewed
        if action == "approve":  # require_each_role: the quorum must stay reachable
            approvers = [set(USERS[u]) for u in doc.approvers()] + [roles]
            if len(review_roles) - covered(approvers, review_roles) > required - len(approvers):
                return RoleNotAllowed
    else:
        candidates = [t for t in TRANSITIONS.get(action, []) if t[0] == doc.state]
        if not candidates:
            return ActionNotAllowed
        if "auditor" in roles:
            return RoleNotAllowed
        if not any(t[1] & roles for t in candidates):
            return RoleNotAllowed
        if doc.state in OWNER_ONLY and user != doc.creator:
            return NotOwner
        chosen = next((t for t in candidates if t[2] is None or t[2](doc.data)), None)
        if chosen is None:
            return ActionNotAllowed
        if not chosen[4](doc.data):
            return CheckFailed
        return None
    if action == "reject" and not comment.strip():
        return InvalidData
    return None


def apply_act(doc: ModelDoc, user: str, action: str) -> None:
    if doc.state in REVIEW:
        required, _, on_approve, on_reject = REVIEW[doc.state]
        doc.reviews.append((doc.state, doc.round, user, action, doc.revision))
        if action == "reject":
            doc.enter(on_reject, user)
            return
        approvers = [set(USERS[u]) for u in doc.approvers()]
        if len(approvers) >= required and covered(approvers, REVIEW[doc.state][1]) == len(
            REVIEW[doc.state][1]
        ):
            doc.enter(on_approve, user)
        return
    candidates = [t for t in TRANSITIONS[action] if t[0] == doc.state]
    chosen = next(t for t in candidates if t[2] is None or t[2](doc.data))
    doc.enter(chosen[3], user)


def predict_edit(doc: ModelDoc, user: str, label: str, patch: Any, revision: Any
                 ) -> type[WorkflowError] | None:  # fmt: skip
    roles = set(USERS[user])
    if not may_see(doc, user):
        return NotFound
    if "auditor" in roles or not roles & EDITABLE.get(doc.state, frozenset()):
        return ActionNotAllowed
    if doc.state in OWNER_ONLY and user != doc.creator:
        return NotOwner
    if isinstance(revision, bool) or not isinstance(revision, int):
        return InvalidData
    if revision != doc.revision:
        return StaleRevision
    if label in INVALID_PATCHES:
        return InvalidData
    if patch is None:
        patch = (VALID_PATCHES.get(label) or INVALID_PATCHES[label])(doc.data)
    merged = _merge(doc.data, patch)
    changed = {k for k in set(merged) | set(doc.data) if merged.get(k) != doc.data.get(k)}
    if doc.state in EDITABLE_FIELDS and changed - EDITABLE_FIELDS[doc.state]:
        return ActionNotAllowed
    return None


def _short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA busy_timeout=2000")


# --- the machine --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    documents: tuple[tuple[Any, ...], ...]
    reviews: int
    revisions: int
    last_event: int


class ShipmentMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="fuhe_stateful_"))
        url = f"sqlite:///{self.tmp / 'db.sqlite3'}"
        self.engine = make_engine(url)
        Base.metadata.create_all(self.engine)
        self.session: Session = sessionmaker(self.engine, expire_on_commit=False)()
        # The checks read on their own connection; a transaction the engine left open (and so
        # SQLite's write lock) makes them fail within 2 s instead of waiting 30.
        self.read_engine = make_engine(url)
        sa_event.listen(self.read_engine, "connect", _short_busy_timeout)
        self.reader: Session = sessionmaker(self.read_engine)()
        services.publish_files(self.session, DEFINITIONS)
        self.users: dict[str, User] = {
            name: accounts.create_user(self.session, name, PASSWORD, roles)
            for name, roles in USERS.items()
        }
        self.docs: list[ModelDoc] = []

    def teardown(self) -> None:
        self.session.close()
        self.reader.close()
        self.engine.dispose()
        self.read_engine.dispose()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- helpers ------------------------------------------------------------------------------
    def _doc(self, index: int) -> ModelDoc:
        return self.docs[index % len(self.docs)]

    @staticmethod
    def _revision(doc: ModelDoc, choice: str) -> Any:
        return {
            "current": doc.revision,
            "stale": doc.revision - 1,
            "future": doc.revision + 1,
            "text": str(doc.revision),
            "bool": True,
        }[choice]

    def snapshot(self) -> Snapshot:
        r = self.reader
        documents = tuple(
            (d.id, d.state, d.revision, d.review_round, d.data, d.entered_by_id, d.updated_at)
            for d in r.scalars(select(Document).order_by(Document.id))
        )
        snap = Snapshot(
            documents=documents,
            reviews=r.scalar(select(func.count()).select_from(Review)) or 0,
            revisions=r.scalar(select(func.count()).select_from(DocumentRevision)) or 0,
            last_event=r.scalar(select(func.max(AuditEvent.id))) or 0,
        )
        r.rollback()
        return snap

    def new_events(self, after: int) -> list[AuditEvent]:
        events = list(
            self.reader.scalars(
                select(AuditEvent).where(AuditEvent.id > after).order_by(AuditEvent.id)
            )
        )
        self.reader.rollback()
        return events

    def attempt(
        self,
        expected: type[WorkflowError] | None,
        call: Callable[[], Any],
        *,
        action: str,
        user: str,
        document_id: int | None,
    ) -> bool:
        """Run one service call; check it did what the model says. True if it succeeded."""
        before = self.snapshot()
        try:
            call()
        except WorkflowError as exc:
            assert expected is not None, f"{user} {action}: engine refused {exc!r}, model allowed"
            assert type(exc) is expected, (
                f"{user} {action}: engine raised {exc!r}, model {expected}"
            )
            # a failed command leaves no transaction (and so no lock) behind
            assert not self.session.in_transaction(), f"{action} left its transaction open"
            after = self.snapshot()
            assert replace(after, last_event=before.last_event) == before, (
                f"{user} {action} was refused ({exc.code}) but changed the data"
            )
            events = self.new_events(before.last_event)
            if isinstance(exc, Refused):
                assert len(events) == 1, f"refused {action}: {len(events)} audit events"
                event = events[0]
                assert (event.outcome, event.code, event.actor, event.action) == (
                    "refused", exc.code, user, action,
                ), (event.outcome, event.code, event.actor, event.action)  # fmt: skip
                assert event.document_id == document_id
                assert event.from_state == event.to_state
            else:  # invalid input / not found: nothing changes, at most a refusal is recorded
                assert len(events) <= 1 and all(e.outcome == "refused" for e in events)
            return False
        assert expected is None, f"{user} {action}: engine allowed it, model expected {expected}"
        assert not self.session.in_transaction()
        events = self.new_events(before.last_event)
        assert events and all(e.outcome == "ok" for e in events)
        return True

    # --- rules --------------------------------------------------------------------------------
    @initialize(paid=st.booleans(), held=st.integers(0, 3))
    def first_document(self, paid: bool, held: int) -> None:
        self.create("zhang", "two_lines", paid, held, "物流")

    @rule(
        user=st.sampled_from(NAMES),
        items=st.sampled_from(sorted(ITEMS)),
        paid=st.booleans(),
        held=st.integers(0, 3),
        carrier=st.sampled_from(["自提", "物流", "快递"]),
    )
    def create(self, user: str, items: str, paid: bool, held: int, carrier: str) -> None:
        if len(self.docs) >= 4:  # a few documents are enough (and a rule that is always enabled
            return  # keeps hypothesis from giving up on examples)
        data = base_data(items, paid, held, carrier)
        roles = set(USERS[user])
        expected = None if "sales_admin" in roles and "auditor" not in roles else RoleNotAllowed
        created: list[int] = []

        def call() -> None:
            process = services.create_document(self.session, self.users[user], "shipment", data)
            created.append(process.document.id)

        before = self.snapshot()
        try:
            call()
        except RoleNotAllowed as exc:
            assert expected is RoleNotAllowed, exc
            assert not self.session.in_transaction(), "a refused create left its transaction open"
            after = self.snapshot()
            assert replace(after, last_event=before.last_event) == before
            events = self.new_events(before.last_event)
            assert len(events) == 1, f"a refused create left {len(events)} audit events"
            assert (events[0].outcome, events[0].code, events[0].actor) == (
                "refused", "role_not_allowed", user,
            )  # fmt: skip
            return
        assert expected is None, f"{user} created a document"
        self.docs.append(ModelDoc(id=created[0], creator=user, data=data, entered_by=user,
                                  editors={user}))  # fmt: skip

    @rule(
        index=st.integers(0, 3),
        user=st.sampled_from(NAMES),
        action=st.sampled_from(ACTIONS),
        revision=st.sampled_from(REVISIONS),
        comment=st.sampled_from(COMMENTS),
    )
    def act(self, index: int, user: str, action: str, revision: str, comment: str) -> None:
        self._act(self._doc(index), user, action, self._revision(self._doc(index), revision),
                  comment)  # fmt: skip

    def _act(self, doc: ModelDoc, user: str, action: str, revision: Any, comment: str) -> None:
        expected = predict_act(doc, user, action, revision, comment)
        ok = self.attempt(
            expected,
            lambda: services.act(self.session, doc.id, self.users[user], action, revision, comment),
            action=action,
            user=user,
            document_id=doc.id,
        )
        if ok:
            apply_act(doc, user, action)
            event(f"reached {doc.state}")
        else:
            event(f"refused {action}: {expected.__name__ if expected else ''}")

    @rule(
        index=st.integers(0, 3),
        picks=st.lists(st.integers(0, 10_000), min_size=1, max_size=6),
        comment=st.sampled_from(["", "核对无误"]),
    )
    def progress(self, index: int, picks: list[int], comment: str) -> None:
        """Moves the model says will succeed, so that documents get somewhere.

        Forward actions by anyone allowed to take them; when none is possible, the edit that
        makes one possible (fix the amount, add a tracking number, record the signed note).
        """
        doc = self._doc(index)
        for pick in picks:
            if doc.state in REVIEW and pick % 2 == 0:  # someone who must not sign tries first
                self.forbidden(index, pick // 2)
            forward, why = ["submit", "approve", "ship", "confirm_delivery"], comment
            if pick % 7 == 3 and doc.state in REVIEW:  # now and then a rejection: start over
                forward, why = ["reject"], "数量与订单不符"
            fine = [
                (user, action)
                for action in forward
                for user in NAMES
                if predict_act(doc, user, action, doc.revision, why) is None
            ]
            if fine:
                user, action = fine[pick % len(fine)]
                self._act(doc, user, action, doc.revision, why)
                continue
            edits = [
                (user, label)
                for label in ("fix_amount", "tracking", "signed")
                for user in NAMES
                if predict_edit(doc, user, label, None, doc.revision) is None
                and _merge(doc.data, VALID_PATCHES[label](doc.data)) != doc.data
            ]
            if not edits:
                return
            user, label = edits[pick % len(edits)]
            self._edit(doc, user, label, doc.revision)

    @rule(index=st.integers(0, 3), pick=st.integers(0, 10_000))
    def forbidden(self, index: int, pick: int) -> None:
        """An approval or rejection the rules forbid (self-review, twice, cross-level, role)."""
        doc = self._doc(index)
        wrong: dict[type[WorkflowError], list[tuple[str, str]]] = {}
        for action in ("approve", "reject"):
            for user in NAMES:
                why = predict_act(doc, user, action, doc.revision, "理由")
                if why in (AlreadyReviewed, SelfReview, RoleNotAllowed):
                    wrong.setdefault(why, []).append((user, action))
        if wrong:  # the rarer refusals first, so that each kind gets tried
            kinds = sorted(wrong, key=lambda k: len(wrong[k]))
            choices = wrong[kinds[pick % len(kinds)]]
            user, action = choices[pick % len(choices)]
            self._act(doc, user, action, doc.revision, "理由")

    @rule(
        index=st.integers(0, 3),
        user=st.sampled_from(NAMES),
        label=st.sampled_from(PATCHES),
        revision=st.sampled_from(REVISIONS),
    )
    def edit(self, index: int, user: str, label: str, revision: str) -> None:
        doc = self._doc(index)
        self._edit(doc, user, label, self._revision(doc, revision))

    def _edit(self, doc: ModelDoc, user: str, label: str, rev: Any) -> None:
        build = VALID_PATCHES.get(label) or INVALID_PATCHES[label]
        patch = build(doc.data)
        expected = predict_edit(doc, user, label, patch, rev)
        merged = _merge(doc.data, patch) if label in VALID_PATCHES else doc.data
        if expected is None and merged == doc.data:  # a no-op edit: nothing at all happens
            before = self.snapshot()
            services.edit_document(self.session, doc.id, self.users[user], patch, rev)
            self.session.rollback()  # it hands back the document, read in a new transaction
            assert self.snapshot() == before
            return
        ok = self.attempt(
            expected,
            lambda: services.edit_document(self.session, doc.id, self.users[user], patch, rev),
            action="edit",
            user=user,
            document_id=doc.id,
        )
        if ok:
            doc.data = merged
            doc.revision += 1
            doc.editors.add(user)

    # --- invariants: read the database, trust nothing the engine keeps for itself ----------------
    @invariant()
    def database_matches_the_model(self) -> None:
        r = self.reader
        rows = {d.id: d for d in r.scalars(select(Document))}
        assert sorted(rows) == sorted(d.id for d in self.docs)
        for doc in self.docs:
            row = rows[doc.id]
            got = (row.state, row.revision, row.review_round, row.data)
            assert got == (doc.state, doc.revision, doc.round, doc.data), (doc.id, got, doc)
            assert r.get(User, row.entered_by_id).username == doc.entered_by
            reviews = [
                (v.state, v.round, v.user.username, v.decision, v.revision)
                for v in r.scalars(
                    select(Review).where(Review.document_id == doc.id).order_by(Review.id)
                )
            ]
            assert reviews == doc.reviews
        r.rollback()

    @invariant()
    def rules_of_review_hold(self) -> None:
        r = self.reader
        names = {u.id: u.username for u in r.scalars(select(User))}
        for row in r.scalars(select(Document)):
            events = list(
                r.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.chain_key == audit.document_chain(row.id))
                    .order_by(AuditEvent.chain_seq)
                )
            )
            assert all(e.document_id == row.id for e in events)
            # Replay the log: which round each event belongs to, who opened it, who left it.
            round_no, state = 0, "draft"
            opened: dict[int, tuple[str, str]] = {}  # round → (review state, who entered it)
            left: dict[int, list[AuditEvent]] = {}
            in_round: dict[int, list[AuditEvent]] = {}
            for e in events:
                if e.outcome != "ok":
                    assert e.from_state == e.to_state == state, (e.id, e.from_state, state)
                    continue
                assert e.from_state == state, (
                    f"event {e.id} starts from {e.from_state}, not {state}"
                )
                if state in REVIEW and e.action in ("approve", "reject"):
                    in_round.setdefault(round_no, []).append(e)
                if e.from_state != e.to_state:
                    if state in REVIEW:
                        left.setdefault(round_no, []).append(e)
                    state = e.to_state
                    if state in REVIEW:
                        round_no += 1
                        opened[round_no] = (state, e.actor)
            assert state == row.state, "the log does not end where the document is"
            assert round_no == row.review_round
            for number, (review_state, _) in opened.items():
                leaving = left.get(number, [])
                current = number == row.review_round and row.state == review_state
                assert len(leaving) == (0 if current else 1), (row.id, number, leaving)

            revisions = list(
                r.scalars(select(DocumentRevision).where(DocumentRevision.document_id == row.id))
            )
            assert sorted(v.number for v in revisions) == list(range(1, row.revision + 1))
            assert next(v for v in revisions if v.number == row.revision).data == row.data
            reviews = list(r.scalars(select(Review).where(Review.document_id == row.id)))
            decisions = [e for es in in_round.values() for e in es]
            assert len(reviews) == len(decisions), "every review decision is in the log once"
            approved_states: dict[str, set[str]] = {}
            for v in reviews:
                user = names[v.user_id]
                assert opened[v.round][0] == v.state, (v.round, v.state)
                authors = {names[x.author_id] for x in revisions if x.number <= v.revision}
                assert user != names[row.created_by_id], f"creator {user} reviewed"
                assert user != opened[v.round][1], f"submitter {user} reviewed"
                assert user not in authors, f"editor {user} reviewed"
                if v.decision == "approve":
                    approved_states.setdefault(user, set()).add(v.state)
            assert all(len(s) == 1 for s in approved_states.values()), approved_states
            for number, (review_state, _) in opened.items():
                required = REVIEW[review_state][0]
                approvals = [
                    v for v in reviews if v.round == number and v.decision == "approve"
                ]  # fmt: skip
                assert len({v.user_id for v in approvals}) == len(approvals) <= required
                leaving = left.get(number, [])
                held = [set(USERS[names[v.user_id]]) for v in approvals]
                uncovered = len(REVIEW[review_state][1]) - covered(held, REVIEW[review_state][1])
                assert uncovered <= required - len(approvals), "each role can no longer sign"
                if leaving and leaving[0].action == "approve":
                    assert len(approvals) == required and uncovered == 0
                    assert leaving[0].details["approvals"] == required
                    assert leaving[0].to_state == REVIEW[review_state][2]
                elif leaving:
                    assert leaving[0].action == "reject"
                    assert leaving[0].to_state == REVIEW[review_state][3]
                    assert len(approvals) < required
        r.rollback()

    @invariant()
    def audit_log_verifies(self) -> None:
        result = audit.verify(self.reader)
        self.reader.rollback()
        assert result.ok, result.problem
        assert len(result.root) == 64


ShipmentMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestShipmentMachine = ShipmentMachine.TestCase
