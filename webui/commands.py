"""`flask --app wsgi users|flows|audit|setup …` — thin wrappers over the engine's services."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from flask_migrate import upgrade
from sqlalchemy import inspect, select

from webui.extensions import db
from workflow import audit
from workflow.accounts import create_user, issue_token, revoke_tokens, set_active, set_roles
from workflow.errors import DefinitionError, WorkflowError
from workflow.models import User
from workflow.process import compiled
from workflow.services import act, create_document, list_flows, publish_files

users_cli = AppGroup("users", help="Manage users and API tokens.")
flows_cli = AppGroup("flows", help="Validate and publish flow definitions.")
audit_cli = AppGroup("audit", help="Check the audit log.")

DEMO_PASSWORD_SUFFIX = "-demo-2026"  # noqa: S105 - demo data, printed on purpose
DEMO_USERS = [  # (username, display name, roles)
    ("zhang", "张敏 (内勤)", ["sales_admin"]),
    ("wang", "王芳 (内勤)", ["sales_admin"]),
    ("chen", "陈静 (内勤)", ["sales_admin"]),
    ("li", "李强 (库管)", ["warehouse"]),
    ("zhou", "周勇 (库管)", ["warehouse"]),
    ("xu", "徐磊 (业务员)", ["sales"]),
    ("liu", "刘洋 (销售经理)", ["sales_manager"]),
    ("sun", "孙丽 (销售经理)", ["sales_manager"]),
    ("zhao", "赵霞 (财务)", ["finance"]),
    ("qian", "钱进 (财务)", ["finance"]),
    ("wu", "吴刚 (财务)", ["finance"]),
    ("ma", "马总 (总经理)", ["gm"]),
    ("he", "何总 (总经理)", ["gm"]),
    ("shen", "沈审 (审计)", ["auditor"]),
    ("admin", "管理员 (流程管理员)", ["flow_admin"]),
    ("hr", "任悦 (用户管理员)", ["user_admin"]),
]


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@users_cli.command("create")
@click.argument("name")
@click.option("--password", required=True, help="At least 8 characters.")
@click.option("--role", "roles", multiple=True, required=True, help="Repeat for several roles.")
@click.option("--display-name", default="", help="The name people see, e.g. 张敏.")
def users_create(name: str, password: str, roles: tuple[str, ...], display_name: str) -> None:
    """Create a user NAME with one or more roles."""
    try:
        create_user(db.session, name, password, roles, display_name)
    except WorkflowError as exc:
        _fail(exc.message)
    click.echo(f"created user {name} ({', '.join(roles)})")


@users_cli.command("token")
@click.argument("name")
@click.option("--revoke", is_flag=True, help="Revoke every token of NAME instead.")
@click.option("--expires-days", type=click.IntRange(1, 3650), default=None)
def users_token(name: str, revoke: bool, expires_days: int | None) -> None:
    """Print a new API token for NAME (the last line of output), or revoke NAME's tokens."""
    try:
        if revoke:
            click.echo(f"revoked {revoke_tokens(db.session, name)} token(s) of {name}")
            return
        token = issue_token(db.session, name, expires_days)
    except WorkflowError as exc:
        _fail(exc.message)
    click.echo(token)


@users_cli.command("roles")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, help="Repeat for several roles.")
def users_roles(name: str, roles: tuple[str, ...]) -> None:
    """Replace NAME's roles; takes effect on their very next request."""
    try:
        set_roles(db.session, name, roles)
    except WorkflowError as exc:
        _fail(exc.message)
    click.echo(f"{name}: {', '.join(roles)}")


@users_cli.command("disable")
@click.argument("name")
def users_disable(name: str) -> None:
    """Disable NAME: refused on their very next request."""
    try:
        set_active(db.session, name, False)
    except WorkflowError as exc:
        _fail(exc.message)
    click.echo(f"disabled {name}")


def _definition_files(files: tuple[str, ...]) -> list[Path]:
    if files:
        return [Path(f) for f in files]
    return sorted(Path(current_app.config["DEFINITIONS_DIR"]).glob("*.yaml"))


