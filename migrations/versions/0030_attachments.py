"""attachments: files attached to documents, stored by content hash; rows append-only on
PostgreSQL (like the revisions and reviews they sit beside)

Revision ID: 0030
Revises: 0010
Create Date: 2026-11-30 19:30:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0010"
branch_labels = None
depends_on = None

GUARD = (
    # fuhe_refuse_rewrite() comes with migration 0005 (the audit guards).
    "CREATE TRIGGER fuhe_attachments_append_only BEFORE UPDATE OR DELETE ON attachments "
    "FOR EACH ROW EXECUTE FUNCTION fuhe_refuse_rewrite()",
    "CREATE TRIGGER fuhe_attachments_no_truncate BEFORE TRUNCATE ON attachments "
    "FOR EACH STATEMENT EXECUTE FUNCTION fuhe_refuse_rewrite()",
)


def upgrade():
    op.create_table(
        "attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("uploaded_by_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"], name=op.f("fk_attachments_document_id_documents")
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by_id"], ["users.id"], name=op.f("fk_attachments_uploaded_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    op.create_index(op.f("ix_attachments_document_id"), "attachments", ["document_id"])
    op.create_index(op.f("ix_attachments_sha256"), "attachments", ["sha256"])
    if op.get_bind().dialect.name == "postgresql":
        for statement in GUARD:
            op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS fuhe_attachments_append_only ON attachments")
        op.execute("DROP TRIGGER IF EXISTS fuhe_attachments_no_truncate ON attachments")
    op.drop_index(op.f("ix_attachments_sha256"), table_name="attachments")
    op.drop_index(op.f("ix_attachments_document_id"), table_name="attachments")
    op.drop_table("attachments")
