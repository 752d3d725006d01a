"""Pages for deadlines and people who are away: delegations, the overdue deposits list, and
the notification settings. Thin: parse, one engine call, render or redirect."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from webui.extensions import db
from webui.inbox import bp
from webui.inbox.helpers import t
from workflow import delegation, notify, policy, queries
from workflow.roles import ROLES


@bp.get("/delegations")
def delegations():
    """My delegations (given and received); managers also see everyone's active ones."""
    user = current_user.row
    everyone = bool(policy.can_see_all_delegations(user))
    return render_template(
        "inbox/delegations.html",
        mine=delegation.listing(db.session, user),
        everyone=delegation.listing(db.session, user, everyone=True) if everyone else None,
        delegable=[(r, ROLES[r]) for r in sorted(policy.delegable_roles(user))],
        role_labels=ROLES,
        today=delegation.today().isoformat(),
        me=user.id,
    )


@bp.post("/delegations")
def create_delegation():
    form = request.form
    delegation.create(
        db.session,
        current_user.row,
        form.get("to", "").strip(),
        form.getlist("roles"),
        form.get("from", ""),
        form.get("until", ""),
    )
    flash(t("已委托。", "Delegated."), "ok")
    return redirect(url_for("inbox.delegations"), 303)


@bp.post("/delegations/<int:delegation_id>/withdraw")
def withdraw_delegation(delegation_id: int):
    delegation.revoke(db.session, current_user.row, delegation_id)
    flash(t("已撤回委托。", "Delegation withdrawn."), "ok")
    return redirect(url_for("inbox.delegations"), 303)


@bp.get("/overdue")
def overdue():
    """逾期保证金: documents past their `overdue` date, days overdue and amount."""
    return render_template(
        "inbox/overdue.html", items=queries.overdue_deposits(db.session, current_user.row)
    )


@bp.post("/notifications/settings")
def notification_settings():
    form = request.form
    notify.set_preferences(
        db.session, current_user.row, form.get("email") == "on", form.get("digest") == "on"
    )
    flash(t("通知设置已保存。", "Notification settings saved."), "ok")
    return redirect(url_for("inbox.notifications"), 303)


@bp.app_context_processor
def _away_links() -> dict[str, Any]:
    """Whether the nav shows the overdue list (the policy decides; the template prints)."""
    if not current_user or not current_user.is_authenticated:
        return {"may_see_overdue": False}
    return {"may_see_overdue": bool(policy.can_see_overdue_list(current_user.row))}
