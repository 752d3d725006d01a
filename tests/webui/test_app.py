"""The app factory, its safe defaults, the health check and the command line."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.version import Version

from tests.conftest import DEFINITIONS, PASSWORD
from webui.auth.views import safe_next
from webui.extensions import db, login_manager


def test_healthz(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_start_page_lists_the_published_flows(client) -> None:
    page = client.get("/").get_data(as_text=True)
    for path in DEFINITIONS:
        assert path.stem in page


def test_flask_defaults_are_tightened(app) -> None:
    assert app.config["MAX_CONTENT_LENGTH"] == 1024 * 1024
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert login_manager.session_protection == "strong"
    assert app.jinja_env.autoescape(None) or app.jinja_env.autoescape("x.html")
    assert not app.debug


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "http:/evil",
        "",
    ],
)
def test_next_redirect_stays_on_site(app, target) -> None:
    with app.test_request_context():
        assert safe_next(target) == safe_next(None)
        assert safe_next(target).startswith("/") and not safe_next(target).startswith("//")


def test_same_site_next_is_kept(app) -> None:
    with app.test_request_context():
        assert safe_next("/inbox?x=1") == "/inbox?x=1"


@pytest.mark.parametrize(
    ("package", "minimum"),
    [("flask", "3.1.3"), ("werkzeug", "3.1.4"), ("jinja2", "3.1.6"), ("marshmallow", "3.26.2")],
)
def test_minimum_versions_with_known_fixes(package: str, minimum: str) -> None:
    assert Version(version(package)) >= Version(minimum)


def test_production_refuses_to_start_without_secret_key(monkeypatch) -> None:
    import config
    from webui import create_app

    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app(config.ProductionConfig)


def test_security_headers_on_every_response(client) -> None:
    response = client.get("/healthz")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# --- command line ----------------------------------------------------------------------------
def test_users_create_and_token(app) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "users",
            "create",
            "newbie",
            "--password",
            PASSWORD,
            "--role",
            "warehouse",
            "--role",
            "sales_admin",
            "--display-name",
            "新人",
        ]
    )
    assert result.exit_code == 0, result.output
    again = runner.invoke(
        args=["users", "create", "newbie", "--password", PASSWORD, "--role", "warehouse"]
    )
    assert again.exit_code != 0
    assert "already exists" in again.output
    unknown = runner.invoke(
        args=["users", "create", "x1", "--password", PASSWORD, "--role", "boss"]
    )
    assert unknown.exit_code != 0
    assert "unknown role `boss`" in unknown.output
    token = runner.invoke(args=["users", "token", "newbie"])
    assert token.exit_code == 0
    assert token.output.strip().splitlines()[-1].startswith("fh_")


def test_flows_check_names_file_and_line(app, tmp_path: Path) -> None:
    broken = tmp_path / "shipment.yaml"
    text = (DEFINITIONS[2]).read_text(encoding="utf-8")
    assert "on_approve: ready_to_ship" in text
    broken.write_text(text.replace("on_approve: ready_to_ship", "on_approve: redy_to_ship"))
    line = next(n for n, t in enumerate(broken.read_text().splitlines(), 1) if "redy_to_ship" in t)
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["flows", "check"])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(args=["flows", "check", str(broken)])
    assert bad.exit_code == 1
    assert f"{broken}:{line}:" in bad.output
    assert "did you mean `ready_to_ship`" in bad.output


def test_flows_publish_stores_nothing_if_any_is_invalid(app, tmp_path: Path) -> None:
    from workflow.services import list_flows

    good = tmp_path / "expense.yaml"
    good.write_text(DEFINITIONS[0].read_text(encoding="utf-8") + "\n# changed\n")
    bad = tmp_path / "shipment.yaml"
    bad.write_text("name: shipment\n")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["flows", "publish", str(good), str(bad)])
    assert result.exit_code == 1
    with app.app_context():
        assert {f.flow_name: f.version for f in list_flows(db.session)}["expense"] == 1
    result = runner.invoke(args=["flows", "publish", str(good)])
    assert result.exit_code == 0, result.output
    assert "expense: version 2 (published)" in result.output
    result = runner.invoke(args=["flows", "publish", str(good)])
    assert "expense: version 2 (unchanged)" in result.output


def test_audit_verify_writes_and_checks_an_anchor(app, tmp_path: Path) -> None:
    runner = app.test_cli_runner()
    kept = tmp_path / "anchor.json"
    first = runner.invoke(args=["audit", "verify", "--write-anchor", str(kept)])
    assert first.exit_code == 0, first.output
    assert first.output.startswith("OK ") and "\nhead " in first.output
    runner.invoke(args=["users", "create", "later", "--password", PASSWORD, "--role", "sales"])
    again = runner.invoke(args=["audit", "verify", "--anchor", str(kept)])
    assert again.exit_code == 0, again.output  # the log grew; the kept history is intact
    with app.app_context():
        db.session.execute(db.text("UPDATE audit_events SET comment = 'x' WHERE chain_seq = 1"))
        db.session.commit()
    broken = runner.invoke(args=["audit", "verify", "--anchor", str(kept)])
    assert broken.exit_code == 1
    assert "FAILED" in broken.output and "event" in broken.output


def test_users_roles_replaces_roles_and_refuses_unknown_ones(app) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "roles", "xu", "--role", "sales", "--role", "finance"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        from workflow.models import User

        user = db.session.scalar(db.select(User).where(User.username == "xu"))
        assert user.roles == {"sales", "finance"}
    bad = runner.invoke(args=["users", "roles", "xu", "--role", "boss"])
    assert bad.exit_code == 1 and "unknown role `boss`" in bad.output


def test_flows_publish_reports_every_invalid_file(app, tmp_path: Path) -> None:
    first, second = tmp_path / "expense.yaml", tmp_path / "shipment.yaml"
    first.write_text("name: expense\n")
    second.write_text("name: shipment\n")
    result = app.test_cli_runner().invoke(args=["flows", "publish", str(first), str(second)])
    assert result.exit_code == 1
    assert f"{first}:" in result.output and f"{second}:" in result.output
