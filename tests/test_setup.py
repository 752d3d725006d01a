"""`flask setup` on an empty database (what `make run` does), migrations, and timed work."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection, make_url

from tests.conftest import PG_URL, backends
from webui import create_app
from webui.extensions import db
from workflow import audit, services
from workflow.db import Base, make_engine, normalize_url
from workflow.models import AuditChain, AuditEvent, Document


@pytest.fixture(params=backends())
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all (a fresh schema on PostgreSQL)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    schema = f"fuhe_fresh_{uuid.uuid4().hex[:8]}"
    admin = make_engine(PG_URL or "")
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(normalize_url(PG_URL or "")).update_query_dict(
        {"options": f"-csearch_path={schema}"}
    )
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def test_setup_migrates_publishes_and_creates_demo_data_once(empty_db: str) -> None:
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": empty_db})
    runner = app.test_cli_runner()
    first = runner.invoke(args=["setup"])
    assert first.exit_code == 0, first.output
    assert "shipment: version 1 (published)" in first.output
    assert "zhang-demo-2026" in first.output
    assert "Demo data created" in first.output
    with app.app_context():
        # the migrations produce exactly the models' schema
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            if conn.dialect.name == "postgresql":  # 0090's guard: a chain keeps its lane
                guard = conn.scalar(
                    text("SELECT prosrc FROM pg_proc WHERE proname = 'fuhe_chain_grows_only'")
                )
                assert "NEW.lane IS DISTINCT FROM OLD.lane" in guard
        assert diff == []
        # setup registered every lane's root, so no creation waits on lane 0
        roots = db.session.scalars(
            select(AuditChain.key).where(AuditChain.key.startswith(audit.LANE_ROOT))
        ).all()
        assert len(roots) == audit.REGISTRY_LANES
        documents = db.session.scalars(select(Document)).all()
        assert {d.flow_name for d in documents} == {
            "shipment",
            "invoicing",
            "expense",
            "tender_deposit",
        }
        assert audit.verify(db.session).ok
        db.session.remove()
    second = runner.invoke(args=["setup"])
    assert second.exit_code == 0, second.output
    assert "unchanged" in second.output and "Demo data created" not in second.output
    assert "zhang-demo-2026" in second.output  # demo users are printed on every start
    assert app.test_client().get("/healthz").status_code == 200
    verify = runner.invoke(args=["audit", "verify"])
    assert verify.exit_code == 0 and verify.output.startswith("OK ")
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_tick_records_each_overdue_deposit_once(session, flows, people) -> None:
    example = {
        "tender_name": "安庆市立医院医疗设备采购",
        "tender_no": "AQZB-2026-118",
        "agency": "安庆某招标代理有限公司",
        "amount": "50000.00",
        "bid_date": "2026-10-10",
        "cycle_end": "2026-10-30",
        "expected_refund_date": "2026-11-20",
        "payee_account": "安庆某招标代理有限公司 1308 0101 0902 4567 890",
    }
    doc = services.create_document(session, people["zhang"], "tender_deposit", example).document
    services.act(session, doc.id, people["zhang"], "submit", 1)
    checks = {"amount": True, "account": True, "dates": True}  # every point confirmed
    services.act(session, doc.id, people["liu"], "approve", 1, checks=checks)
    services.act(session, doc.id, people["zhao"], "approve", 1, checks=checks)
    today = dt.date(2026, 11, 24)
    from workflow.queries import overdue

    assert [p.document.id for p in overdue(session, today)] == [doc.id]
    assert overdue(session, dt.date(2026, 11, 20)) == []
    assert services.record_overdue(session, today) == [doc.id]
    assert services.record_overdue(session, today) == []  # a second host finds it done
    events = session.scalars(select(AuditEvent).where(AuditEvent.action == "overdue")).all()
    assert len(events) == 1
    assert audit.verify(session).ok


def test_migration_0080_keeps_each_persons_notifications_read_state_and_mail(
    empty_db: str,
) -> None:
    """Notifications written one per person before 0080 stay each person's own, with what they
    had read (their watermark) and their mail state (their delivery); and back down."""
    from flask_migrate import downgrade, upgrade

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": empty_db})
    now = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)
    with app.app_context():
        upgrade(revision="0040")
        with db.engine.begin() as conn:
            for uid, name in ((1, "li"), (2, "zhou")):
                conn.execute(
                    text(
                        "INSERT INTO users (id, username, display_name, password_hash, active, "
                        "must_change_password, notify_email, notify_digest, created_at) VALUES "
                        "(:id, :name, '', '-', :yes, :no, :yes, :no, :now)"
                    ),
                    {"id": uid, "name": name, "yes": True, "no": False, "now": now},
                )
            old = [  # id, user, read, state
                (1, 1, True, "sent"),
                (2, 2, False, "pending"),
                (3, 1, True, "off"),
                (4, 1, False, "pending"),
            ]
            for nid, uid, read, state in old:
                conn.execute(
                    text(
                        "INSERT INTO notifications (id, user_id, kind, created_at, read_at, "
                        "email_state, attempts, next_attempt_at) VALUES "
                        "(:id, :uid, 'rejected', :now, :read, :state, 1, :now)"
                    ),
                    {"id": nid, "uid": uid, "now": now, "read": now if read else None,
                     "state": state},
                )  # fmt: skip
        upgrade()
        with db.engine.connect() as conn:
            read = dict(conn.execute(text("SELECT id, notifications_read_id FROM users")).all())
            mail = conn.execute(
                text(
                    "SELECT notification_id, user_id, email_state, attempts "
                    "FROM notification_deliveries ORDER BY notification_id"
                )
            ).all()
            people = conn.execute(text("SELECT id, user_id, expanded FROM notifications")).all()
        assert read == {1: 3, 2: 0}
        assert [tuple(m) for m in mail] == [
            (1, 1, "sent", 1),
            (2, 2, "pending", 1),
            (3, 1, "off", 1),
            (4, 1, "pending", 1),
        ]
        assert sorted(tuple(p) for p in people) == [(1, 1, True), (2, 2, True), (3, 1, True),
                                                    (4, 1, True)]  # fmt: skip
        downgrade(revision="0040")
        with db.engine.connect() as conn:
            back = conn.execute(
                text(
                    "SELECT id, user_id, email_state, read_at IS NOT NULL "
                    "FROM notifications ORDER BY id"
                )
            ).all()
        assert [tuple(b) for b in back] == [
            (1, 1, "sent", True),
            (2, 2, "pending", False),
            (3, 1, "off", True),
            (4, 1, "pending", False),
        ]
        upgrade()
        db.session.remove()
        db.engine.dispose()


def test_migration_0090_refuses_to_go_back_once_chains_are_in_lanes(
    empty_db: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """Going below 0090 would need every laned chain re-sealed (only the audit key could):
    refused with what to do, and nothing changed."""
    from flask_migrate import downgrade

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": empty_db})
    assert app.test_cli_runner().invoke(args=["setup"]).exit_code == 0  # demo documents
    with app.app_context():
        with pytest.raises(SystemExit):  # flask-migrate logs the error and exits 1
            downgrade(revision="0080")
        assert "restore a backup taken before 0090" in capfd.readouterr().err
        with db.engine.connect() as conn:
            # Never below 0090. PostgreSQL rolls the whole downgrade back (its DDL is
            # transactional: still at the head); SQLite keeps the steps above 0090 it took.
            version = conn.scalar(text("SELECT version_num FROM alembic_version"))
            head = ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config())
            expected = head.get_current_head() if empty_db.startswith("postgresql") else "0090"
            assert version == expected
            assert conn.scalar(text("SELECT count(*) FROM audit_chains WHERE lane > 0"))
        assert audit.verify(db.session).ok
        db.session.remove()
        db.engine.dispose()


def test_gunicorn_workers_freeze_what_start_up_built() -> None:
    """The gunicorn hook moves the start-up objects out of the collector's view (the objects
    themselves stay alive), so a request's collections no longer walk the whole app."""
    import gc
    import runpy

    settings = runpy.run_path(str(Path(__file__).parent.parent / "gunicorn.conf.py"))
    assert settings["bind"].startswith("127.0.0.1:")
    assert gc.get_freeze_count() == 0
    try:
        settings["post_worker_init"](object())
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0


