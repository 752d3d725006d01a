"""Who may see, start, edit, act, publish and audit: the only place these rules live.

Every rule is named in `RULES` (one documented table, like a ruleset); the functions below are
the rules themselves. Views, templates (through presenters), the API, queries and services ask
these functions and never re-implement them. The rules of review proper (self-review, counting
once, four eyes across levels) are `workflow.review`'s; `can_act` composes them with the rest.

Deny by default: a verdict allows only when every rule that applies allows.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from workflow import review as review_rules
from workflow.definitions.spec import FlowSpec, StateSpec
from workflow.errors import (
    ActionNotAllowed,
    Forbidden,
    NotOwner,
    Refused,
    RoleNotAllowed,
    SelfAdministration,
)
from workflow.models import Delegation, Document, User
from workflow.roles import NON_ACTING_ROLES

if TYPE_CHECKING:  # pragma: no cover
    from workflow.process import DocumentProcess

REVIEW_ACTIONS = ("approve", "reject")
AUDITOR = "auditor"
FLOW_ADMIN = "flow_admin"
USER_ADMIN = "user_admin"


@dataclass(frozen=True)
class Rule:
    name: str
    says: str


RULES: tuple[Rule, ...] = (
    Rule("active", "a disabled account may do nothing and see nothing"),
    Rule("auditors_read_only", "auditors read every document and act on none"),
    Rule("start", "a document is started by a holder of a role that edits the initial state"),
    Rule(
        "owner_only",
        "in an `owner_only` state (by default the initial state: drafts) only the document's "
        "creator edits it and takes its actions; colleagues with the same role are refused "
        "with `not_owner`",
    ),
    Rule("edit_role", "data is edited by the roles the state lists under `editable_by`"),
    Rule("action_role", "a transition is taken by the roles it lists"),
    Rule("review", "approve and reject follow the rules of review (workflow/review.py)"),
    Rule("reject_reason", "a rejection needs a reason"),
    Rule(
        "blind",
        "in a `blind` review state the other reviewers' decisions and comments of the current "
        "round are hidden from everyone but auditors and those who have decided in it",
    ),
    Rule("comment", "anyone who may see a document may comment on it, auditors excepted"),
    Rule(
        "attach",
        "a file is attached by whoever may edit the document in its state; in a review state "
        "(never editable) by the document's creator, answering the reviewers: attaching starts "
        "a new revision, so approvals given before it no longer count (in a review state a new "
        "round opens and every reviewer decides again)",
    ),
    Rule(
        "open_attachment",
        "an attached file is opened by the document's creator, by everyone who acted on the "
        "document, by the roles that review or act on other people's documents of the flow, "
        "and by auditors; roles that only read the flow (`visible_to`) see the list, not the "
        "files",
    ),
    Rule(
        "see",
        "a document is seen by its creator, by everyone who acted on it, by auditors, by the "
        "roles the flow names under `visible_to`, and by the roles that act on other people's "
        "documents of the flow (reviewers, roles of states that are not owner-only); a role "
        "that acts only in owner-only states sees only its own documents",
    ),
    Rule(
        "delegate",
        "an active user hands some or all of the roles they act in (never `auditor` or "
        "`flow_admin`) to another active user for a date range; never to themselves",
    ),
    Rule(
        "on_behalf",
        "while a delegation runs, the delegate acts in the delegated roles the principal still "
        "holds, and sees what those roles see; the rules of review apply to delegate and "
        "principal both (workflow/review.py), so no one approves their own document, counts "
        "twice or approves two levels through a delegation",
    ),
    Rule(
        "delegations",
        "a delegation is seen by its two people; managers (sales_manager, gm) see every "
        "active one; only its principal withdraws it",
    ),
    Rule(
        "overdue_list",
        "the overdue deposits list is for 内勤 (sales_admin), 财务 (finance) and managers",
    ),
    Rule("publish", "flows are published and documents migrated by flow administrators"),
    Rule("audit", "the audit log is read by auditors"),
    Rule(
        "manage_users",
        "people (accounts, roles, passwords, tokens) are managed by user administrators only — "
        "not by flow administrators",
    ),
    Rule(
        "no_self_grant",
        "nobody changes their own roles or disables their own account: another user "
        "administrator does (so no one can make themselves an approver or an auditor)",
    ),
)


@dataclass(frozen=True)
class Verdict:
    """Allowed, or the refusal that says why not (truthy when allowed)."""

    refusal: Refused | None = None

    def __bool__(self) -> bool:
        return self.refusal is None

    def enforce(self) -> None:
        """Raise the refusal, if any."""
        if self.refusal is not None:
            raise self.refusal


ALLOWED = Verdict()


def _roles(user: User) -> frozenset[str]:
    return user.roles if user.active else frozenset()


def reads_only(user: User) -> bool:
    """Rule `auditors_read_only`: a non-acting role never acts, whatever else is held."""
    return bool(NON_ACTING_ROLES & user.roles)


# --- seeing -------------------------------------------------------------------------------------
def seeing_roles(spec: FlowSpec) -> frozenset[str]:
    """Roles that see every document of the flow (rule `see`), auditors included."""
    return working_roles(spec) | frozenset(spec.visible_to)


def working_roles(spec: FlowSpec) -> frozenset[str]:
    """Auditors and the roles that act on other people's documents of the flow (reviewers,
    roles of states that are not owner-only): rule `see` without `visible_to`."""
    roles: set[str] = {AUDITOR}
    for state in spec.states:
        if state.review is not None:
            roles.update(state.review.roles)
        if not state.owner_only:
            roles.update(state.editable_by)
    for transition in spec.transitions:
        if not spec.state(transition.source).owner_only:
            roles.update(transition.roles)
    return frozenset(roles)


def can_see(user: User, document: Document, spec: FlowSpec, acted: bool = False) -> bool:
    """Rule `see` (and `active`); `acted` says whether the user acted on this document."""
    if not user.active:
        return False
    return document.created_by_id == user.id or acted or bool(seeing_roles(spec) & user.roles)


# --- starting, editing, acting -------------------------------------------------------------------
def can_start(user: User, spec: FlowSpec) -> Verdict:
    """Rule `start` (auditors never)."""
    editors = spec.state(spec.initial).editable_by
    if not user.active or reads_only(user) or not set(editors) & user.roles:
        return Verdict(
            RoleNotAllowed(
                f"starting a `{spec.name}` document needs one of the roles {', '.join(editors)}"
            )
        )
    return ALLOWED


def _owner(user: User, document: Document, state: StateSpec) -> Verdict:
    if state.owner_only and document.created_by_id != user.id:
        return Verdict(
            NotOwner(
                "this document belongs to the colleague who created it; only they may change "
                "it or act on it in this state (这张单据属于创建人，只有创建人可以处理)"
            )
        )
    return ALLOWED


def can_edit(user: User, document: Document, spec: FlowSpec) -> Verdict:
    """Rules `active`, `auditors_read_only`, `edit_role` and `owner_only` for editing data."""
    state = spec.state(document.state)
    editors = ", ".join(state.editable_by)
    if not user.active:
        return Verdict(RoleNotAllowed("this account is disabled"))
    if reads_only(user):
        return Verdict(ActionNotAllowed("auditors read documents and do not change them"))
    if not set(state.editable_by) & user.roles:
        return Verdict(
            ActionNotAllowed(
                f"the data cannot be edited in state `{document.state}`"
                + (f" by you (editable by {editors})" if editors else "")
            )
        )
    return _owner(user, document, state)


def can_act(
    user: User,
    process: DocumentProcess,
    action: str,
    facts: review_rules.ReviewFacts | None = None,
    delegation: Delegation | None = None,
) -> Verdict:
    """Every rule for taking `action` now (data checks excluded: the process runs those);
    with `delegation`, in the delegated roles on behalf of its principal (rule `on_behalf`)."""
    document, state = process.document, process.state
    if not user.active:
        return Verdict(RoleNotAllowed("this account is disabled"))
    if delegation is not None:
        return _act_on_behalf(user, process, action, facts, delegation)
    if state.is_review:
        if action not in REVIEW_ACTIONS:
            return Verdict(
                ActionNotAllowed(
                    f"`{action}` is not possible while the document is in review "
                    f"(`{document.state}`): approve or reject"
                )
            )
        return Verdict(
            review_rules.refusal(facts or process.review_facts(), user.id, _roles(user), action)
        )
    candidates = [t for t in process.spec.transitions_from(document.state) if t.action == action]
    if not candidates:
        possible = ", ".join(process.flow.actions_from(document.state)) or "none"
        return Verdict(
            ActionNotAllowed(
                f"`{action}` is not possible in state `{document.state}` "
                f"(possible here: {possible})"
            )
        )
    if reads_only(user):
        return Verdict(RoleNotAllowed("auditors read documents and do not act on them"))
    if not any(set(t.roles) & user.roles for t in candidates):
        needed = sorted({r for t in candidates for r in t.roles})
        return Verdict(RoleNotAllowed(f"`{action}` needs one of the roles {', '.join(needed)}"))
    return _owner(user, document, state)


def _act_on_behalf(
    user: User,
    process: DocumentProcess,
    action: str,
    facts: review_rules.ReviewFacts | None,
    delegation: Delegation,
) -> Verdict:
    document, state = process.document, process.state
    roles = delegated_roles(delegation)
    if reads_only(user) or delegation.to_user_id != user.id:
        return Verdict(RoleNotAllowed("auditors read documents and do not act on them"))
    if state.is_review:
        if action not in REVIEW_ACTIONS:
            return Verdict(ActionNotAllowed(f"`{action}` is not possible while in review"))
        found = review_rules.refusal(
            facts or process.review_facts(), user.id, roles, action, delegation.from_user_id
        )
        return Verdict(found)
    candidates = [t for t in process.spec.transitions_from(document.state) if t.action == action]
    if not any(set(t.roles) & roles for t in candidates):
        return Verdict(RoleNotAllowed(f"`{action}` is not among the roles delegated to you"))
    if state.owner_only and document.created_by_id not in (user.id, delegation.from_user_id):
        return _owner(user, document, state)
    return ALLOWED


def sees_decisions(user: User, process: DocumentProcess) -> bool:
    """Rule `blind`: may `user` see the others' decisions of the current round now?"""
    review = process.state.review
    if review is None or not review.blind:
        return True
    return AUDITOR in user.roles or process.decided_this_round(user)


