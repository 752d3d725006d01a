"""document_seen: when each person last opened a document and what it was then (revision,
state, review round), for the task list's "changed since you saw it / resubmitted" badge

Revision ID: 0060
Revises: 0030
Create Date: 2026-11-30 19:30:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0060"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "document_seen",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=40), nullable=False),
        sa.Column("review_round", sa.Integer(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_document_seen_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_document_seen_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "document_id", name=op.f("pk_document_seen")),
    )


def downgrade():
    op.drop_table("document_seen")
