"""audit seals: key ids, revision data hashes, reviews tied to their events, the auditors'
indexes, and (PostgreSQL) triggers that keep the audit history append-only

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 16:30:00

"""

import sqlalchemy as sa
from alembic import op


revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The triggers as they were when this migration was written (not imported from workflow.audit,
# which may change after it; 0090 adds the registry's lane to what a chain row may not change).
APPEND_ONLY_TABLES = ("audit_events", "reviews", "document_revisions")
POSTGRES_GUARD_SQL = (
    """CREATE OR REPLACE FUNCTION fuhe_refuse_rewrite() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'fuhe: % on % is refused: the audit history is append-only', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$""",
    """CREATE OR REPLACE FUNCTION fuhe_chain_grows_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.key IS DISTINCT FROM OLD.key OR NEW.position IS DISTINCT FROM OLD.position
     OR NEW.prev_hash IS DISTINCT FROM OLD.prev_hash OR NEW.hash IS DISTINCT FROM OLD.hash
     OR NEW.key_id IS DISTINCT FROM OLD.key_id OR NEW.opened_at IS DISTINCT FROM OLD.opened_at
     OR NEW.length IS DISTINCT FROM OLD.length + 1 THEN
    RAISE EXCEPTION 'fuhe: audit chain % may only grow by one event at a time', OLD.key
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$""",
    *(
        sql
        for table in APPEND_ONLY_TABLES
        for sql in (
            f"CREATE TRIGGER fuhe_{table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION fuhe_refuse_rewrite()",
            f"CREATE TRIGGER fuhe_{table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION fuhe_refuse_rewrite()",
        )
    ),
    "CREATE TRIGGER fuhe_audit_chains_grow BEFORE UPDATE ON audit_chains "
    "FOR EACH ROW EXECUTE FUNCTION fuhe_chain_grows_only()",
    "CREATE TRIGGER fuhe_audit_chains_no_delete BEFORE DELETE ON audit_chains "
    "FOR EACH ROW EXECUTE FUNCTION fuhe_refuse_rewrite()",
    "CREATE TRIGGER fuhe_audit_chains_no_truncate BEFORE TRUNCATE ON audit_chains "
    "FOR EACH STATEMENT EXECUTE FUNCTION fuhe_refuse_rewrite()",
    # documents change state, but are never deleted (cancelling is an action in the history)
    "CREATE TRIGGER fuhe_documents_no_delete BEFORE DELETE ON documents "
    "FOR EACH ROW EXECUTE FUNCTION fuhe_refuse_rewrite()",
    "CREATE TRIGGER fuhe_documents_no_truncate BEFORE TRUNCATE ON documents "
    "FOR EACH STATEMENT EXECUTE FUNCTION fuhe_refuse_rewrite()",
)
POSTGRES_UNGUARD_SQL = (
    *(
        f"DROP TRIGGER IF EXISTS fuhe_{table}_{kind} ON {table}"
        for table in APPEND_ONLY_TABLES
        for kind in ("append_only", "no_truncate")
    ),
    "DROP TRIGGER IF EXISTS fuhe_audit_chains_grow ON audit_chains",
    "DROP TRIGGER IF EXISTS fuhe_audit_chains_no_delete ON audit_chains",
    "DROP TRIGGER IF EXISTS fuhe_audit_chains_no_truncate ON audit_chains",
    "DROP TRIGGER IF EXISTS fuhe_documents_no_delete ON documents",
    "DROP TRIGGER IF EXISTS fuhe_documents_no_truncate ON documents",
    "DROP FUNCTION IF EXISTS fuhe_chain_grows_only()",
    "DROP FUNCTION IF EXISTS fuhe_refuse_rewrite()",
)


def upgrade():
    with op.batch_alter_table("audit_events") as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("data_hash", sa.String(length=64), nullable=True))
        batch_op.drop_index("ix_audit_events_document_id")
        batch_op.create_index("ix_audit_events_document_id_id", ["document_id", "id"])
        batch_op.create_index("ix_audit_events_outcome_id", ["outcome", "id"])
        batch_op.create_index("ix_audit_events_to_state_id", ["to_state", "id"])
        batch_op.create_index("ix_audit_events_from_state_id", ["from_state", "id"])
    with op.batch_alter_table("audit_chains") as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=16), nullable=True))
    with op.batch_alter_table("reviews") as batch_op:
        batch_op.add_column(sa.Column("event_seq", sa.Integer(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRES_GUARD_SQL:
            op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRES_UNGUARD_SQL:
            op.execute(statement)
    with op.batch_alter_table("reviews") as batch_op:
        batch_op.drop_column("event_seq")
    with op.batch_alter_table("audit_chains") as batch_op:
        batch_op.drop_column("key_id")
    with op.batch_alter_table("audit_events") as batch_op:
        batch_op.drop_index("ix_audit_events_from_state_id")
        batch_op.drop_index("ix_audit_events_to_state_id")
        batch_op.drop_index("ix_audit_events_outcome_id")
        batch_op.drop_index("ix_audit_events_document_id_id")
        batch_op.create_index("ix_audit_events_document_id", ["document_id"])
        batch_op.drop_column("data_hash")
        batch_op.drop_column("key_id")