@flows_cli.command("check")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
def flows_check(files: tuple[str, ...]) -> None:
    """Validate definitions (default: definitions/*.yaml); prints FILE:LINE: message."""
    from workflow.definitions.build import load_flow_file

    failed = False
    for path in _definition_files(files):
        try:
            load_flow_file(path)
        except DefinitionError as exc:
            failed = True
            for problem in exc.problems:
                click.echo(str(problem))
        except OSError as exc:
            failed = True
            click.echo(f"{path}: cannot read: {exc.strerror}")
        else:
            click.echo(f"{path}: ok")
    sys.exit(1 if failed else 0)


@flows_cli.command("publish")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False))
def flows_publish(files: tuple[str, ...]) -> None:
    """Store each changed definition as a new version; nothing is stored if any is invalid."""
    try:
        for line in publish_files(db.session, _definition_files(files)):
            click.echo(line)
    except DefinitionError as exc:
        for problem in exc.problems:
            click.echo(str(problem))
        click.echo("nothing was published", err=True)
        sys.exit(1)


@flows_cli.command("migrate")
@click.argument("name")
@click.option("--map", "mappings", multiple=True, metavar="OLD=NEW", help="Rename a state.")
def flows_migrate(name: str, mappings: tuple[str, ...]) -> None:
    """Move NAME's unfinished documents to its current version (explicit, all or nothing)."""
    from workflow.services import migrate_documents

    pairs = dict(m.split("=", 1) for m in mappings if "=" in m)
    if len(pairs) != len(mappings):
        _fail("each --map must be OLD=NEW")
    try:
        moved = migrate_documents(db.session, name, pairs)
    except WorkflowError as exc:
        _fail(exc.message)
    click.echo(f"migrated {len(moved)} document(s) of {name}" + (f": {moved}" if moved else ""))


@audit_cli.command("verify")
@click.option(
    "--anchor",
    "anchor_in",
    type=click.Path(exists=True, dir_okay=False),
    help="A file written earlier by `audit anchor` (or --write-anchor): its history must "
    "still be there.",
)
@click.option(
    "--write-anchor",
    "anchor_out",
    type=click.Path(dir_okay=False),
    help="Write every chain's head to this file, to keep outside the database.",
)
@click.option(
    "--files",
    "check_files",
    is_flag=True,
    help="Also hash every attached file again (ATTACHMENT_DIR): none missing, none swapped.",
)
def audit_verify(anchor_in: str | None, anchor_out: str | None, check_files: bool) -> None:
    """Check the whole keyed chain and replay it against documents, revisions, reviews and
    attachments."""
    result = _verify_with_progress()
    if not result.ok:
        click.echo(f"FAILED after {result.events} events: {result.problem}")
        for problem in result.problems[1:]:
            click.echo(f"  also: {problem.message}")
        click.echo(f"head {result.root}")
        sys.exit(1)
    if check_files:
        from webui.attachments import store
        from workflow.attachments import check_files as hash_files

        checked, problems = hash_files(db.session, store())
        if problems:
            click.echo(f"FAILED: {problems[0]}")
            for problem in problems[1:]:
                click.echo(f"  also: {problem}")
            sys.exit(1)
        click.echo(f"OK {checked} attached files")
    if anchor_in:
        kept = json.loads(Path(anchor_in).read_text(encoding="utf-8"))
        problem = audit.check_anchor(db.session, kept)
        if problem:
            click.echo(f"FAILED against {anchor_in}: {problem}")
            sys.exit(1)
    click.echo(f"OK {result.events} events")
    click.echo(f"head {result.root}  ({result.chains} chains; keep this line outside the database)")
    if anchor_out:
        _write_json(Path(anchor_out), audit.anchor(db.session))
        click.echo(f"anchor written to {anchor_out}")


