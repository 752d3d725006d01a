"""DocumentProcess: one Document row together with its compiled flow (like viewflow's flow objects).

The process is the one owner of an action: `load` reads the document with everything the rules
need (reviews, editors) once, `apply` decides once and changes the rows, and the response is
built from the same objects. Who may do what is asked of `workflow.policy`; the rules of review
are `workflow.review`'s. The state machine is compiled once per flow version and cached.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

from sqlalchemy import Select, String, bindparam, cast, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, aliased, joinedload, lazyload, load_only
from sqlalchemy.orm.attributes import set_committed_value

from workflow import audit, deadlines, delegation, notify, policy, references
from workflow import fields as field_types
from workflow import review as rules
from workflow import unique as unique_values
from workflow.attachments import Staged
from workflow.db import as_utc
from workflow.definitions.build import load_flow
from workflow.definitions.compile import CompiledFlow, Resolution, compiled_from
from workflow.definitions.spec import FieldSpec, FlowSpec, StateSpec, TransitionSpec
from workflow.errors import (
    ActionNotAllowed,
    CheckFailed,
    ChecklistIncomplete,
    Conflict,
    DatabaseGone,
    InvalidData,
    NotFound,
    NotOwner,
    RoleNotAllowed,
    StaleRevision,
)
from workflow.models import (
    Attachment,
    AuditChain,
    AuditEvent,
    Delegation,
    Document,
    DocumentRevision,
    FlowVersion,
    Review,
    TaskClaim,
    User,
)

REVIEW_ACTIONS = policy.REVIEW_ACTIONS
MAX_COMMENT_LENGTH = 2000
# What the rules and the pages read of a person loaded beside a document (creator, mover,
# claimant, reviewer): no password hash, no mail settings — every column fetched is converted by
# the driver and the ORM, on every action and for every row of a list.
PERSON_COLUMNS = (User.id, User.username, User.display_name, User.active)


def compiled(version: FlowVersion) -> CompiledFlow:
    """The compiled flow of a stored version (parsed and compiled once per process).

    The text is read only on a cache miss: `yaml_text` is deferred, and most calls hit."""
    path = f"{version.flow_name}.yaml"
    return compiled_from(version.content_hash, lambda: load_flow(version.yaml_text, path))


def not_found(document_id: Any) -> NotFound:
    # The same words whether the document is missing or hidden: existence is not disclosed.
    return NotFound(f"document {document_id} does not exist or you may not see it")


def check_comment(comment: Any) -> str:
    """A comment as stored: text, stripped, at most MAX_COMMENT_LENGTH characters."""
    comment = comment.strip() if isinstance(comment, str) else ""
    if len(comment) > MAX_COMMENT_LENGTH:
        raise InvalidData({"comment": [f"is longer than {MAX_COMMENT_LENGTH} characters"]})
    return comment


def attachment_facts(attachment: Attachment) -> dict[str, Any]:
    """What the audit event of an attachment seals (and `audit verify` compares)."""
    return {
        "id": attachment.id,
        "sha256": attachment.sha256,
        "name": attachment.name,
        "size": attachment.size,
        "content_type": attachment.content_type,
    }


def check_revision(document: Document, revision: Any) -> None:
    """Rule 3 of review: an action is taken on the revision the person saw."""
    if isinstance(revision, bool) or not isinstance(revision, int):
        raise InvalidData({"revision": ["must be the revision number you reviewed"]})
    if revision != document.revision:
        raise StaleRevision(
            f"the document changed: you saw revision {revision}, it is now at revision "
            f"{document.revision}; review the new version",
            {"current_revision": document.revision},
        )


def _load_reviewers(
    session: Session, documents: list[Document], reviews: dict[int, list[Review]]
) -> dict[int, User]:
    """This round's reviewers (and whom they stood in for) with their roles, in one query;
    each such review's `user` is set from it, so reading it costs no query."""
    current: list[Review] = []
    for document in documents:
        current += [
            r
            for r in reviews[document.id]
            if (r.state, r.round) == (document.state, document.review_round)
        ]
    ids = {r.user_id for r in current} | {r.on_behalf_of_id for r in current} - {None}
    if not ids:
        return {}
    stmt = _list_statements().reviewers
    people = {u.id: u for u in session.scalars(stmt, {"ids": sorted(ids)}).unique()}
    for review in current:
        set_committed_value(review, "user", people.get(review.user_id))
    return people


