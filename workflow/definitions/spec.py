"""Frozen dataclasses describing a validated flow; nothing here can be changed after loading."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workflow.calendar import Duration
from workflow.guards import Guard

LANGUAGES = ("zh", "en")


@dataclass(frozen=True)
class Label:
    """A user-facing text in Chinese and English (either may fall back to the other)."""

    zh: str
    en: str
    # Traditional Chinese; empty means "show `zh`" (the simplified text).
    zh_hant: str = ""

    def get(self, lang: str) -> str:
        if lang.startswith("en"):
            return self.en
        if lang == "zh_Hant" and self.zh_hant:
            return self.zh_hant
        return self.zh

    @classmethod
    def of(cls, value: Any, fallback: str) -> Label:
        if value is None:
            return cls(fallback, fallback)
        if isinstance(value, str):
            return cls(value, value)
        zh = value.get("zh") or value.get("en") or fallback
        return cls(zh, value.get("en") or zh, value.get("zh_Hant") or "")

    def as_dict(self) -> dict[str, str]:
        out = {"zh": self.zh, "en": self.en}
        if self.zh_hant:
            out["zh_Hant"] = self.zh_hant
        return out


@dataclass(frozen=True)
class ReferenceSpec:
    """`references:` on an integer field or column: its value is the id of a `flow` document.

    The referenced document must be in one of `states` (any state when empty). With `limit` (an
    expression over the referenced document's fields) the `amount` this document takes from
    it, added to what every other live referrer takes, may not exceed the limit. Entering one
    of `reverses_in` releases what the referenced document itself takes (a credit note
    reversing an invoice frees the shipments it billed)."""

    flow: str
    states: tuple[str, ...] = ()
    amount: str | None = None
    limit: str | None = None
    reverses_in: tuple[str, ...] = ()


@dataclass(frozen=True)
class FieldSpec:
    """One data field of a flow (or one column of a table field)."""

    name: str
    type: str
    label: Label
    required: bool = False
    default: Any = None
    help: Label | None = None
    min: Any = None
    max: Any = None
    places: int = 2
    min_length: int | None = None
    max_length: int | None = None
    choices: tuple[str, ...] = ()
    # `choice_labels`: how a choice reads in each language (the stored value never changes).
    choice_labels: tuple[tuple[str, Label], ...] = ()
    columns: tuple[FieldSpec, ...] = ()
    min_rows: int | None = None
    max_rows: int = 200
    # `unique`: the value appears in at most one live document of the flow (None: not unique);
    # the flows named here share the same register of values (`unique: {across: [...]}`).
    unique_across: tuple[str, ...] | None = None
    references: ReferenceSpec | None = None

    def column(self, name: str) -> FieldSpec | None:
        return next((c for c in self.columns if c.name == name), None)

    def choice_text(self, value: Any, lang: str) -> str:
        """A choice as the reader's language says it (the value itself when not labelled)."""
        label = dict(self.choice_labels).get(value)
        return label.get(lang) if label is not None else str(value)


@dataclass(frozen=True)
class ChecklistItem:
    """One point a reviewer must confirm before approving (复核要点)."""

    id: str
    label: Label


@dataclass(frozen=True)
class ReviewSpec:
    """A review state's quorum: `required` distinct approvers holding one of `roles`."""

    required: int
    roles: tuple[str, ...]
    allow_earlier_reviewers: bool = False
    # Every listed role must be among the approvers (内勤 + 库管, not two 内勤).
    require_each_role: bool = False
    checklist: tuple[ChecklistItem, ...] = ()
    # Until a reviewer has decided (or the state is left) they do not see the others' decisions.
    blind: bool = False


@dataclass(frozen=True)
class Route:
    """A conditional target: the first route whose guard holds is taken."""

    to: str
    when: Guard | None = None


@dataclass(frozen=True)
class Escalation:
    """Past a deadline, tell `notify` (roles): in a state `after` counts from entering it, under
    `overdue` from the date field."""

    after: Duration
    notify: tuple[str, ...]


@dataclass(frozen=True)
class StateSpec:
    name: str
    label: Label
    editable_by: tuple[str, ...] = ()
    # Empty means every field (the initial state); later states must name what may change.
    editable_fields: tuple[str, ...] = ()
    review: ReviewSpec | None = None
    on_approve: tuple[Route, ...] = ()
    on_reject: str | None = None
    final: bool = False
    # Only the document's creator may edit it or take its actions here (drafts are theirs).
    owner_only: bool = False
    # A final state that abandons the document (withdrawn, cancelled): its unique values are
    # released for other documents.
    void: bool = False
    # The deadline for leaving the state (`2d`: two working days after entering it) and who is
    # told when it is missed by `after`.
    sla: Duration | None = None
    escalate: tuple[Escalation, ...] = ()

    @property
    def is_review(self) -> bool:
        return self.review is not None

    @property
    def is_editable(self) -> bool:
        return bool(self.editable_by)


@dataclass(frozen=True)
class Check:
    """A rule that must hold for an action to be taken, with the message shown when it does not."""

    rule: Guard
    message: Label


@dataclass(frozen=True)
class TransitionSpec:
    action: str
    source: str
    dest: str
    roles: tuple[str, ...]
    label: Label
    when: Guard | None = None
    checks: tuple[Check, ...] = ()
    line: int | None = None


@dataclass(frozen=True)
class OverdueSpec:
    field: str
    states: tuple[str, ...]
    escalate: tuple[Escalation, ...] = ()


@dataclass(frozen=True)
class FlowSpec:
    """A whole validated flow definition."""

    name: str
    title: Label
    description: Label | None
    fields: tuple[FieldSpec, ...]
    initial: str
    states: tuple[StateSpec, ...]
    transitions: tuple[TransitionSpec, ...]
    example: dict[str, Any]
    overdue: OverdueSpec | None = None
    # Roles that may read every document of the flow without acting on it.
    visible_to: tuple[str, ...] = ()
    # Documents are numbered `<prefix>-<year>-<nnnnnn>`; None means the flow's name upper-cased.
    number_prefix: str | None = None
    # False: every approval is taken one by one on its own page (never in a bulk approve).
    bulk: bool = True
    _state_index: dict[str, StateSpec] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._state_index.update({s.name: s for s in self.states})

    def state(self, name: str) -> StateSpec:
        return self._state_index[name]

    def has_state(self, name: str) -> bool:
        return name in self._state_index

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)

    def transitions_from(self, state: str) -> tuple[TransitionSpec, ...]:
        return tuple(t for t in self.transitions if t.source == state)

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.action for t in self.transitions))

    @property
    def roles(self) -> frozenset[str]:
        """Every role that acts anywhere in this flow (edits, fires a transition or reviews)."""
        roles: set[str] = set()
        for s in self.states:
            roles.update(s.editable_by)
            if s.review:
                roles.update(s.review.roles)
        for t in self.transitions:
            roles.update(t.roles)
        return frozenset(roles)
