"""Inbox views: parse, one engine call, render or redirect. Errors are mapped in webui/errors.py."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from webui import attachments
from webui.attachments import accepts_upload
from webui.errors import other_document
from webui.extensions import db
from webui.inbox import bp, document_view, presenters
from webui.inbox import tasklist as task_list
from webui.inbox.drafting import creation_fields, sum_plans
from webui.inbox.forms import BLANK_ROWS, form_data, form_values, row_name
from webui.inbox.helpers import t
from workflow import notify, policy, queries, seen, services, tasklist
from workflow.errors import InvalidData
from workflow.process import compiled
from workflow.services import current_version


@bp.before_request
@login_required
def _signed_in() -> None:
    """Every page here needs a signed-in, active user (checked again on every request)."""


@bp.get("/inbox")
def inbox():
    """The task list: 待办, 已办, 我的单据 and all I may see, filtered and paged from the URL."""
    return _task_list("waiting")


@bp.get("/mine")
def mine():
    """我的单据: the same list, on the documents I created."""
    return _task_list("created")


def _task_list(default_part: str):
    query = task_list.parse(request.args, default_part)
    try:
        page = tasklist.documents(
            db.session, current_user.row, query.filters, task_list.PAGE_SIZE, query.cursor
        )
    except InvalidData:  # a cursor from another list or a mangled URL: start again
        query.problems.append(t("翻页位置", "page position"))
        page = tasklist.documents(db.session, current_user.row, query.filters, task_list.PAGE_SIZE)
    # A group per flow (per flow and state in 待办: a bulk approve covers one flow and one
    # state), in the order of its first row.
    flows = services.list_flows(db.session)
    by_flow: dict[Any, list[Any]] = {}
    waiting = query.filters.part == "waiting"
    for process in page.items:
        document = process.document
        key = (document.flow_name, document.state) if waiting else document.flow_name
        by_flow.setdefault(key, []).append(process)
    return render_template(
        "inbox/inbox.html",
        groups=list(by_flow.items()),
        page=page,
        total=page.total,
        query=query,
        problems=query.problems,
        searching=query.searching,
        flows=flows,
        state_groups=task_list.state_groups(flows, query),
        part_label=task_list.part_label,
        startable=queries.startable_flows(db.session, current_user.row),
        queries=queries,
        bulk_checklist=presenters.bulk_checklist,
        statuses=presenters.review_statuses(page.items, current_user.row, with_actions=waiting),
        changes=seen.changes(db.session, current_user.row, (p.document for p in page.items)),
    )


@bp.get("/documents/<int:doc_id>")
def document(doc_id: int):
    user = current_user.row
    process = services.get_document(db.session, doc_id, user)
    since = seen.change(process.document, seen.last_seen(db.session, user, doc_id))
    page = _render_document(process, since=since)
    seen.mark(db.session, user, process.document)  # after rendering: the lists compare with it
    return page


def _render_document(
    process: Any,
    errors: dict[str, Any] | None = None,
    typed: dict[str, Any] | None = None,
    refusal: tuple[Any, str] | None = None,
    refusal_doc: int | None = None,
    since: str | None = None,
) -> str:
    user = current_user.row
    doc_id = process.document.id
    actions = process.actions_for(user)
    events = [e for e in queries.history(db.session, doc_id, user) if e.outcome == "ok"]
    revisions = {r.number: r for r in queries.revisions(db.session, doc_id, user)}
    diffs = {
        n: queries.field_diff(process, revisions[n - 1].data, r.data)
        for n, r in revisions.items()
        if n - 1 in revisions
    }
    return render_template(
        "inbox/document.html",
        process=process,
        doc=process.document,
        action_forms=presenters.action_forms(process, actions, typed, errors),
        status=presenters.review_status(process, user, actions),
        since=since,
        can_edit=process.can_edit(user),
        approvals=process.visible_approvals(user),
        refusal=refusal,
        refusal_doc=refusal_doc,
        kept_comment=presenters.kept_comment(actions, typed),
        blind=not policy.sees_decisions(user, process),
        can_comment=bool(policy.can_comment(user)),
        comments=[e for e in events if e.action == "comment"],
        files=presenters.attachment_rows(process, queries.attachments(db.session, process), user),
        can_attach=bool(policy.can_attach(user, process.document, process.spec)),
        events=events,
        diffs=diffs,
        overdue=queries.is_overdue(process),
        queries=queries,
        rejection=document_view.standing_rejection(process.document, events),
        names=document_view.display_names(db.session, (e.actor for e in events)),
    )


def _render_form(
    spec: Any, fields: Any, values: dict[str, Any], errors: dict[str, Any], **context: Any
) -> str:
    return render_template(
        "inbox/form.html",
        spec=spec,
        fields=fields,
        values=values,
        errors=errors or {},
        blank_rows=BLANK_ROWS,
        row_name=row_name,
        sums=sum_plans(fields),
        **context,
    )


@bp.route("/new/<flow_name>", methods=["GET", "POST"])
def create(flow_name: str):
    version = current_version(db.session, flow_name)
    if version is None:
        abort(404)
    spec = compiled(version).spec
    # The form is not even shown to people who may not start this flow (403, as the API says).
    policy.can_start(current_user.row, spec).enforce()
    fields = creation_fields(spec)  # later steps' fields (payment, tracking no.) come later
    if request.method == "GET":
        values = form_values(fields, {})
        return _render_form(spec, fields, values, {}, doc=None)
    data = form_data(fields, request.form)
    # On InvalidData webui/errors.py re-renders this form with the messages and what was typed.
    g.rerender = lambda errors: _render_form(spec, fields, data, errors, doc=None)
    process = services.create_document(db.session, current_user.row, flow_name, data)
    flash(t("已保存草稿。", "Draft saved."), "ok")
    return redirect(url_for("inbox.document", doc_id=process.document.id), 303)


@bp.route("/documents/<int:doc_id>/edit", methods=["GET", "POST"])
def edit(doc_id: int):
    process = services.get_document(db.session, doc_id, current_user.row)
    fields = process.editable_fields()  # after a review, only what this step is for
    if request.method == "GET":
        policy.can_edit(current_user.row, process.document, process.spec).enforce()
        values = form_values(fields, process.document.data)
        return _render_form(
            process.spec,
            fields,
            values,
            {},
            doc=process.document,
            revision=process.document.revision,
        )
    data = form_data(fields, request.form)
    revision = request.form.get("revision", type=int)
    g.rerender = lambda errors: _render_form(
        process.spec, fields, data, errors, doc=process.document, revision=revision
    )
    services.edit_document(db.session, doc_id, current_user.row, data, revision)
    flash(t("已保存修改。", "Changes saved."), "ok")
    return redirect(url_for("inbox.document", doc_id=doc_id), 303)


@bp.post("/documents/<int:doc_id>/act")
def act(doc_id: int):
    # `do` since the field stopped shadowing form.action; `action` still accepted (old pages).
    action = request.form.get("do") or request.form.get("action", "")
    revision = request.form.get("revision", type=int)
    comment = request.form.get("comment", "")
    ticked = [key.removeprefix("check-") for key in request.form if key.startswith("check-")]
    # A refusal shows the document again as it is now, with the refusal and the typed comment.
    g.rerender_refusal = lambda error, headline: _render_document(
        services.get_document(db.session, doc_id, current_user.row),
        getattr(error, "errors", None),
        {"action": action, "comment": comment, "checks": ticked},
        refusal=(headline, error.message),
        refusal_doc=other_document(getattr(error, "details", None)),
    )
    process = services.act(
        db.session,
        doc_id,
        current_user.row,
        action,
        revision,
        comment,
        checks={i: True for i in ticked} if action == "approve" else None,
        failed_checks=ticked if action == "reject" else None,
    )
    flash(t("已处理，当前状态：", "Done — the document is now: ") + state_text(process), "ok")
    if request.form.get("then") == "next":  # approve and open next: the longest-waiting task
        following = tasklist.documents(
            db.session, current_user.row, tasklist.Filters(part="waiting"), limit=2
        ).items
        following = [p for p in following if p.document.id != doc_id]
        if following:
            return redirect(url_for("inbox.document", doc_id=following[0].document.id), 303)
        flash(t("待办已全部处理完。", "Nothing else is waiting for you."), "ok")
        return redirect(url_for("inbox.inbox"), 303)
    return redirect(url_for("inbox.document", doc_id=doc_id), 303)


@bp.get("/notifications")
def notifications():
    items = notify.recent(db.session, current_user.row)
    page = render_template("inbox/notifications.html", items=items, subject=notify.subject)
    # seen now that they are on screen (those, not any that came in since)
    notify.mark_read(db.session, current_user.row, upto=items[0].id if items else 0)
    return page


@bp.app_context_processor
def _bell() -> dict[str, Any]:
    """The bell's unread count (one small indexed count, capped) and the nav's audit link."""
    if not current_user or not current_user.is_authenticated:
        return {"unread": "", "may_audit": False}
    user = current_user.row
    return {
        "unread": notify.unread_label(notify.unread_count(db.session, user)),
        "may_audit": bool(policy.can_audit(user)),  # the policy decides; the template prints
    }


@bp.post("/documents/<int:doc_id>/attachments")
@accepts_upload
def attach(doc_id: int):
    """The upload form on the document page (multipart, CSRF-checked like every form)."""
    upload = request.files.get("file")
    revision = request.form.get("revision", type=int)
    g.rerender_refusal = lambda error, headline: _render_document(
        services.get_document(db.session, doc_id, current_user.row),
        refusal=(headline, error.message),
    )
    if upload is None or not upload.filename:
        raise InvalidData(
            {"file": [t("请选择文件。", "Choose a file.")]}, t("请选择文件。", "Choose a file.")
        )
    _, attachment = services.attach(
        db.session,
        attachments.store(),
        doc_id,
        current_user.row,
        upload.stream,
        upload.filename,
        revision,
    )
    flash(t("已添加附件：", "Attached: ") + attachment.name, "ok")
    return redirect(url_for("inbox.document", doc_id=doc_id, _anchor="h-attachments"), 303)


@bp.get("/documents/<int:doc_id>/attachments/<int:attachment_id>")
def attachment(doc_id: int, attachment_id: int):
    """An attached file, shown inline (images, PDFs) or downloaded (`?download=1`)."""
    found, path = services.open_attachment(
        db.session, attachments.store(), doc_id, attachment_id, current_user.row
    )
    return attachments.file_response(found, path, download=request.args.get("download") == "1")


@bp.post("/documents/<int:doc_id>/comment")
def comment(doc_id: int):
    services.comment(db.session, doc_id, current_user.row, request.form.get("text", ""))
    flash(t("已发表评论。", "Comment posted."), "ok")
    return redirect(url_for("inbox.document", doc_id=doc_id, _anchor="h-comments"), 303)


def state_text(process: Any) -> str:
    from webui.i18n import lang

    return process.state.label.get(lang())
