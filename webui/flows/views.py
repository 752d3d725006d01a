"""Flow pages: parse, one engine call, render or redirect. Errors are mapped in webui/errors.py,
except a definition that does not validate, which the editor shows at its lines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, fresh_login_required, login_required
from markupsafe import Markup

from webui.extensions import db
from webui.flows import bp
from webui.i18n import lang, t
from workflow import flowadmin, policy, services
from workflow.definitions import edit as yaml_edit
from workflow.definitions.diagram import render_svg
from workflow.definitions.spec import FlowSpec
from workflow.errors import DefinitionError
from workflow.process import compiled
from workflow.roles import NON_ACTING_ROLES, ROLES

NAME_RULE = "<flowname:name>"


def _t(zh: str, en: str) -> str:
    return t(zh, en)


@bp.record_once
def _setup(state) -> None:
    from webui.api import FlowNameConverter

    state.app.url_map.converters.setdefault("flowname", FlowNameConverter)
    # A stale (remembered) session must sign in again before publishing: the login page.
    state.app.login_manager.refresh_view = "auth.login"
    state.app.login_manager.needs_refresh_message = (
        "请重新登录后再发布流程。 Please sign in again to publish."
    )
    state.app.login_manager.needs_refresh_message_category = "error"


@bp.app_context_processor
def _nav() -> dict[str, Any]:
    """Whether to offer the flows page in the navigation (the engine decides, not the template)."""
    user = getattr(current_user, "row", None)
    return {"can_manage_flows": user is not None and bool(policy.can_publish(user))}


@bp.before_request
@login_required
def _signed_in() -> None:
    """Every page here needs a signed-in user; all but the diagram need a flow admin."""
    if request.endpoint != "flows.diagram":
        flowadmin.require_admin(current_user.row)


@bp.app_template_global()
def flow_diagram(process: Any, events: Any = ()) -> Markup:
    """The document's flow as inline SVG, its current state and the path so far highlighted
    (used by the document page; the SVG's text is escaped when it is drawn)."""
    path = [e.from_state for e in events if e.from_state and e.from_state != e.to_state]
    path.append(process.document.state)
    spec, here = process.spec, process.state.label.get(lang())
    title = f"{spec.title.get(lang())} — {_t('当前', 'now')}: {here}"
    svg = render_svg(spec, lang(), current=process.document.state, path=path, title=title)
    return Markup(svg)  # noqa: S704 - built by diagram.py from validated names and escaped text


# --- presenters -----------------------------------------------------------------------------------
@dataclass
class Checked:
    """What the editor shows for a text: its problems, or its diagram; and the diff."""

    text: str
    problems: list[Any]
    diagram: str | None
    diff: str
    weakens: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def check(name: str, text: str) -> Checked:
    current = services.current_version(db.session, name)
    published = current.yaml_text if current else ""
    diff = flowadmin.text_diff(published, text)
    try:
        spec: FlowSpec = flowadmin.check_text(text, name)
    except DefinitionError as exc:
        return Checked(text, exc.problems, None, diff, [])
    weakens = flowadmin.weakenings(compiled(current).spec, spec) if current else []
    return Checked(text, [], render_svg(spec, lang()), diff, weakens)


def parts(text: str) -> yaml_edit.Parts | None:
    """The structured form's parts, or None when the text is not even readable YAML."""
    try:
        return yaml_edit.parts_of(text)
    except DefinitionError:
        return None


def structured_edit(text: str, form: Any) -> str:
    """Apply the one structured edit the pressed button names to `text` (raise DefinitionError)."""
    kind, _, target = form.get("edit", "").partition(":")
    if kind == "review":
        raw = form.get(f"review-{target}-required", "")
        if not raw.isdigit() or len(raw) > 3:
            raise DefinitionError.single(
                "<edit>", None, _t("复核人数须为整数。", "The quorum must be a whole number.")
            )
        return yaml_edit.set_review(text, target, int(raw), form.getlist(f"review-{target}-roles"))
    if kind == "transition" and target.isdigit() and len(target) < 5:
        return yaml_edit.set_transition_roles(
            text, int(target), form.getlist(f"transition-{target}-roles")
        )
    if kind == "field":
        raw = form.get(f"field-{target}-choices")
        choices = None
        if raw is not None:
            choices = [c.strip() for c in raw.replace("，", ",").replace("\n", ",").split(",")]
            choices = [c for c in choices if c]
        return yaml_edit.set_field(
            text,
            target,
            form.get(f"field-{target}-label_zh", "").strip(),
            form.get(f"field-{target}-label_en", "").strip(),
            form.get(f"field-{target}-required") == "on",
            choices,
        )
    if kind == "guard":
        values = []
        for index in range(20):
            value = form.get(f"guard-{target}-{index}")
            if value is None:
                break
            values.append(value.strip())
        return yaml_edit.set_guard_numbers(text, target, values)
    raise DefinitionError.single("<edit>", None, _t("未知的修改。", "Unknown edit."))


def template_text(name: str, source: str | None) -> str:
    """The text a new flow starts from: a copy of `source` renamed to `name`."""
    if not source:
        return f"name: {name}\n"
    row = flowadmin.version(db.session, source)
    lines = row.yaml_text.splitlines(keepends=True)
    return "".join(f"name: {name}\n" if line.startswith("name:") else line for line in lines)


# --- pages ----------------------------------------------------------------------------------------
@bp.get("/flows/")
def index():
    flows = [
        (row, flowadmin.versions(db.session, row.flow_name))
        for row in services.list_flows(db.session)
    ]
    pending = {
        row.flow_name: flowadmin.pending_changes(db.session, row.flow_name) for row, _ in flows
    }
    return render_template("flows/index.html", flows=flows, pending=pending)


@bp.post("/flows/new")
def new():
    name = request.form.get("name", "").strip()
    source = request.form.get("template") or None
    if services.current_version(db.session, name) is not None:
        flash(t("流程 {name} 已存在。", "A flow named {name} already exists.", name=name), "error")
        return redirect(url_for("flows.index"), 303)
    if not flowadmin.NAME_RE.fullmatch(name):
        flash(
            _t(
                "流程名只能用小写字母、数字和下划线，以字母开头。",
                "A flow name uses a-z, digits and _, starting with a letter.",
            ),
            "error",
        )
        return redirect(url_for("flows.index"), 303)
    return redirect(url_for("flows.edit", name=name, template=source), 303)


@bp.get(f"/flows/{NAME_RULE}/edit")
def edit(name: str):
    current = services.current_version(db.session, name)
    if current is None:
        text = template_text(name, request.args.get("template"))
    else:
        text = current.yaml_text
    return _editor(name, check(name, text), current)


@bp.post(f"/flows/{NAME_RULE}/check")
def check_page(name: str):
    """The editor without JavaScript: the Check button posts the text here."""
    checked = check(name, request.form.get("yaml", ""))
    status = 200 if checked.ok else 422
    return _editor(name, checked, services.current_version(db.session, name)), status


@bp.post(f"/flows/{NAME_RULE}/structured")
def structured(name: str):
    """A structured edit (quorum, roles, a field): rewrite the text, then check it as usual.
    Nothing is stored: the manager sees the result, its diff and its diagram, then publishes."""
    text = request.form.get("yaml", "")
    note = request.form.get("note", "")
    current = services.current_version(db.session, name)
    try:
        text = structured_edit(text, request.form)
    except DefinitionError as exc:
        checked = check(name, text)
        checked.problems = [*exc.problems, *checked.problems]
        return _editor(name, checked, current, note), 422
    checked = check(name, text)
    return _editor(name, checked, current, note), 200 if checked.ok else 422


@bp.post(f"/flows/{NAME_RULE}/publish")
@fresh_login_required
def publish(name: str):
    text = request.form.get("yaml", "")
    note = request.form.get("note", "")
    try:
        outcome = flowadmin.publish(db.session, text, name, current_user.row, note)
    except DefinitionError:
        db.session.rollback()
        checked = check(name, text)
        flash(
            _t("定义有错误，未发布。", "The definition has errors; nothing was published."), "error"
        )
        return _editor(name, checked, services.current_version(db.session, name), note), 422
    if outcome.change is not None:
        flash(
            t(
                "此修改削弱了复核，需另一位流程管理员批准（修改 #{id}）。",
                "This change weakens review; a second flow admin must approve it (change #{id}).",
                id=outcome.change.id,
            ),
            "status",
        )
    elif outcome.created:
        flash(
            t(
                "已发布版本 {version}。",
                "Published version {version}.",
                version=outcome.version.version,
            ),
            "status",
        )
    else:
        flash(_t("内容未改变，没有新版本。", "Nothing changed; no new version."), "status")
    return redirect(url_for("flows.index"), 303)


@bp.post(f"/flows/{NAME_RULE}/changes/<int(min=1, max=2147483647):change_id>/approve")
@fresh_login_required
def approve(name: str, change_id: int):
    outcome = flowadmin.approve_change(db.session, name, change_id, current_user.row)
    flash(
        t(
            "已批准并发布版本 {version}。",
            "Approved and published version {version}.",
            version=outcome.version.version,
        ),
        "status",
    )
    return redirect(url_for("flows.index"), 303)


def _migration_form(name: str) -> tuple[list[int], dict[str, str]]:
    ids = [int(i) for i in request.form.getlist("document") if i.isdigit() and len(i) < 11]
    mapping = {
        key.removeprefix("map-"): value
        for key, value in request.form.items()
        if key.startswith("map-") and value
    }
    return ids, mapping


@bp.route(f"/flows/{NAME_RULE}/migrate", methods=["GET", "POST"])
def migrate(name: str):
    """Move chosen documents in flight to the current version: choose, map states, preview."""
    current = flowadmin.version(db.session, name)
    documents = flowadmin.in_flight(db.session, name)
    ids, mapping = _migration_form(name) if request.method == "POST" else ([], {})
    preview = (
        flowadmin.preview_migration(db.session, name, ids, mapping, current_user.row)
        if request.method == "POST"
        else None
    )
    old_states = sorted({d.state for d in documents})
    return render_template(
        "flows/migrate.html",
        name=name,
        current=current,
        spec=compiled(current).spec,
        documents=documents,
        chosen=set(ids),
        mapping=mapping,
        old_states=old_states,
        preview=preview,
    )


@bp.post(f"/flows/{NAME_RULE}/migrate/apply")
@fresh_login_required
def migrate_apply(name: str):
    ids, mapping = _migration_form(name)
    if not ids:
        flash(_t("请先选择单据。", "Choose the documents first."), "error")
        return redirect(url_for("flows.migrate", name=name), 303)
    moved = services.migrate_documents(
        db.session, name, mapping, current_user.row, document_ids=ids
    )
    flash(t("已迁移 {n} 份单据。", "Migrated {n} document(s).", n=len(moved)), "status")
    return redirect(url_for("flows.index"), 303)


@bp.get(f"/flows/{NAME_RULE}/diagram.svg")
def diagram(name: str):
    number = request.args.get("version", type=int)
    if "version" in request.args and number is None:
        abort(404)
    row = flowadmin.version(db.session, name, number)
    svg = render_svg(compiled(row).spec, lang())
    return Response(svg, mimetype="image/svg+xml")


def _editor(name: str, checked: Checked, current: Any, note: str = ""):
    return render_template(
        "flows/editor.html",
        name=name,
        checked=checked,
        current=current,
        note=note,
        parts=parts(checked.text),
        roles=[(r, label) for r, label in ROLES.items() if r not in NON_ACTING_ROLES],
    )