AUDIT_NAMES = {
    ("audit_chains", "key"),
    *(
        ("audit_events", c)
        for c in ("chain_key", "flow", "actor", "action", "outcome", "from_state", "to_state")
    ),
}


def _bytewise_columns(conn: Connection) -> set[tuple[str, str]]:
    return {
        (row.table_name, row.column_name)
        for row in conn.execute(
            text(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND collation_name = 'C'"
            )
        )
    }


@pytest.mark.postgres_only
def test_the_audit_logs_names_compare_bytewise_on_postgresql(empty_db: str) -> None:
    """0110 gives the audit log's names the "C" collation, as the models declare (a fresh
    database created from the models gets the same), and gives it back on the way down; audit
    search and verification read the same across the change."""
    from flask_migrate import downgrade, upgrade

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": empty_db})
    assert app.test_cli_runner().invoke(args=["setup"]).exit_code == 0  # demo documents
    with app.app_context():
        with db.engine.connect() as conn:
            assert _bytewise_columns(conn) == AUDIT_NAMES
        actor = db.session.scalar(select(AuditEvent.actor).where(AuditEvent.actor.is_not(None)))
        found = db.session.scalar(select(func.count()).where(AuditEvent.actor == actor))
        db.session.commit()
        downgrade(revision="0100")
        with db.engine.connect() as conn:
            assert _bytewise_columns(conn) == set()
        upgrade()
        with db.engine.connect() as conn:
            assert _bytewise_columns(conn) == AUDIT_NAMES
            # A change of type drops the columns' planner statistics: the migration gathers them
            analyzed = conn.execute(
                text(
                    "SELECT tablename, attname FROM pg_stats"
                    " WHERE schemaname = current_schema() AND tablename LIKE 'audit_%'"
                )
            ).all()
            assert {tuple(row) for row in analyzed} >= AUDIT_NAMES
        assert db.session.scalar(select(func.count()).where(AuditEvent.actor == actor)) == found
        assert audit.verify(db.session).ok
        db.session.remove()
        db.engine.dispose()
    created = make_engine(empty_db)  # the models alone (what the bench generator does)
    Base.metadata.drop_all(created)
    Base.metadata.create_all(created)
    with created.connect() as conn:
        assert _bytewise_columns(conn) == AUDIT_NAMES
    created.dispose()
