"""What the document page shows, decided here (and by the engine), so templates only print."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webui.i18n import lang
from webui.inbox.helpers import action_name, field_message, t
from workflow import policy
from workflow import review as review_rules
from workflow.attachments import INLINE_IMAGES
from workflow.errors import RoleNotAllowed
from workflow.models import User
from workflow.process import DocumentProcess
from workflow.roles import ROLES

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


def bulk_checklist(process: DocumentProcess) -> tuple[tuple[str, str], ...]:
    """(id, label) of the checklist a bulk approve of `process`'s flow and state confirms for
    every selected document (empty: the state has none)."""
    review = process.state.review
    return tuple((item.id, item.label.get(lang())) for item in review.checklist) if review else ()


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


def kept_comment(actions: list[str], typed: Mapping[str, str] | None) -> str:
    """The comment typed with a refused action whose form is gone now (e.g. approved already
    in another tab): shown with the refusal so nothing typed is lost."""
    if not typed or typed.get("action") in actions:
        return ""  # its form is still there, with the comment in it
    comment = typed.get("comment", "")
    return comment if isinstance(comment, str) else ""


@dataclass(frozen=True)
class ReviewStatus:
    """Where a document in review stands, as the viewer may know it: "已同意 1/2，等待库管"."""

    line: str  # approvals and whose approval it waits on ("" when the viewer may not know)
    reject_only: str = ""  # why the viewer may reject but not approve ("" otherwise)
    waiting: str = ""  # only whose approval it waits on: "等待库管" (the page shows the count)


def _role_names(roles: tuple[str, ...] | list[str]) -> str:
    names = [ROLES[r].get(lang()) if r in ROLES else r for r in roles]
    return t("、", ", ").join(names)


def review_status(
    process: DocumentProcess, user: User, actions: list[str] | None = None
) -> ReviewStatus | None:
    """The review line of a document in a review state (None elsewhere), from the engine's
    review facts: the approvals so far, the roles still missing, and — when the viewer may
    only reject — why (their role's place is taken; another role's slot is still open)."""
    state = process.state
    if not state.is_review or state.review is None:
        return None
    review = state.review
    facts = process.review_facts()
    missing = review_rules.open_roles(facts)
    line = waiting_text = ""
    if policy.sees_decisions(user, process):
        done = len(set(facts.approved_this_round))
        mine = user.id in facts.approved_this_round
        waiting = missing or (review.roles if done < review.required else ())
        who = _role_names(list(waiting))
        joiner = "" if missing else t("（任一）", " (any)")
        line = (
            t("你已同意，共 {done}/{n}", "You approved; {done}/{n}", done=done, n=review.required)
            if mine
            else t("已同意 {done}/{n}", "Approved {done}/{n}", done=done, n=review.required)
        )
        if who:
            waiting_text = t("等待{who}", "waiting for {who}", who=who) + joiner
            line += t("，", ", ") + waiting_text
    reject_only = ""
    if actions is None:
        actions = process.actions_for(user)
    if actions == ["reject"]:
        refusal = process.verdict(user, "approve", facts).refusal
        if missing and isinstance(refusal, RoleNotAllowed):
            names = _role_names(list(missing))
            reject_only = t(
                "你只能驳回：你的角色名额已有人同意，还缺{names}的同意。",
                "You may only reject: your role's place is filled; the {names} slot is still open.",
                names=names,
            )
        elif refusal is not None:
            reject_only = t("你只能驳回：", "You may only reject: ") + refusal.message
    return ReviewStatus(line, reject_only, waiting_text)


def review_statuses(
    processes: list[DocumentProcess], user: User, *, with_actions: bool
) -> dict[int, ReviewStatus]:
    """`review_status` for a list page (its processes from `DocumentProcess.prefetch`, which
    loaded this round's approvers with their roles); actions are worked out only where the
    list is the viewer's tasks."""
    statuses = {}
    for process in processes:
        status = review_status(process, user, None if with_actions else [])
        if status is not None:
            statuses[process.document.id] = status
    return statuses


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
