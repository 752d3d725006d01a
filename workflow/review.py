"""The rules of review, as pure functions over plain facts (no database, no Flask).

These rules are not configurable away: a definition chooses quorum size and eligible roles,
and may relax only the cross-level rule for one state, explicitly.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

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


def refusal(facts: ReviewFacts, user_id: int, roles: Collection[str]) -> Refused | None:
    """The refusal a review decision by this person would meet, or None if they may decide."""
    review = facts.state.review
    if review is None:
        raise ValueError(f"state {facts.state.name} is not a review state")
    if NON_ACTING_ROLES & set(roles):
        return RoleNotAllowed("auditors read documents and do not act on them")
    if not set(review.roles) & set(roles):
        return RoleNotAllowed(
            f"this review needs one of the roles {', '.join(review.roles)}; you have none of them"
        )
    if user_id == facts.creator_id:
        return SelfReview("you created this document; someone else must review it")
    if user_id == facts.entered_by_id:
        return SelfReview("you submitted this document for review; someone else must review it")
    if user_id in facts.editor_ids:
        return SelfReview("you edited this document's data; someone else must review it")
    if user_id in facts.decided_this_round:
        return AlreadyReviewed("you have already reviewed this document in this round")
    if user_id in facts.approved_other_states and not review.allow_earlier_reviewers:
        return AlreadyReviewed(
            "you approved an earlier review level of this document; "
            "a different person must approve this level"
        )
    return None


def quorum_reached(facts: ReviewFacts, new_approver: int | None = None) -> bool:
    """True when the distinct approvers of this round (with `new_approver`) reach `required`."""
    assert facts.state.review is not None
    approvers = set(facts.approved_this_round)
    if new_approver is not None:
        approvers.add(new_approver)
    return len(approvers) >= facts.state.review.required
