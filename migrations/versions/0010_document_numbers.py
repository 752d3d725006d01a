"""document numbers (FH-2026-000123): a number per document, unique within its flow, and a
counter per flow and year that the create transaction bumps

Revision ID: 0010
Revises: 0007
Create Date: 2026-11-30 17:20:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "document_counters",
        sa.Column("flow_name", sa.String(length=40), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("flow_name", "year", name=op.f("pk_document_counters")),
    )
    # Documents created before numbering keep no number (shown by id); new ones all get one.
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("number", sa.String(length=64), nullable=True))
        batch.create_unique_constraint(
            batch.f("uq_documents_flow_name_number"), ["flow_name", "number"]
        )


def downgrade():
    with op.batch_alter_table("documents") as batch:
        batch.drop_constraint(batch.f("uq_documents_flow_name_number"), type_="unique")
        batch.drop_column("number")
    op.drop_table("document_counters")