class _ListStatements(NamedTuple):
    reviews: Select[Any]  # by document `ids`
    editors: Select[Any]  # by document `ids`
    reviewers: Select[Any]  # by user `ids`


@functools.cache
def _list_statements() -> _ListStatements:
    """A list's reviews, editors and reviewers: built once (building them cost about as much
    as running them), run with the page's ids."""
    ids = bindparam("ids", expanding=True)
    # The reviews alone: the rules know earlier states' reviewers by id; only this round's
    # reviewers' roles are read (`review_facts`), loaded by the third. Joining every review to
    # its reviewer made PostgreSQL hash the whole users table for a page.
    reviews = select(Review).where(Review.document_id.in_(ids)).options(lazyload(Review.user))
    editors = select(DocumentRevision.document_id, DocumentRevision.author_id).where(
        DocumentRevision.document_id.in_(ids)
    )
    reviewers = (
        select(User)
        .where(User.id.in_(ids))
        .options(load_only(*PERSON_COLUMNS), joinedload(User.role_rows))
    )
    return _ListStatements(reviews, editors, reviewers)


@functools.cache
def _load_statement(for_update: bool, dialect: str) -> Select[Any]:
    """The one statement that loads a document for its process; built once per kind (building
    it costs more than running it)."""
    # Everyone who edited the data comes in the same statement (one round trip less on every
    # action). Read under the row lock's statement: an edit racing it changes the revision,
    # which the action's revision check then refuses.
    editors = (
        select(func.aggregate_strings(cast(DocumentRevision.author_id, String), ","))
        .where(DocumentRevision.document_id == Document.id)
        .scalar_subquery()
    )
    # The creator's name is shown; their roles are never needed here. The reviews, with their
    # reviewers' roles, come in the same statement (joined). People come with PERSON_COLUMNS
    # only; the last mover is known by id (the rules compare ids), not loaded.
    stmt = (
        select(Document, editors)
        .where(Document.id == bindparam("document_id"))
        .options(
            joinedload(Document.created_by).load_only(*PERSON_COLUMNS).lazyload(User.role_rows),
            joinedload(Document.claim)
            .joinedload(TaskClaim.user)
            .load_only(*PERSON_COLUMNS)
            .lazyload(User.role_rows),
            joinedload(Document.reviews)
            .joinedload(Review.user)
            .load_only(*PERSON_COLUMNS)
            .joinedload(User.role_rows),
        )
    )
    if not for_update:
        return stmt
    # An action also needs: the report rows it keeps in step with the document, its audit
    # chain's tip (locked with the document: the same lock `audit.append` would take, a
    # statement later) and its event's id. The chain's length is read twice: as the locked row
    # (PostgreSQL re-reads a row it had to wait for: the newest version) and as this
    # statement's snapshot saw it (see `load`).
    seen = aliased(AuditChain)
    seen_length = select(seen.length).where(seen.key == bindparam("chain_key"))
    return (
        stmt.add_columns(
            AuditChain,
            audit.next_event_id(dialect).scalar_subquery(),
            seen_length.scalar_subquery(),
        )
        .join(AuditChain, AuditChain.key == bindparam("chain_key"))
        .options(joinedload(Document.report), joinedload(Document.open_step))
        .with_for_update(of=(Document, AuditChain))
        .execution_options(populate_existing=True)
    )


