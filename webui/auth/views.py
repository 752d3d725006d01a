from __future__ import annotations

from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import login_required, login_user, logout_user

from webui.auth import bp
from webui.auth.forms import LoginForm
from webui.auth_loader import SessionUser
from webui.extensions import db
from workflow.services import authenticate


def safe_next(target: str | None) -> str:
    """Only same-site paths: never another host, scheme or a protocol-relative URL."""
    if not target:
        return url_for("main.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("main.index")
    if "\\" in target:
        return url_for("main.index")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():  # noqa: ANN201
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(db.session, form.username.data, form.password.data)
        if user is not None:
            session.clear()  # a fresh session at login: no fixation
            login_user(SessionUser(user), remember=form.remember.data)
            return redirect(safe_next(request.args.get("next")))
        flash(_("用户名或密码不正确。 Wrong username or password."), "error")
    return render_template("auth/login.html", form=form), 200 if request.method == "GET" else 401


@bp.post("/logout")
@login_required
def logout():  # noqa: ANN201
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))
