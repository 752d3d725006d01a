"""What the document page shows, decided here (and by the engine), so templates only print."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webui.i18n import lang
from webui.inbox.helpers import action_name, field_message
from workflow import policy
from workflow.process import DocumentProcess

DANGEROUS_ACTIONS = ("reject", "cancel", "withdraw")


@dataclass(frozen=True)
class ActionForm:
    """One action button with its comment box, as the caller may take it now."""

    name: str
    label: str
    needs_reason: bool
    danger: bool
    comment: str = ""
    error: str = ""
    # (id, label, ticked) of the review's checklist: confirmed to approve, failed to reject.
    checklist: tuple[tuple[str, str, bool], ...] = ()


def action_forms(
    process: DocumentProcess,
    actions: list[str],
    typed: Mapping[str, str] | None = None,
    errors: Mapping[str, Any] | None = None,
) -> list[ActionForm]:
    """The forms for `actions`; the one just refused keeps what was typed and its message."""
    typed, errors = typed or {}, errors or {}
    review = process.state.review
    items = review.checklist if review is not None else ()
    forms = []
    for action in actions:
        mine = typed.get("action") == action
        messages = [*(errors.get("comment") or ()), *(errors.get("checks") or ())] if mine else None
        ticked = set(typed.get("checks") or ()) if mine else set()
        checklist = tuple(
            (item.id, item.label.get(lang()), item.id in ticked)
            for item in items
            if action in ("approve", "reject")
        )
        forms.append(
            ActionForm(
                name=action,
                label=action_name(process, action),
                needs_reason=policy.needs_reason(action),
                danger=action in DANGEROUS_ACTIONS,
                comment=typed.get("comment", "") if mine else "",
                error="; ".join(field_message(m) for m in messages or ()),
                checklist=checklist,
            )
        )
    return forms