class DocumentProcess:
    """What may happen to one document, for whom; and the one place an action is applied."""

    def __init__(
        self,
        session: Session,
        document: Document,
        reviews: list[Review] | None = None,
        editors: set[int] | None = None,
    ) -> None:
        self.session = session
        self.document = document
        self.flow = compiled(document.flow_version)
        self._reviews = reviews
        self._editors = editors
        self._typed: dict[str, Any] | None = None
        # Read with the row lock by `load(for_update=True)`: the audit chain's locked tip and
        # the next event's id, so recording the action costs no lookups of its own.
        self._chain: AuditChain | None = None
        self._event_id: int | None = None
        # Set by `apply`: the principal a delegate acted for, and the roles acted in.
        self.on_behalf_of: User | None = None
        self.acting_roles: frozenset[str] = frozenset()
        # What `actions_for` answered, by who asked and what the document was then: a list
        # asks once to keep a task and once to show its buttons.
        self._actions: dict[tuple[Any, ...], list[str]] = {}
        # People a list loaded beside the document (this round's reviewers and whom they stood
        # in for), held here: the session's identity map keeps no object alive by itself.
        self._people: dict[int, User] = {}

    # --- loading ------------------------------------------------------------------------------
    @classmethod
    def load(
        cls, session: Session, document_id: Any, viewer: User, *, for_update: bool = False
    ) -> DocumentProcess:
        """The document if `viewer` may see it (NotFound otherwise), with its reviews and editors.

        `for_update` locks the row first (`SELECT … FOR UPDATE`; SQLite transactions already
        hold the write lock), so every decision reads what no one else can change meanwhile.
        """
        if not isinstance(document_id, int) or isinstance(document_id, bool):
            raise not_found(document_id)
        dialect = session.get_bind().dialect.name
        stmt = _load_statement(for_update, dialect)
        params = {"document_id": document_id, "chain_key": audit.document_chain(document_id)}
        try:
            row = session.execute(stmt, params).unique().one_or_none()
            if for_update and row is not None and row[4] != row[2].length:
                # The lock was waited for while another action committed: PostgreSQL returns
                # the locked rows' newest versions but the joined rows (reviews, report rows)
                # as the statement's snapshot saw them. Every change to those appends to this
                # chain, so a length that moved means: read again (the locks are held now, so
                # this costs one round trip, only when actions on one document meet).
                row = session.execute(stmt, params).unique().one_or_none()
        except DBAPIError as exc:
            if exc.connection_invalidated:  # the database went away: not a busy document
                raise DatabaseGone() from exc
            raise Conflict("the document is busy; try again") from exc
        if row is None:
            raise not_found(document_id)
        document, authors = row[0], row[1]
        editor_ids = {int(i) for i in (authors or "").split(",") if i}
        process = cls(session, document, list(document.reviews), editor_ids)
        if not process.may_see(viewer):
            raise not_found(document_id)
        if for_update:
            process._chain, process._event_id = row[2], row[3]
        return process

    @classmethod
    def prefetch(cls, session: Session, documents: list[Document]) -> list[DocumentProcess]:
        """Processes for a read-only list: reviews, editors and this round's reviewers (with
        their roles) in three queries, not 3N."""
        ids = [d.id for d in documents]
        reviews: dict[int, list[Review]] = {i: [] for i in ids}
        editors: dict[int, set[int]] = {i: set() for i in ids}
        if ids:
            statements = _list_statements()
            for review in session.scalars(statements.reviews, {"ids": ids}):
                reviews[review.document_id].append(review)
            for document_id, author_id in session.execute(statements.editors, {"ids": ids}):
                editors[document_id].add(author_id)
        people = _load_reviewers(session, documents, reviews) if ids else {}
        processes = [cls(session, d, reviews[d.id], editors[d.id]) for d in documents]
        for process in processes:
            process._people = people
        return processes

    @property
    def spec(self) -> FlowSpec:
        return self.flow.spec

    @property
    def state(self) -> StateSpec:
        return self.spec.state(self.document.state)

    def typed_data(self) -> dict[str, Any]:
        if self._typed is None:
            self._typed = field_types.typed(self.spec.fields, self.document.data)
        return self._typed

    @property
    def reviews(self) -> list[Review]:
        if self._reviews is None:
            # One statement for the reviews, their reviewers and the reviewers' roles.
            stmt = (
                select(Review)
                .where(Review.document_id == self.document.id)
                .options(joinedload(Review.user).joinedload(User.role_rows))
            )
            self._reviews = list(self.session.scalars(stmt).unique())
        return self._reviews

    @property
    def editors(self) -> set[int]:
        if self._editors is None:
            self._editors = set(
                self.session.scalars(
                    select(DocumentRevision.author_id).where(
                        DocumentRevision.document_id == self.document.id
                    )
                )
            )
        return self._editors

    # --- review facts -------------------------------------------------------------------------
    def review_facts(self) -> rules.ReviewFacts:
        """The facts the rules of review decide on, from the reviews loaded with the document."""
        doc = self.document
        this_round = [
            r for r in self.reviews if r.state == doc.state and r.round == doc.review_round
        ]

        # A delegate's decision binds the person they stood in for as well (never twice).
        def people(r: Review) -> tuple[int, ...]:
            return (r.user_id, r.on_behalf_of_id) if r.on_behalf_of_id else (r.user_id,)

        return rules.ReviewFacts(
            state=self.state,
            creator_id=doc.created_by_id,
            entered_by_id=doc.entered_by_id,
            editor_ids=frozenset(self.editors),
            decided_this_round=frozenset(i for r in this_round for i in people(r)),
            approved_this_round=tuple(
                r.user_id
                for r in this_round
                if r.decision == "approve" and r.revision == doc.revision
            ),
            approved_other_states=frozenset(
                i
                for r in self.reviews
                if r.decision == "approve" and r.state != doc.state
                for i in people(r)
            ),
            approver_roles={r.user_id: self._review_roles(r) for r in this_round},
        )

    def _review_roles(self, review: Review) -> frozenset[str]:
        """The roles a decision was taken in (a delegate's: the principal's too)."""
        if review.on_behalf_of_id is None:
            return review.user.roles
        principal = self._people.get(review.on_behalf_of_id) or self.session.get(
            User, review.on_behalf_of_id
        )
        return review.user.roles | (principal.roles if principal is not None else frozenset())

    def current_approvals(self) -> list[Review]:
        """Approvals of the current round and revision, in the order they were given."""
        doc = self.document
        current = [
            r
            for r in self.reviews
            if (r.state, r.round, r.decision, r.revision)
            == (doc.state, doc.review_round, "approve", doc.revision)
        ]
        return sorted(current, key=lambda r: (r.at, r.id or 0))

    def visible_approvals(self, user: User) -> list[Review]:
        """Current approvals as `user` may see them (none of the others' in a blind review)."""
        approvals = self.current_approvals()
        if policy.sees_decisions(user, self):
            return approvals
        return [r for r in approvals if r.user_id == user.id]

    def active_claim(self, now: dt.datetime | None = None) -> TaskClaim | None:
        """The claim colleagues should see: unexpired, by someone who has not decided yet."""
        claim, document = self.document.claim, self.document
        if claim is None or as_utc(claim.until) <= (now or audit.utcnow()):
            return None
        if (claim.state, claim.round) != (document.state, document.review_round):
            return None  # the document moved on since
        if self.state.is_review and self.decided_this_round(claim.user):
            return None
        return claim

    def decided_this_round(self, user: User) -> bool:
        doc = self.document
        return any(
            r.user_id == user.id and r.state == doc.state and r.round == doc.review_round
            for r in self.reviews
        )

    # --- what may this person do (asked of the policy) ----------------------------------------
    def may_see(self, user: User) -> bool:
        """Rule `see`; the "acted on it" part is read only when nothing else lets them see;
        a delegate sees what the delegated roles see (rule `on_behalf`)."""
        if policy.can_see(user, self.document, self.spec):
            return True
        if not user.active:
            return False
        if policy.can_see(user, self.document, self.spec, self.acted_on(user)):
            return True
        return any(
            policy.can_see_as_delegate(d, self.document, self.spec) for d in self.delegations(user)
        )

    def delegations(self, user: User) -> list[Delegation]:
        """The delegations `user` may act under now (read only when their own roles fall short)."""
        return delegation.active_for(self.session, user)

    def acted_on(self, user: User) -> bool:
        """Whether `user` took any action on this document that was carried out."""
        stmt = (
            select(AuditEvent.id)
            .where(
                AuditEvent.document_id == self.document.id,
                AuditEvent.actor == user.username,
                AuditEvent.outcome == "ok",
            )
            .limit(1)
        )
        return self.session.scalar(stmt) is not None

    def verdict(
        self, user: User, action: str, facts: rules.ReviewFacts | None = None
    ) -> policy.Verdict:
        """May `user` take `action` now (data checks aside)? Also: does the data allow a route?"""
        return self.decide(user, action, facts)[0]

    def decide(
        self, user: User, action: str, facts: rules.ReviewFacts | None = None
    ) -> tuple[policy.Verdict, Delegation | None]:
        """The verdict, and the delegation `user` would act under (None: in their own roles).

        Delegations are tried only when the user's own roles do not allow the action; a
        delegation that covers the role but breaks a rule of review gives its own refusal
        (self_review, already_reviewed), never a silent fall-back."""
        verdict = policy.can_act(user, self, action, facts)
        acting: Delegation | None = None
        own_roles_fall_short = isinstance(verdict.refusal, RoleNotAllowed | NotOwner)
        if not verdict and own_roles_fall_short and not policy.reads_only(user):
            for candidate in self.delegations(user):
                tried = policy.can_act(user, self, action, facts, candidate)
                if tried:
                    verdict, acting = tried, candidate
                    break
                if not isinstance(tried.refusal, RoleNotAllowed):
                    verdict = tried  # the role is delegated; a rule of review refuses
        verdict = self._route_verdict(verdict, action)
        return verdict, acting if verdict else None

    def _route_verdict(self, verdict: policy.Verdict, action: str) -> policy.Verdict:
        if verdict and not self.state.is_review and self.transition(action) is None:
            return policy.Verdict(
                ActionNotAllowed(f"no `{action}` transition applies to this document's data")
            )
        return verdict

    def transition(self, action: str) -> TransitionSpec | None:
        """The definition transition `action` takes from here with this data (None: none)."""
        resolved = self.flow.resolve(action, self.document.state, self.typed_data())
        return resolved.transition if resolved is not None else None

    def actions_for(self, user: User) -> list[str]:
        """The actions `user` may take now, in definition order (what the UI offers)."""
        document = self.document
        reviews = len(self._reviews) if self._reviews is not None else None
        key = (user.id, document.state, document.revision, document.review_round, reviews)
        if (known := self._actions.get(key)) is not None:
            return list(known)
        if self.state.is_review:
            facts = self.review_facts()  # one read for both approve and reject
            actions = [a for a in REVIEW_ACTIONS if self.verdict(user, a, facts)]
        else:
            actions = [a for a in self.flow.actions_from(document.state) if self.verdict(user, a)]
        if reviews is not None:  # the reviews are known: the answer holds while they do
            self._actions[key] = actions
        return list(actions)

    def can_edit(self, user: User) -> bool:
        return bool(policy.can_edit(user, self.document, self.spec))

    def editable_fields(self) -> tuple[FieldSpec, ...]:
        """The fields an edit may change in the current state (all of them while drafting)."""
        allowed = self.state.editable_fields
        return tuple(f for f in self.spec.fields if not allowed or f.name in allowed)

    # --- applying -----------------------------------------------------------------------------
    def apply(
        self,
        action: str,
        actor: User,
        revision: Any,
        comment: str = "",
        checks: Mapping[str, Any] | None = None,
        failed_checks: list[str] | None = None,
    ) -> None:
        """Take `action` at `revision`: decide once, then change the rows (caller commits).

        In a review state with a checklist, an approval confirms every point (`checks`) and a
        rejection may name the points that failed (`failed_checks`)."""
        comment = check_comment(comment)
        check_revision(self.document, revision)
        facts = self.review_facts() if self.state.is_review else None
        verdict, acting = self.decide(actor, action, facts)
        verdict.enforce()
        self.on_behalf_of = acting.principal if acting is not None else None
        self.acting_roles = policy.delegated_roles(acting) if acting is not None else actor.roles
        if policy.needs_reason(action) and not comment:
            raise InvalidData(
                {"comment": ["a rejection needs a reason (驳回需填写原因)"]},
                "a rejection needs a reason",
            )
        if facts is not None:
            answered = self._checklist(action, checks, failed_checks)
            self._decide(facts, actor, action, comment, answered)
        else:
            if checks or failed_checks:
                raise InvalidData({"checks": ["only a review with a checklist takes checks"]})
            self._transition(actor, action, comment)

    def _checklist(
        self, action: str, checks: Mapping[str, Any] | None, failed: list[str] | None
    ) -> dict[str, list[str]] | None:
        """The checklist as answered: every point confirmed to approve; failures named to reject."""
        assert self.state.review is not None
        items = [item.id for item in self.state.review.checklist]
        given = dict(checks or {})
        unknown = sorted({*given, *(failed or ())} - set(items))
        if unknown:
            known = ", ".join(items) or "none: this review has no checklist"
            raise InvalidData(
                {"checks": [f"unknown point(s) {', '.join(unknown)}; known: {known}"]}
            )
        if not items:
            return None
        if action == "approve":
            missing = [i for i in items if given.get(i) is not True]
            if missing:
                raise ChecklistIncomplete(
                    f"confirm every point of the checklist before approving; not confirmed: "
                    f"{', '.join(missing)} (请逐项确认复核要点)",
                    {"missing": missing},
                )
            return {"confirmed": items}
        return {"failed": [i for i in items if i in set(failed or ())]}

    def _decide(
        self,
        facts: rules.ReviewFacts,
        actor: User,
        action: str,
        comment: str,
        checks: dict[str, list[str]] | None = None,
    ) -> None:
        document, state = self.document, self.state
        assert state.review is not None
        review = Review(
            document_id=document.id,
            state=document.state,
            round=document.review_round,
            revision=document.revision,
            user_id=actor.id,
            decision=action,
            comment=comment,
            checks=checks,
            at=audit.utcnow(),
            on_behalf_of_id=self.on_behalf_of.id if self.on_behalf_of else None,
        )
        review.user = actor  # the acting user is already loaded: no query to show the approval
        self.reviews.append(review)  # added with its audit event, which it names (record)
        if action == "reject":
            assert state.on_reject is not None
            details = {"checks": checks} if checks else None
            self.record(
                actor, "reject", document.state, state.on_reject, comment, details, review=review
            )
            self._enter(state.on_reject, actor, announce=False)
            notify.to_user(
                self.session,
                "rejected",
                document.id,
                document.created_by_id,
                notify.about(document, self.spec, document.state, reason=comment),
            )
            return
        approvals = len(set(facts.approved_this_round) | {actor.id})
        details: dict[str, Any] = {"approvals": approvals, "required": state.review.required}
        if actor.id in facts.approved_other_states and state.review.allow_earlier_reviewers:
            details["relaxed"] = "allow_earlier_reviewers"
        if checks:
            details["checks"] = checks
        target = document.state
        if rules.quorum_reached(facts, actor.id, self.acting_roles or actor.roles):
            resolved = self._resolve("approve")
            if resolved is None:
                raise ActionNotAllowed("no approval route applies to this document's data")
            target = resolved.dest
        self.record(actor, "approve", document.state, target, comment, details, review=review)
        if target != document.state:
            self._enter(target, actor)

    def _transition(self, actor: User, action: str, comment: str) -> None:
        resolved = self._resolve(action)
        if resolved is None or resolved.transition is None:  # pragma: no cover - verdict checked
            raise ActionNotAllowed(f"`{action}` is not possible now")
        data = self.typed_data()
        for check in resolved.transition.checks:
            if not check.rule.evaluate(data):
                raise CheckFailed(
                    f"{check.message.zh} / {check.message.en}",
                    {"rule": check.rule.source, "message": check.message.as_dict()},
                )
        if self.document.state == self.spec.initial:
            # Submitting: the referenced documents may have moved on since the draft was saved.
            references.sync(self.session, self.document, self.spec)
        self.record(actor, action, self.document.state, resolved.dest, comment)
        self._enter(resolved.dest, actor)

    def _resolve(self, action: str) -> Resolution | None:
        return self.flow.resolve(action, self.document.state, self.typed_data())

    def _enter(self, state: str, actor: User, announce: bool = True) -> None:
        """Move the document; entering a review state opens a fresh round (voiding approvals).
        Whoever can now act on it is told, in this same transaction (the outbox)."""
        document = self.document
        document.state = state
        document.entered_by_id = actor.id
        document.entered_by = actor
        document.entered_at = audit.utcnow()
        document.updated_at = document.entered_at
        document.due_at = deadlines.due_at(self.spec, state, document.entered_at, document.data)
        if self.spec.state(state).is_review:
            document.review_round += 1
        if self.spec.state(state).void:
            unique_values.release(self.session, document)
        references.on_enter(self.session, document, self.spec, state)
        if announce:
            self._announce(state, actor)

    def _announce(self, state: str, actor: User) -> None:
        """A `task_waiting` notification for the people who can act in `state` now."""
        node, document = self.spec.state(state), self.document
        details = notify.about(document, self.spec, state)
        if node.review is not None:
            exclude = {document.created_by_id, actor.id, *self.editors}
            notify.to_roles(
                self.session, "task_waiting", document.id, node.review.roles, details, exclude
            )
            return
        roles = {r for t in self.spec.transitions_from(state) for r in t.roles}
        if not roles or node.final:
            return
        if node.owner_only:
            notify.to_user(
                self.session, "task_waiting", document.id, document.created_by_id, details
            )
        else:
            notify.to_roles(self.session, "task_waiting", document.id, roles, details, {actor.id})

    def edit(self, actor: User, data: Any, revision: Any) -> list[str]:
        """Change the given fields in an editable state; a new revision. Returns what changed."""
        policy.can_edit(actor, self.document, self.spec).enforce()
        check_revision(self.document, revision)
        if not isinstance(data, Mapping):
            raise InvalidData({"data": ["must be an object of field values"]})
        document = self.document
        clean = field_types.clean_data(self.spec.fields, {**document.data, **data})
        changed = sorted(
            k for k in set(clean) | set(document.data) if clean.get(k) != document.data.get(k)
        )
        allowed = {f.name for f in self.editable_fields()}
        locked = [k for k in changed if k not in allowed]
        if locked:
            raise ActionNotAllowed(
                f"{', '.join(locked)} cannot be changed in state `{document.state}`: it was "
                f"reviewed already (editable here: {', '.join(sorted(allowed))})",
                {"fields": locked, "editable_fields": sorted(allowed)},
            )
        if not changed:
            return []
        self._new_revision(actor, clean)
        unique_values.sync(self.session, document, self.spec)
        references.sync(self.session, document, self.spec, changed)
        self.record(actor, "edit", document.state, document.state, details={"changed": changed})
        return changed

    def attach(self, actor: User, staged: Staged, revision: Any) -> Attachment:
        """Attach a checked file (rule `attach`): a new revision, like an edit, so approvals
        given before it no longer count; in a review state a new round opens (the reviewers
        decide again, on what is now attached). The event carries the file's SHA-256."""
        policy.can_attach(actor, self.document, self.spec).enforce()
        check_revision(self.document, revision)
        document = self.document
        self._new_revision(actor, document.data)
        attachment = Attachment(
            document_id=document.id,
            revision=document.revision,
            sha256=staged.sha256,
            name=staged.name,
            size=staged.size,
            content_type=staged.content_type,
            uploaded_by_id=actor.id,
            uploaded_by=actor,
            at=audit.utcnow(),
        )
        self.session.add(attachment)
        self.session.flush()  # the attachment's id goes into the sealed event
        new_round = self.state.is_review
        if new_round:
            document.review_round += 1
        self.record(
            actor,
            "attach",
            document.state,
            document.state,
            details={"attachment": attachment_facts(attachment), "new_round": new_round},
        )
        if new_round:
            self._announce(document.state, actor)
        return attachment

    def _new_revision(self, actor: User, data: dict[str, Any]) -> None:
        """The one way a document gets a new revision (edits and attachments): the data it
        has now, kept as revision N+1 by `actor` (who thereby may not approve it)."""
        document = self.document
        document.revision += 1
        document.data = data
        document.updated_at = audit.utcnow()
        self._typed = None
        self.session.add(
            DocumentRevision(
                document_id=document.id, number=document.revision, data=data, author_id=actor.id
            )
        )
        self.editors.add(actor.id)
        # A date the deadline is counted from may have changed (`overdue`'s field).
        document.due_at = deadlines.due_at(
            self.spec, document.state, document.entered_at, document.data
        )

    def record(
        self,
        actor: User | None,
        action: str,
        from_state: str,
        to_state: str,
        comment: str = "",
        details: dict[str, Any] | None = None,
        outcome: str = "ok",
        code: str | None = None,
        review: Review | None = None,
    ) -> AuditEvent:
        """Append this document's audit event for an action (allowed or refused); a decision's
        review row is inserted with it, tied to it, and the event seals the data it acted on."""
        document = self.document
        event_id, self._event_id = self._event_id, None  # an id is used once
        if self.on_behalf_of is not None and actor is not None and outcome == "ok":
            details = {**(details or {}), "on_behalf_of": self.on_behalf_of.username}
        return audit.append(
            self.session,
            audit.document_chain(document.id),
            chain=self._chain,
            event_id=event_id,
            review=review,
            data_hash=audit.data_hash(document.data) if outcome == "ok" else None,
            document_id=document.id,
            flow=document.flow_name,
            flow_version=document.flow_version.version,
            actor=actor.username if actor is not None else None,
            action=action,
            outcome=outcome,
            code=code,
            from_state=from_state,
            to_state=to_state,
            revision=document.revision,
            comment=comment,
            details=details,
        )
