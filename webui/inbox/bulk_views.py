"""Approve selected tasks from the inbox: each decided on its own (workflow/bulk.py), one line
of result per document."""

from __future__ import annotations

import re

from flask import flash, redirect, request, url_for
from flask_login import current_user

from webui.extensions import db
from webui.inbox import bp
from webui.inbox.helpers import t
from workflow import bulk
from workflow.errors import WorkflowError

ITEM_RE = re.compile(r"([0-9]{1,10}):([0-9]{1,10})")
BACK_RE = re.compile(r"[A-Za-z0-9_%=&.+~-]{1,1000}")
NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")


@bp.post("/inbox/bulk")
def bulk_approve():
    # Back to the same filtered list: only a query string, appended to a fixed path.
    query = request.form.get("back", "")
    back = url_for("inbox.inbox") + ("?" + query if BACK_RE.fullmatch(query) else "")
    raw = request.form.getlist("item")
    items = [(int(m[1]), int(m[2])) for v in raw if (m := ITEM_RE.fullmatch(v))]
    if not items:
        flash(t("请先勾选要同意的单据。", "Select the documents to approve first."), "error")
        return redirect(back, 303)
    if len(items) > bulk.MAX_ITEMS or len(items) != len(raw):
        flash(
            t("一次最多同意 {n} 张单据。", "At most {n} at once.", n=bulk.MAX_ITEMS),
            "error",
        )
        return redirect(back, 303)
    comment = request.form.get("comment", "")[:2000]
    flow, state = request.form.get("flow", ""), request.form.get("state", "")
    chosen = (flow, state) if NAME_RE.fullmatch(flow) and NAME_RE.fullmatch(state) else None
    # The state's checklist, confirmed once for every selected document (`check-<id>`).
    checks = {
        key.removeprefix("check-"): True
        for key in request.form
        if key.startswith("check-") and NAME_RE.fullmatch(key.removeprefix("check-"))
    }
    results = bulk.act_each(
        db.session, current_user.row, "approve", items, comment, chosen, checks or None
    )
    done = [r for r in results if r.ok]
    flash(t("已同意 {n} 张。", "Approved {n}.", n=len(done)), "ok")
    for result in results:
        if not result.ok:
            flash(_line(result.id, result.error), "error")
    return redirect(back, 303)


def _line(doc_id: int, error: WorkflowError | None) -> str:
    message = error.message if error else ""
    return t(
        "单据 #{id} 未处理：{message}",
        "Document #{id} not approved: {message}",
        id=doc_id,
        message=message,
    )
