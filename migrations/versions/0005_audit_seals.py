"""audit seals: key ids, revision data hashes, reviews tied to their events, the auditors'
indexes, and (PostgreSQL) triggers that keep the audit history append-only

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 16:30:00

"""

import sqlalchemy as sa
from alembic import op

from workflow.audit import POSTGRES_GUARD_SQL, POSTGRES_UNGUARD_SQL

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


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
