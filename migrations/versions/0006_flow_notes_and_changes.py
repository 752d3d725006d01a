"""flow editor: a change note on each flow version, and changes pending a second flow admin

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 16:15:00

"""

import sqlalchemy as sa
from alembic import op

from workflow.db import JSONData

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("flow_versions") as batch:
        batch.add_column(sa.Column("note", sa.Text(), server_default="", nullable=False))
    op.create_table(
        "flow_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flow_name", sa.String(length=40), nullable=False),
        sa.Column("base_version", sa.Integer(), nullable=False),
        sa.Column("yaml_text", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("reasons", JSONData, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("proposed_by_id", sa.Integer(), nullable=False),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["proposed_by_id"], ["users.id"], name=op.f("fk_flow_changes_proposed_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by_id"], ["users.id"], name=op.f("fk_flow_changes_decided_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_changes")),
    )
    op.create_index(op.f("ix_flow_changes_flow_name"), "flow_changes", ["flow_name"])


def downgrade():
    op.drop_index(op.f("ix_flow_changes_flow_name"), table_name="flow_changes")
    op.drop_table("flow_changes")
    with op.batch_alter_table("flow_versions") as batch:
        batch.drop_column("note")