def can_comment(user: User) -> Verdict:
    """Rule `comment` (seeing the document is checked when it is loaded)."""
    if not user.active or reads_only(user):
        return Verdict(RoleNotAllowed("auditors read documents and do not comment on them"))
    return ALLOWED


def can_attach(user: User, document: Document, spec: FlowSpec) -> Verdict:
    """Rule `attach`: `can_edit`, or the creator while the document is in review."""
    state = spec.state(document.state)
    if state.is_review and user.active and not reads_only(user):
        if document.created_by_id == user.id:
            return ALLOWED
        return Verdict(
            ActionNotAllowed(
                "while the document is in review only its creator may attach a file "
                "(审核中只有创建人可以添加附件)"
            )
        )
    verdict = can_edit(user, document, spec)
    if not verdict and isinstance(verdict.refusal, ActionNotAllowed) and not reads_only(user):
        return Verdict(ActionNotAllowed(f"files cannot be attached in state `{document.state}`"))
    return verdict


def can_open_attachment(
    user: User, document: Document, spec: FlowSpec, acted: bool = False
) -> Verdict:
    """Rule `open_attachment` (seeing the document is checked when it is loaded)."""
    if not user.active:
        return Verdict(RoleNotAllowed("this account is disabled"))
    if document.created_by_id == user.id or acted or working_roles(spec) & user.roles:
        return ALLOWED
    return Verdict(
        Forbidden(
            "attached files are opened by the document's creator, its reviewers and auditors "
            "(附件仅限创建人、复核人和审计查看)"
        )
    )


