"""The benchmark's bulk generator writes what the engine would: valid audit chains (`audit
verify` passes) and the same report rows `report_index` derives from the audit log."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from benchmarks import data
from tests.conftest import PG_SCHEMA
from workflow import audit, report_index
from workflow.db import Base, as_utc, make_engine
from workflow.models import ReportDocument, ReportStep


def plain(value: Any) -> Any:
    return as_utc(value) if hasattr(value, "tzinfo") else value


def _plain_rows(session: Session, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(plain(v) for v in row) for row in session.execute(text(sql))]


def _rows(session: Session) -> dict[str, list[tuple[Any, ...]]]:
    """Every report row without its surrogate id, times in UTC, in a stable order."""
    out = {}
    for model in (ReportDocument, ReportStep):
        names = [c.name for c in model.__table__.columns if c.name != "id"]
        rows = session.execute(select(*(model.__table__.c[n] for n in names))).all()
        out[model.__tablename__] = sorted((tuple(plain(v) for v in row) for row in rows), key=repr)
    return out


def test_generated_data_verifies_and_matches_the_report_index(db_url: str) -> None:
    engine = make_engine(db_url)
    factory = sessionmaker(engine, expire_on_commit=False)
    generated = data.generate(factory(), db_url, None, data.Sizes(400, 200, 60, 30))
    assert generated.documents == 400 and generated.open_documents > 0
    with engine.connect() as conn:  # every index and unique constraint dropped for the load is back
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    with factory() as session:
        result = audit.verify(session)
        assert result.ok, result.report
        assert result.chains == 401  # the system chain and one per document
        made = _rows(session)
        session.rollback()
        assert len(made["report_documents"]) == 400
        assert {r[3] for r in made["report_documents"]} == {"open", "completed", "withdrawn"}
        assert made["report_steps"]
        # The reports count approvals from the reviews: one per approve or reject event, by
        # its actor, in its state, at its time (what the engine writes with each decision).
        decisions = _plain_rows(
            session,
            "SELECT document_id, from_state, actor, action, at FROM audit_events"
            " WHERE action IN ('approve', 'reject') AND outcome = 'ok'"
            " ORDER BY document_id, chain_seq",
        )
        reviews = _plain_rows(
            session,
            "SELECT r.document_id, r.state, u.username, r.decision, r.at FROM reviews r"
            " JOIN users u ON u.id = r.user_id ORDER BY r.document_id, r.event_seq",
        )
        assert decisions and reviews == decisions
        contracts = {r[12] for r in made["report_documents"]} - {None}
        assert len(contracts) > 20  # documents belong to many contracts (合同履行一览表)
        report_index.rebuild(session)  # what the engine derives from the audit log
        assert _rows(session) == made
    engine.dispose()


@pytest.mark.postgres_only
def test_the_generator_analyzes_its_own_tables_only(db_url: str) -> None:
    """Planner statistics for the generated tables, not for every schema of the database: a
    bare ANALYZE also walked another 1M data set beside them (30 s)."""
    engine = make_engine(db_url)
    side = f"side_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {side}"))
        conn.execute(text(f"CREATE TABLE {side}.other AS SELECT 1 AS n"))
    try:
        data.generate(sessionmaker(engine)(), db_url, None, data.Sizes(400, 200, 60, 30))
        with engine.connect() as conn:
            analyzed = dict(
                conn.execute(
                    text(
                        "SELECT schemaname || '.' || relname, last_analyze IS NOT NULL"
                        " FROM pg_stat_user_tables WHERE schemaname IN (:ours, :side)"
                    ),
                    {"ours": PG_SCHEMA, "side": side},
                ).all()
            )
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {side} CASCADE"))
        engine.dispose()
    assert analyzed[f"{PG_SCHEMA}.audit_events"] and analyzed[f"{PG_SCHEMA}.documents"]
    assert analyzed[f"{side}.other"] is False
