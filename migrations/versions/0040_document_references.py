"""document references: an invoice line billing a shipment, and what it takes from it

Revision ID: 0040
Revises: 0070
Create Date: 2026-11-30 19:40:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0040"
down_revision = "0070"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "document_references",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=120), nullable=False),
        sa.Column("amount", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_document_references_document_id_documents"),
        ),
        sa.ForeignKeyConstraint(
            ["target_id"], ["documents.id"], name=op.f("fk_document_references_target_id_documents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_references")),
    )
    op.create_index(
        op.f("ix_document_references_document_id"),
        "document_references",
        ["document_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_document_references_target_id"), "document_references", ["target_id"], unique=False
    )


def downgrade():
    op.drop_index(op.f("ix_document_references_target_id"), table_name="document_references")
    op.drop_index(op.f("ix_document_references_document_id"), table_name="document_references")
    op.drop_table("document_references")
