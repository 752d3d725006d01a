"""The rules of review, as pure functions over plain facts (no database, no Flask).

These rules are not configurable away: a definition chooses quorum size and eligible roles,
and may relax only the cross-level rule for one state, explicitly.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from workflow.definitions.spec import StateSpec
from workflow.errors import AlreadyReviewed, Refused, RoleNotAllowed, SelfReview
from workflow.roles import NON_ACTING_ROLES


@dataclass(frozen=True)
class ReviewFacts:
    """What the rules need to know about one document in one review state and round."""

    state: StateSpec
    creator_id: int
    entered_by_id: int  # who moved the document into this review state
    editor_ids: frozenset[int]  # everyone who edited the document's data
    decided_this_round: frozenset[int]  # approved or rejected in this state's current round
    approved_this_round: tuple[int, ...]
    approved_other_states: frozenset[int]  # approvers of any other review state of this doc
    approver_roles: Mapping[int, frozenset[str]] = field(default_factory=dict)


def refusal(
    facts: ReviewFacts,
    user_id: int,
    roles: Collection[str],
    action: str = "approve",
    principal_id: int | None = None,
) -> Refused | None:
    """The refusal `action` (approve or reject) by this person would meet, or None.

    A delegate acting for `principal_id` is held to every rule twice: as themselves and as the
    person they stand in for (no one approves their own document through a colleague, counts
    twice in a quorum, or approves two levels, as principal or as delegate)."""
    review = facts.state.review
    if review is None:
        raise ValueError(f"state {facts.state.name} is not a review state")
    if NON_ACTING_ROLES & set(roles):
        return RoleNotAllowed("auditors read documents and do not act on them")
    if not set(review.roles) & set(roles):
        return RoleNotAllowed(
            f"this review needs one of the roles {', '.join(review.roles)}; you have none of them"
        )
    people = [(user_id, "you")]
    if principal_id is not None and principal_id != user_id:
        people.append((principal_id, "the colleague you stand in for"))
    for person, who in people:
        found = _person_refusal(facts, person, who, review.allow_earlier_reviewers)
        if found is not None:
            return found
    if review.require_each_role and action == "approve":
        approvers = [facts.approver_roles.get(a, frozenset()) for a in facts.approved_this_round]
        approvers.append(frozenset(roles))
        uncovered = len(review.roles) - _covered_roles(approvers, review.roles)
        if uncovered > review.required - len(approvers):
            return RoleNotAllowed(
                "this review needs one approval from each of the roles "
                f"{', '.join(review.roles)}; the remaining approvals must come from the "
                "roles not yet represented"
            )
    return None


def _person_refusal(facts: ReviewFacts, person: int, who: str, relaxed: bool) -> Refused | None:
    """Rules 1 and 2 for one person (the actor, or the principal a delegate acts for)."""
    if person == facts.creator_id:
        return SelfReview(f"{who} created this document; someone else must review it")
    if person == facts.entered_by_id:
        return SelfReview(f"{who} submitted this document for review; someone else must review it")
    if person in facts.editor_ids:
        return SelfReview(f"{who} edited this document's data; someone else must review it")
    if person in facts.decided_this_round:
        verb = "have" if who == "you" else "has"
        return AlreadyReviewed(f"{who} {verb} already reviewed this document in this round")
    if person in facts.approved_other_states and not relaxed:
        return AlreadyReviewed(
            f"{who} approved an earlier review level of this document; "
            "a different person must approve this level"
        )
    return None


def _covered_roles(approvers: Sequence[frozenset[str]], roles: Sequence[str]) -> int:
    """How many of `roles` distinct approvers can stand for at once (bipartite matching)."""
    return len(_matching(approvers, roles))


def open_roles(facts: ReviewFacts) -> tuple[str, ...]:
    """The roles of a review asking for each role that no approver of this round stands for
    yet (definition order): whose approval the document waits on. () when the review takes
    any of its roles."""
    review = facts.state.review
    if review is None or not review.require_each_role:
        return ()
    approvers = [facts.approver_roles.get(a, frozenset()) for a in facts.approved_this_round]
    held = _matching(approvers, review.roles)
    return tuple(role for role in review.roles if role not in held)


def _matching(approvers: Sequence[frozenset[str]], roles: Sequence[str]) -> dict[str, int]:
    """role → the approver standing for it, a maximum matching of approvers to roles."""
    holder: dict[str, int] = {}

    def assign(index: int, seen: set[str]) -> bool:
        for role in roles:
            if role in approvers[index] and role not in seen:
                seen.add(role)
                if role not in holder or assign(holder[role], seen):
                    holder[role] = index
                    return True
        return False

    for index in range(len(approvers)):
        assign(index, set())
    return holder


def quorum_reached(
    facts: ReviewFacts, new_approver: int | None = None, new_roles: Collection[str] = ()
) -> bool:
    """True when the distinct approvers of this round (with `new_approver`) reach `required`."""
    assert facts.state.review is not None
    review = facts.state.review
    approvers = set(facts.approved_this_round)
    if new_approver is not None:
        approvers.add(new_approver)
    if len(approvers) < review.required:
        return False
    if review.require_each_role:
        known = {
            **facts.approver_roles,
            **({new_approver: frozenset(new_roles)} if new_approver else {}),
        }
        held = [known.get(a, frozenset()) for a in sorted(approvers)]
        return _covered_roles(held, review.roles) == len(review.roles)
    return True
