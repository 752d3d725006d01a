"""overdue notices: one per document and due date, so `tick` never records twice

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 08:10:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "overdue_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("due_date", sa.String(length=10), nullable=False),
        sa.Column("noticed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_overdue_notices_document_id_documents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_overdue_notices")),
        sa.UniqueConstraint(
            "document_id", "due_date", name=op.f("uq_overdue_notices_document_id_due_date")
        ),
    )


def downgrade():
    op.drop_table("overdue_notices")