def _verify_with_progress() -> audit.VerifyResult:
    """verify, with a progress bar on stderr when it is a terminal (not in cron's mail)."""
    if not sys.stderr.isatty():
        return audit.verify(db.session)
    bars: list = []

    def total(count: int) -> None:
        bar = click.progressbar(length=count, label="verifying", file=sys.stderr)
        bar.__enter__()
        bars.append(bar)

    try:
        return audit.verify(db.session, total=total, progress=lambda n: bars[0].update(n))
    finally:
        if bars:
            bars[0].__exit__(None, None, None)


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=1), encoding="utf-8")


@audit_cli.command("anchor")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the anchor to this file (default: print it).",
)
@click.option(
    "--mail-to",
    "mail_to",
    multiple=True,
    help="Also mail the anchor to this address (repeatable); needs MAIL_SERVER.",
)
def audit_anchor(out: str | None, mail_to: tuple[str, ...]) -> None:
    """Write the chain head (last sequence number, sealed root, time) for a daily cron; keep it
    outside the database, where `audit verify --anchor FILE` can check it later."""
    kept = audit.anchor(db.session)
    if mail_to:
        _mail_anchor(kept, mail_to)
    if out:
        _write_json(Path(out), kept)
        click.echo(f"anchor: seq {kept['seq']}, {kept['events']} events, root {kept['root']} "
                   f"(key {kept['key_id']}) at {kept['at']} written to {out}")  # fmt: skip
    else:
        click.echo(json.dumps(kept, ensure_ascii=False, indent=1))


def _mail_anchor(kept: dict, recipients: tuple[str, ...]) -> None:
    """Send the anchor as a JSON attachment through MAIL_SERVER (host[:port])."""
    import smtplib
    from email.message import EmailMessage

    server = current_app.config.get("MAIL_SERVER")
    if not server:
        _fail("set MAIL_SERVER (host or host:port) to mail the anchor")
    host, _, port = server.partition(":")
    message = EmailMessage()
    message["Subject"] = f"复核 audit anchor: seq {kept['seq']} at {kept['at']}"
    message["From"] = current_app.config.get("MAIL_FROM") or "fuhe@localhost"
    message["To"] = ", ".join(recipients)
    message.set_content(
        f"seq {kept['seq']}\nevents {kept['events']}\nroot {kept['root']}\n"
        f"key {kept['key_id']}\nat {kept['at']}\n\nKeep the attached file outside the "
        "database; check it later with: flask --app wsgi audit verify --anchor FILE\n"
    )
    body = json.dumps(kept, ensure_ascii=False, indent=1).encode()
    message.add_attachment(body, maintype="application", subtype="json",
                           filename=f"anchor-{kept['seq']}.json")  # fmt: skip
    with smtplib.SMTP(host, int(port or 25), timeout=30) as smtp:
        smtp.send_message(message)
    click.echo(f"anchor mailed to {', '.join(recipients)}")


@audit_cli.command("export")
@click.argument("out", type=click.Path(dir_okay=False))
def audit_export(out: str) -> None:
    """Export the whole history (JSON lines: the anchor, then every event as sealed) for
    scripts/verify_export.py to re-verify offline with the key."""
    count = audit.export(db.session, Path(out))
    click.echo(f"exported {count} events to {out}")


@click.command("tick")
@with_appcontext
@click.option("--today", type=click.DateTime(["%Y-%m-%d"]), default=None, help="For testing.")
def tick(today) -> None:
    """Timed work: mark overdue documents, remind and escalate as the definitions say (each once
    per deadline, in the audit log), forget expired idempotency keys. Safe on many hosts at
    once; meant for cron or a systemd timer (docs/deploy.md)."""
    from workflow import deadlines
    from workflow.calendar import CHINA
    from workflow.db import refresh_statistics
    from workflow.idempotency import purge

    now = None
    if today is not None:
        now = dt.datetime.combine(today.date(), dt.time(), CHINA).astimezone(dt.UTC)
    done = deadlines.tick(db.session, now)
    recorded = done.overdue
    click.echo(f"{len(recorded)} newly overdue document(s)" + (f": {recorded}" if recorded else ""))
    click.echo(f"{len(done.escalated)} escalation(s)")
    click.echo(f"{purge(db.session)} expired idempotency key(s) forgotten")
    if refresh_statistics(db.session):
        click.echo("planner statistics refreshed (SQLite ANALYZE)")


