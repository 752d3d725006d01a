"""`flask audit anchor|export|verify`, the offline script, and the audit key's configuration."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import ROOT
from tests.workflow.test_review import SHIPMENT
from webui.extensions import db
from workflow import audit, services
from workflow.models import User

SCRIPT = ROOT / "scripts" / "verify_export.py"
TEST_KEY = "testing-audit-key-not-for-production"


@pytest.fixture
def history(app) -> int:
    with app.app_context():
        # The frozen (pre-issue-11) shipment: submitted, straight in its double check.
        services.publish_files(db.session, [ROOT / "tests/data/flows/rules/shipment.yaml"])
        users = {u.username: u for u in db.session.scalars(select(User))}
        doc = services.create_document(db.session, users["zhang"], "shipment", SHIPMENT)
        doc_id = doc.document.id
        services.act(db.session, doc_id, users["zhang"], "submit", 1)
        services.act(db.session, doc_id, users["wang"], "approve", 1, "=1+1 核对无误")
        db.session.remove()
    return doc_id


def run_script(*args: str, key: str = TEST_KEY, old: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "AUDIT_KEY": key, "AUDIT_KEYS": old}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, check=False
    )


def test_anchor_writes_the_head_and_verify_checks_it(app, history, tmp_path: Path) -> None:
    runner = app.test_cli_runner()
    kept = tmp_path / "anchor.json"
    result = runner.invoke(args=["audit", "anchor", "--out", str(kept)])
    assert result.exit_code == 0, result.output
    anchor = json.loads(kept.read_text(encoding="utf-8"))
    with app.app_context():
        last = db.session.scalar(select(audit.AuditEvent.id).order_by(audit.AuditEvent.id.desc()))
        db.session.remove()
    assert anchor["seq"] == last
    assert anchor["key_id"] == audit.key_id_of(TEST_KEY)
    assert len(anchor["root"]) == 64 and anchor["at"]
    assert f"seq {last}" in result.output
    again = runner.invoke(args=["audit", "verify", "--anchor", str(kept)])
    assert again.exit_code == 0, again.output


def test_anchor_can_be_mailed(app, history, monkeypatch) -> None:
    import smtplib

    sent = []

    class FakeSMTP:
        def __init__(self, host: str, port: int, timeout: int) -> None:
            sent.append((host, port))

        def __enter__(self):
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def send_message(self, message) -> None:
            sent.append(message)

    monkeypatch.setattr(smtplib, "SMTP", FakeSMTP)
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["audit", "anchor", "--mail-to", "audit@example.com"])
    assert refused.exit_code == 1 and "MAIL_SERVER" in refused.output
    app.config["MAIL_SERVER"] = "127.0.0.1:2525"
    result = runner.invoke(args=["audit", "anchor", "--mail-to", "audit@example.com"])
    assert result.exit_code == 0, result.output
    (host, port), message = sent
    assert (host, port) == ("127.0.0.1", 2525) and message["To"] == "audit@example.com"
    attachment = next(message.iter_attachments())
    assert json.loads(attachment.get_content())["root"] in message.get_body().get_content()


def test_export_reverifies_offline(app, history, tmp_path: Path) -> None:
    runner = app.test_cli_runner()
    out, kept = tmp_path / "history.jsonl", tmp_path / "kept.json"
    runner.invoke(args=["audit", "anchor", "--out", str(kept)])
    result = runner.invoke(args=["audit", "export", str(out)])
    assert result.exit_code == 0, result.output
    lines = out.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["anchor"]["root"]
    checked = run_script(str(out), "--anchor", str(kept))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == f"OK {len(lines) - 1} events"

    wrong_key = run_script(str(out), key="someone-elses-key-0123456789")
    assert wrong_key.returncode == 1 and "a key you did not give" in wrong_key.stdout

    tampered = out.read_text(encoding="utf-8").replace("=1+1 核对无误", "随便看看")
    bad = tmp_path / "tampered.jsonl"
    bad.write_text(tampered, encoding="utf-8")
    refused = run_script(str(bad))
    assert refused.returncode == 1
    assert "was altered or forged" in refused.stdout and "line " in refused.stdout

    dropped = tmp_path / "dropped.jsonl"
    dropped.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    short = run_script(str(dropped))
    assert short.returncode == 1 and "does not end where the export's anchor says" in short.stdout


def test_verify_lists_every_problem(app, history) -> None:
    with app.app_context():
        db.session.execute(db.text("UPDATE documents SET state = 'draft'"))
        db.session.execute(db.text("UPDATE reviews SET comment = 'x'"))
        db.session.commit()
        db.session.remove()
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert result.output.startswith("FAILED after ")
    assert f"document {history}: state is `draft`" in result.output
    assert "also: " in result.output and "has comment `x`" in result.output


def test_production_refuses_to_start_without_audit_key(monkeypatch) -> None:
    import config
    from webui import create_app

    monkeypatch.setenv("SECRET_KEY", "x" * 32)
    monkeypatch.delenv("AUDIT_KEY", raising=False)
    with pytest.raises(RuntimeError, match="production needs AUDIT_KEY"):
        create_app(config.ProductionConfig)


def test_development_key_is_generated_once_under_instance(monkeypatch, tmp_path: Path) -> None:
    import config

    monkeypatch.delenv("AUDIT_KEY", raising=False)
    monkeypatch.setattr(config, "INSTANCE_DIR", tmp_path)
    first = config._audit_key()
    path = tmp_path / "audit_key"
    assert path.read_text() == first and len(first) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert config._audit_key() == first  # kept: events sealed yesterday still verify


def _key_after_barrier(instance: str, name: str, barrier: Any, out: Any) -> None:
    import config

    config.INSTANCE_DIR = Path(instance)
    barrier.wait()
    try:
        out.put(config._audit_key() if name == "audit_key" else config._secret_key())
    except Exception as error:  # what the worker's traceback was: say it
        out.put(f"failed: {error!r}")


@pytest.mark.parametrize("name", ["audit_key", "secret_key"])
def test_processes_starting_together_generate_one_key(monkeypatch, tmp_path: Path, name) -> None:
    """Several processes (gunicorn workers, two mail workers) starting at once on a new
    instance directory all end up with the same key, each whole: a second key would seal
    events that the first cannot verify, and a half-written one failed the start."""
    import multiprocessing

    monkeypatch.delenv("AUDIT_KEY", raising=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    context = multiprocessing.get_context("fork")
    for attempt in range(10):
        instance = tmp_path / f"instance-{attempt}"
        barrier, out = context.Barrier(6), context.Queue()
        processes = [
            context.Process(target=_key_after_barrier, args=(str(instance), name, barrier, out))
            for _ in range(6)
        ]
        for process in processes:
            process.start()
        keys = [out.get(timeout=30) for _ in processes]
        for process in processes:
            process.join(timeout=30)
        assert len(set(keys)) == 1 and len(keys[0]) == 64, keys
        assert (instance / name).read_text() == keys[0]
        assert stat.S_IMODE((instance / name).stat().st_mode) == 0o600
        assert sorted(p.name for p in instance.iterdir()) == [name]  # no temporary file left


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 characters"):
        audit.Keyring.from_settings("short")
