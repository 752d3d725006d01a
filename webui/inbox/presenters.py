"""What the document page shows, decided here (and by the engine), so templates only print."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


def action_forms(
    process: DocumentProcess,
    actions: list[str],
    typed: Mapping[str, str] | None = None,
    errors: Mapping[str, Any] | None = None,
) -> list[ActionForm]:
    """The forms for `actions`; the one just refused keeps what was typed and its message."""
    typed, errors = typed or {}, errors or {}
    forms = []
    for action in actions:
        mine = typed.get("action") == action
        messages = errors.get("comment") if mine else None
        forms.append(
            ActionForm(
                name=action,
                label=action_name(process, action),
                needs_reason=policy.needs_reason(action),
                danger=action in DANGEROUS_ACTIONS,
                comment=typed.get("comment", "") if mine else "",
                error="; ".join(field_message(m) for m in messages or ()),
            )
        )
    return forms