@click.command("worker")
@with_appcontext
@click.option("--once", is_flag=True, help="Deliver what is due, then stop (for cron).")
@click.option("--interval", default=5.0, show_default=True, help="Seconds between rounds.")
def worker(once: bool, interval: float) -> None:
    """Deliver notifications by mail (SMTP_HOST…); several may run on several hosts.

    SIGTERM or Ctrl-C stops it gracefully: the message in flight is finished and marked, no
    other is taken (so a stop or a deploy never mails anything twice); a second signal stops it
    at once."""
    import signal
    import threading

    from workflow import notify

    config = current_app.config
    settings = notify.MailSettings(
        host=config.get("SMTP_HOST") or "",
        port=config["SMTP_PORT"],
        sender=config["SMTP_FROM"],
        username=config.get("SMTP_USER"),
        password=config.get("SMTP_PASSWORD"),
        starttls=config["SMTP_STARTTLS"],
        base_url=config["BASE_URL"],
    )
    send = notify.smtp_sender(settings) if settings.host else None
    if send is None:
        click.echo("mail is off (no SMTP_HOST): notifications are shown in the app only")
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if stop.is_set():  # asked twice: stop now (the transaction in flight rolls back)
            raise SystemExit(128 + signum)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    click.echo("worker started")
    while not stop.is_set():
        sent = notify.deliver(db.session, send, settings, stopping=stop.is_set)
        if not stop.is_set():
            sent += notify.deliver_digests(db.session, send, settings)
        if sent:
            click.echo(f"{sent} notification(s) mailed")
        if once:
            return
        stop.wait(interval)
    click.echo("stopped: the message in flight was finished and marked")


@click.command("setup")
@with_appcontext
@click.option("--demo/--no-demo", default=True, help="Create demo users when the database is new.")
def setup(demo: bool) -> None:
    """Create or upgrade the database, publish the shipped flows, and create demo data once."""
    new = "users" not in inspect(db.engine).get_table_names()
    upgrade()
    db.session.remove()
    audit.ensure_registry(db.session)
    db.session.commit()
    for line in publish_files(db.session, _definition_files(())):
        click.echo(line)
    from workflow import deadlines

    dated = deadlines.backfill(db.session)  # documents from before deadlines were stored
    if dated:
        click.echo(f"{dated} open document(s) given their deadline")
    if new and demo and db.session.scalar(select(User.id).limit(1)) is None:
        _create_demo_data()
    _print_demo_users()
    port = os.environ.get("PORT", "5000")
    click.echo(f"\nServing on http://127.0.0.1:{port}")


def _create_demo_data() -> None:
    """Demo users for every role, and each flow's `example` document (the shipment submitted)."""
    users = {
        username: create_user(db.session, username, username + DEMO_PASSWORD_SUFFIX, roles, display)
        for username, display, roles in DEMO_USERS
    }
    for version in list_flows(db.session):
        spec = compiled(version).spec
        editors = set(spec.state(spec.initial).editable_by)
        author = next(u for u in users.values() if editors & u.roles)
        process = create_document(db.session, author, spec.name, spec.example)
        if spec.name == "shipment":
            act(db.session, process.document.id, author, "submit", 1, "请复核")
    click.echo("\nDemo data created (the database was new).")


def _print_demo_users() -> None:
    names = [u for u, _, _ in DEMO_USERS]
    present = set(db.session.scalars(select(User.username).where(User.username.in_(names))))
    if not present:
        return
    click.echo("\nDemo users (password = name + '-demo-2026', unless changed since):")
    for username, display, roles in DEMO_USERS:
        if username in present:
            password = username + DEMO_PASSWORD_SUFFIX
            click.echo(f"  {username:<8} {password:<18} {', '.join(roles):<15} {display}")


def register(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(flows_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(setup)
    app.cli.add_command(tick)
    app.cli.add_command(worker)
