"""DocumentProcess: one Document row together with its compiled flow (like viewflow's flow objects).

The state machine is compiled once per flow version and cached by the version's content hash;
the process never mixes the machine into the SQLAlchemy model.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflow import fields as field_types
from workflow import review as rules
from workflow.definitions.build import load_flow
from workflow.definitions.compile import CompiledFlow, compiled_from
from workflow.definitions.spec import FieldSpec, FlowSpec, StateSpec, TransitionSpec
from workflow.errors import ActionNotAllowed, Refused, RoleNotAllowed
from workflow.models import Document, DocumentRevision, FlowVersion, Review, User
from workflow.roles import NON_ACTING_ROLES

REVIEW_ACTIONS = ("approve", "reject")


def compiled(version: FlowVersion) -> CompiledFlow:
    """The compiled flow of a stored version (parsed and compiled once per process)."""
    text, path = version.yaml_text, f"{version.flow_name}.yaml"
    return compiled_from(version.content_hash, lambda: load_flow(text, path))


def may_start(spec: FlowSpec, user: User) -> bool:
    """Whoever may edit a flow's initial state may start a document of it (auditors never)."""
    editors = set(spec.state(spec.initial).editable_by)
    return user.active and bool(editors & user.roles) and not (NON_ACTING_ROLES & user.roles)


class DocumentProcess:
    """What may happen to one document, for whom; the rules come from review.py."""

    def __init__(self, session: Session, document: Document) -> None:
        self.session = session
        self.document = document
        self.flow = compiled(document.flow_version)
        self._prefetched: tuple[list[Review], set[int]] | None = None

    @classmethod
    def prefetch(cls, session: Session, documents: list[Document]) -> list[DocumentProcess]:
        """Processes for a read-only list, loading reviews and editors in two queries, not 2N."""
        ids = [d.id for d in documents]
        reviews: dict[int, list[Review]] = {i: [] for i in ids}
        editors: dict[int, set[int]] = {i: set() for i in ids}
        if ids:
            for review in session.scalars(select(Review).where(Review.document_id.in_(ids))):
                reviews[review.document_id].append(review)
            rows = session.execute(
                select(DocumentRevision.document_id, DocumentRevision.author_id).where(
                    DocumentRevision.document_id.in_(ids)
                )
            )
            for document_id, author_id in rows:
                editors[document_id].add(author_id)
        processes = []
        for document in documents:
            process = cls(session, document)
            process._prefetched = (reviews[document.id], editors[document.id])
            processes.append(process)
        return processes

    @property
    def spec(self) -> FlowSpec:
        return self.flow.spec

    @property
    def state(self) -> StateSpec:
        return self.spec.state(self.document.state)

    def typed_data(self) -> dict[str, Any]:
        return field_types.typed(self.spec.fields, self.document.data)

    # --- review facts -------------------------------------------------------------------------
    def review_facts(self) -> rules.ReviewFacts:
        """Read fresh from the database (or from `prefetch`), never cached across an action."""
        doc = self.document
        if self._prefetched is not None:
            reviews, editors = self._prefetched
        else:
            reviews = self._reviews()
            editors = set(
                self.session.scalars(
                    select(DocumentRevision.author_id).where(DocumentRevision.document_id == doc.id)
                )
            )
        this_round = [r for r in reviews if r.state == doc.state and r.round == doc.review_round]
        return rules.ReviewFacts(
            state=self.state,
            creator_id=doc.created_by_id,
            entered_by_id=doc.entered_by_id,
            editor_ids=frozenset(editors),
            decided_this_round=frozenset(r.user_id for r in this_round),
            approved_this_round=tuple(
                r.user_id
                for r in this_round
                if r.decision == "approve" and r.revision == doc.revision
            ),
            approved_other_states=frozenset(
                r.user_id for r in reviews if r.decision == "approve" and r.state != doc.state
            ),
            approver_roles={r.user_id: r.user.roles for r in this_round},
        )

    def current_approvals(self) -> list[Review]:
        """Approvals of the current round and revision, in the order they were given."""
        doc = self.document
        reviews = self._prefetched[0] if self._prefetched is not None else self._reviews()
        current = [
            r
            for r in reviews
            if (r.state, r.round, r.decision, r.revision)
            == (doc.state, doc.review_round, "approve", doc.revision)
        ]
        return sorted(current, key=lambda r: (r.at, r.id))

    def _reviews(self) -> list[Review]:
        return list(
            self.session.scalars(select(Review).where(Review.document_id == self.document.id))
        )

    # --- what may this person do ----------------------------------------------------------------
    def refusal(
        self, user: User, action: str, facts: rules.ReviewFacts | None = None
    ) -> Refused | None:
        """Why `user` may not take `action` now (checks of data excluded), or None."""
        roles = user.roles if user.active else frozenset()
        if not user.active:
            return RoleNotAllowed("this account is disabled")
        if self.state.is_review:
            if action not in REVIEW_ACTIONS:
                return ActionNotAllowed(
                    f"`{action}` is not possible while the document is in review "
                    f"(`{self.document.state}`): approve or reject"
                )
            return rules.refusal(facts or self.review_facts(), user.id, roles, action)
        candidates = [
            t for t in self.spec.transitions_from(self.document.state) if t.action == action
        ]
        if not candidates:
            possible = ", ".join(self.flow.actions_from(self.document.state)) or "none"
            return ActionNotAllowed(
                f"`{action}` is not possible in state `{self.document.state}` "
                f"(possible here: {possible})"
            )
        if NON_ACTING_ROLES & roles:
            return RoleNotAllowed("auditors read documents and do not act on them")
        if not any(set(t.roles) & roles for t in candidates):
            needed = sorted({r for t in candidates for r in t.roles})
            return RoleNotAllowed(f"`{action}` needs one of the roles {', '.join(needed)}")
        if self.transition(action) is None:
            return ActionNotAllowed(f"no `{action}` transition applies to this document's data")
        return None

    def transition(self, action: str) -> TransitionSpec | None:
        return self.flow.transition_for(action, self.document.state, self.typed_data())

    def actions_for(self, user: User) -> list[str]:
        """The actions `user` may take now, in definition order (what the UI offers)."""
        if self.state.is_review:
            facts = self.review_facts()  # one read for both approve and reject
            return [a for a in REVIEW_ACTIONS if self.refusal(user, a, facts) is None]
        candidates = self.flow.actions_from(self.document.state)
        return [a for a in candidates if self.refusal(user, a) is None]

    def can_edit(self, user: User) -> bool:
        return (
            user.active
            and not (NON_ACTING_ROLES & user.roles)
            and bool(set(self.state.editable_by) & user.roles)
        )

    def editable_fields(self) -> tuple[FieldSpec, ...]:
        """The fields an edit may change in the current state (all of them while drafting)."""
        allowed = self.state.editable_fields
        return tuple(f for f in self.spec.fields if not allowed or f.name in allowed)

    def may_see(self, user: User) -> bool:
        """Deny by default: creator, anyone whose role acts in this flow, or an auditor."""
        if not user.active:
            return False
        return (
            self.document.created_by_id == user.id
            or "auditor" in user.roles
            or bool(self.spec.roles & user.roles)
        )