def needs_reason(action: str) -> bool:
    """Rule `reject_reason`: which actions must carry a comment."""
    return action == "reject"


# --- managing ------------------------------------------------------------------------------------
def can_publish(user: User | None) -> Verdict:
    """Rule `publish` (None is the command line, run by whoever runs the server)."""
    if user is not None and (not user.active or FLOW_ADMIN not in user.roles):
        return Verdict(
            Forbidden(
                "only a flow administrator (流程管理员) may publish flows or migrate documents"
            )
        )
    return ALLOWED


def can_audit(user: User) -> Verdict:
    """Rule `audit`."""
    if not user.active or AUDITOR not in user.roles:
        return Verdict(Forbidden("only auditors (审计) may read the audit log"))
    return ALLOWED


def can_manage_users(user: User | None) -> Verdict:
    """Rule `manage_users` (None is the command line, run by whoever runs the server)."""
    if user is not None and (not user.active or USER_ADMIN not in user.roles):
        return Verdict(Forbidden("only a user administrator (用户管理员) may manage people"))
    return ALLOWED


def can_change_user(
    actor: User | None,
    target: User,
    *,
    roles: Collection[str] | None = None,
    active: bool | None = None,
    password: bool = False,
) -> Verdict:
    """Rules `manage_users` and `no_self_grant` for one change of `target`'s account."""
    verdict = can_manage_users(actor)
    if not verdict:
        return verdict
    if actor is not None and actor.id == target.id:
        if roles is not None and frozenset(roles) != target.roles:
            return Verdict(
                SelfAdministration(
                    "you may not change your own roles; another user administrator must"
                )
            )
        if active is False:
            return Verdict(
                SelfAdministration(
                    "you may not disable your own account; ask another user administrator"
                )
            )
        if password:
            return Verdict(
                SelfAdministration("change your own password on the settings page, not by a reset")
            )
    return ALLOWED


