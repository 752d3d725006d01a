from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from webui.auth import bp
from webui.auth.forms import LANGUAGE_CHOICES, LanguageForm, LoginForm, PasswordForm
from webui.auth_loader import SessionUser, bind_csrf_to_sign_in, uses_header_auth
from webui.extensions import db
from webui.i18n import t
from workflow.accounts import (
    authenticate,
    change_password,
    clear_login_failures,
    close_session,
    login_locked,
    open_session,
    record_login_failure,
    set_language,
)
from workflow.errors import PasswordChangeRequired


def safe_next(target: str | None) -> str:
    """Only same-site paths: never another host, scheme or a protocol-relative URL."""
    home = url_for("inbox.inbox")
    if not target:
        return home
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return home
    if "\\" in target or any(ord(c) < 32 for c in target):
        return home
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        username = form.username.data.strip()
        config = current_app.config
        if login_locked(
            db.session, username, config["LOGIN_MAX_FAILURES"], config["LOGIN_LOCK_MINUTES"]
        ):
            minutes = config["LOGIN_LOCK_MINUTES"]
            record_login_failure(db.session, username, request.remote_addr or "", "login_throttled")
            flash(
                t(
                    "登录失败次数过多，请 {minutes} 分钟后再试。",
                    "Too many failed sign-ins; try again in {minutes} minutes.",
                    minutes=minutes,
                ),
                "error",
            )
            return render_template("auth/login.html", form=form), 429
        user = authenticate(db.session, username, form.password.data)
        if user is not None:
            clear_login_failures(db.session, username)
            keep_lang = session.get("lang")
            session.clear()  # a fresh session at login: no fixation
            if keep_lang:
                session["lang"] = keep_lang
            key = open_session(db.session, user)
            login_user(SessionUser(user, session_key=key), remember=form.remember.data)
            bind_csrf_to_sign_in(key)  # pages of this sign-in submit as long as it lasts
            if user.must_change_password:
                flash(
                    t(
                        "管理员重置了你的密码，请先设置新密码。",
                        "An administrator reset your password; choose a new one first.",
                    ),
                    "error",
                )
                return redirect(url_for("auth.password"))
            return redirect(safe_next(request.args.get("next")))
        record_login_failure(db.session, username, request.remote_addr or "")
        flash(t("用户名或密码不正确。", "Wrong username or password."), "error")
        status = 401
    elif request.method == "POST":
        status = 400
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
@login_required
def logout():
    close_session(db.session, current_user.session_key)
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


# Signed in with a password an administrator reset: only these pages until it is changed.
OPEN_WHILE_RESET = frozenset(
    {"auth.password", "auth.logout", "auth.language", "auth.login", "static", "main.healthz"}
)


@bp.before_app_request
def _password_reset_first():
    """A reset password is changed at the next sign-in before anything else (pages redirect
    to the password form; the API, used with this session, answers 403)."""
    if not current_user.is_authenticated or uses_header_auth():
        return None
    if not current_user.row.must_change_password or request.endpoint in OPEN_WHILE_RESET:
        return None
    if request.path.startswith("/api/"):
        raise PasswordChangeRequired(
            "an administrator reset this password: change it at /auth/password first"
        )
    return redirect(url_for("auth.password"))


@bp.route("/password", methods=["GET", "POST"])
@login_required
def password():
    form = PasswordForm()
    if form.validate_on_submit():
        # A wrong current password comes back as InvalidData: webui/errors.py re-renders this form.
        g.rerender = lambda errors: render_template("auth/password.html", form=form, errors=errors)
        row = current_user.row
        change_password(
            db.session,
            row,
            form.old_password.data,
            form.new_password.data,
            keep_session=current_user.session_key,
        )
        flash(t("密码已修改。", "Your password was changed."), "ok")
        return redirect(url_for("inbox.inbox"), 303)
    status = 422 if request.method == "POST" else 200
    return render_template("auth/password.html", form=form, errors={}), status


@bp.route("/settings", methods=["GET", "POST"])
@login_required
def settings():
    form = LanguageForm(language=current_user.row.language or "")
    if form.validate_on_submit():
        set_language(db.session, current_user.row, form.language.data or None)
        session.pop("lang", None)
        flash(t("已保存。", "Saved."), "ok")
        return redirect(url_for("auth.settings"), 303)
    return render_template("auth/settings.html", form=form, choices=LANGUAGE_CHOICES)


@bp.post("/language")
def language():
    """The language of this browser (before sign-in, or when the user has no saved choice)."""
    form = LanguageForm()
    if form.validate_on_submit():
        if form.language.data:
            session["lang"] = form.language.data
        else:
            session.pop("lang", None)
        if current_user.is_authenticated:
            set_language(db.session, current_user.row, form.language.data or None)
    return redirect(safe_next(request.form.get("back")), 303)
