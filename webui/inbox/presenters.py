"""What the document page shows, decided here (and by the engine), so templates only print."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webui.i18n import lang
from webui.inbox.helpers import action_name, field_message
from workflow import policy
from workflow.attachments import INLINE_IMAGES
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


@dataclass(frozen=True)
class AttachmentRow:
    """One attached file as the document page shows it."""

    id: int
    name: str
    size: str
    content_type: str
    sha256: str
    revision: int
    uploaded_by: str
    at: Any
    url: str
    download_url: str
    can_open: bool  # rule `open_attachment`: otherwise the name only
    image: bool  # shown inline as <img>
    pdf: bool


def attachment_rows(
    process: DocumentProcess, attachments: list[Any], user: Any
) -> list[AttachmentRow]:
    """The document's files, each with whether this person may open it and how it is shown."""
    from flask import url_for

    document = process.document
    may_open = bool(policy.can_open_attachment(user, document, process.spec))
    if not may_open and attachments:
        may_open = bool(
            policy.can_open_attachment(user, document, process.spec, process.acted_on(user))
        )
    rows = []
    for a in attachments:
        url = url_for("inbox.attachment", doc_id=document.id, attachment_id=a.id)
        rows.append(
            AttachmentRow(
                id=a.id,
                name=a.name,
                size=_size(a.size),
                content_type=a.content_type,
                sha256=a.sha256,
                revision=a.revision,
                uploaded_by=a.uploaded_by.name,
                at=a.at,
                url=url,
                download_url=url + "?download=1",
                can_open=may_open,
                image=may_open and a.content_type in INLINE_IMAGES,
                pdf=a.content_type == "application/pdf",
            )
        )
    return rows


def _size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} B"