# --- delegation ----------------------------------------------------------------------------------
UNDELEGABLE = frozenset({AUDITOR, FLOW_ADMIN, "user_admin"})
MANAGERS = frozenset({"sales_manager", "gm"})
OVERDUE_LIST_ROLES = frozenset({"sales_admin", "finance", "sales_manager", "gm"})


def delegable_roles(user: User) -> frozenset[str]:
    """Rule `delegate`: the roles a user may hand over (those they act in)."""
    return _roles(user) - UNDELEGABLE


def can_delegate(principal: User, delegate: User, roles: Collection[str]) -> Verdict:
    """Rule `delegate`."""
    if not principal.active or reads_only(principal):
        return Verdict(RoleNotAllowed("auditors and disabled accounts cannot delegate"))
    if delegate.id == principal.id:
        return Verdict(ActionNotAllowed("you cannot delegate to yourself; name a colleague"))
    if not delegate.active:
        return Verdict(ActionNotAllowed(f"{delegate.username} is not an active user"))
    if reads_only(delegate):
        return Verdict(ActionNotAllowed(f"{delegate.username} is an auditor and does not act"))
    missing = sorted(set(roles) - delegable_roles(principal))
    if missing:
        return Verdict(
            RoleNotAllowed(
                f"you cannot delegate {', '.join(missing)}: you may delegate only roles you act "
                f"in ({', '.join(sorted(delegable_roles(principal))) or 'none'})"
            )
        )
    return ALLOWED


def delegated_roles(delegation: Delegation) -> frozenset[str]:
    """Rule `on_behalf`: the roles a running delegation lends (those its principal still holds)."""
    principal = delegation.principal
    if not principal.active:
        return frozenset()
    return frozenset(delegation.roles) & delegable_roles(principal)


def can_see_as_delegate(delegation: Delegation, document: Document, spec: FlowSpec) -> bool:
    """Rule `on_behalf`: a delegate sees what the delegated roles see."""
    return bool(seeing_roles(spec) & delegated_roles(delegation))


def can_see_all_delegations(user: User) -> Verdict:
    """Rule `delegations`: managers see every active delegation."""
    if not user.active or not MANAGERS & user.roles:
        return Verdict(Forbidden("only managers (销售经理, 总经理) see everyone's delegations"))
    return ALLOWED


def can_see_delegation(user: User, delegation: Delegation) -> bool:
    return user.id in (delegation.from_user_id, delegation.to_user_id) or bool(
        can_see_all_delegations(user)
    )


def can_revoke_delegation(user: User, delegation: Delegation) -> Verdict:
    if delegation.from_user_id != user.id:
        return Verdict(Forbidden("only the person who gave a delegation withdraws it"))
    return ALLOWED


def can_see_overdue_list(user: User) -> Verdict:
    """Rule `overdue_list`."""
    if not user.active or not OVERDUE_LIST_ROLES & user.roles:
        return Verdict(
            Forbidden("the overdue list is for 内勤, 财务 and managers (sales_admin, finance)")
        )
    return ALLOWED


def acting_roles(spec: FlowSpec, state: str) -> Collection[str]:
    """Roles that can do anything at all in `state` (reviews, edits, transitions)."""
    node = spec.state(state)
    roles: set[str] = set(node.review.roles) if node.review else set()
    roles.update(node.editable_by)
    for transition in spec.transitions_from(state):
        roles.update(transition.roles)
    return roles
