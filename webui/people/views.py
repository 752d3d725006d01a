"""Thin views: parse the form, call one accounts service, redirect (errors: webui/errors.py)."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from webui.extensions import db
from webui.i18n import t
from webui.people import bp
from webui.people.forms import ChangeUserForm, CreateUserForm
from webui.people.presenters import person_rows, role_choices
from workflow import accounts, policy

CHANGES = ("profile", "disable", "enable", "password", "tokens")


@bp.before_request
@login_required
def _user_admins_only() -> None:
    policy.can_manage_users(current_user.row).enforce()  # 403 for everyone else


@bp.app_context_processor
def _nav() -> dict[str, Any]:
    def may_manage_people() -> bool:
        user = current_user
        return bool(user.is_authenticated) and bool(policy.can_manage_users(user.row))

    return {"may_manage_people": may_manage_people}


@bp.get("")
def index():
    return _index(CreateUserForm(), {})


def _index(form: CreateUserForm, errors: dict):
    users = accounts.list_users(db.session)
    rows = person_rows(users, accounts.token_counts(db.session))
    return render_template(
        "people/index.html",
        rows=rows,
        form=form,
        errors=errors,
        roles=role_choices(form.roles.data),
    )


@bp.post("")
def create():
    form = CreateUserForm()
    if not form.validate():
        return _index(form, {}), 422
    g.rerender = lambda errors: _index(form, errors)  # InvalidData: the form again, as typed
    user = accounts.admin_create_user(
        db.session,
        current_user.row,
        form.username.data,
        form.password.data,
        form.roles.data or [],
        form.display_name.data or "",
    )
    flash(t("已添加 {name}。", "Added {name}.", name=user.name), "ok")
    return redirect(url_for("people.person", username=user.username), 303)


@bp.get("/<username>")
def person(username: str):
    user = accounts.get_user(db.session, username)
    form = ChangeUserForm(display_name=user.display_name, roles=sorted(user.roles))
    return _person(user, form, {})


def _person(user, form: ChangeUserForm, errors: dict):
    counts = accounts.token_counts(db.session)
    (row,) = person_rows([user], counts)
    return render_template(
        "people/person.html",
        row=row,
        form=form,
        errors=errors,
        roles=role_choices(form.roles.data or []),
        is_self=user.id == current_user.row.id,
    )


@bp.post("/<username>")
def change(username: str):
    user = accounts.get_user(db.session, username)
    form = ChangeUserForm()
    what = request.form.get("change")
    if what not in CHANGES or not form.validate():
        abort(400)
    g.rerender = lambda errors: _person(user, form, errors)
    args: dict[str, Any] = {}
    if what == "profile":
        args = {"display_name": form.display_name.data or "", "roles": form.roles.data or []}
    elif what in ("disable", "enable"):
        args = {"active": what == "enable"}
    elif what == "password":
        args = {"password": form.password.data or ""}
    elif what == "tokens":
        args = {"revoke_api_tokens": True}
    accounts.admin_update_user(db.session, current_user.row, username, **args)
    flash(DONE[what](), "ok")
    return redirect(url_for("people.person", username=username), 303)


DONE = {
    "profile": lambda: t("已保存姓名和角色。", "Name and roles saved."),
    "disable": lambda: t(
        "已停用，该用户的登录已全部结束。", "Disabled; every sign-in of theirs ended."
    ),
    "enable": lambda: t("已启用。", "Enabled."),
    "password": lambda: t(
        "密码已重置；该用户下次登录时必须修改密码。",
        "Password reset; they must change it at their next sign-in.",
    ),
    "tokens": lambda: t("已吊销该用户的全部 API 令牌。", "Every API token of theirs is revoked."),
}
