"""deadlines and delegation: documents.due_at (indexed), deadline notices (one reminder or
escalation per period), delegations, reviews on behalf of someone, mail preferences

Revision ID: 0020
Revises: 0010
Create Date: 2026-11-30 19:40:00

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0020"
down_revision = "0050"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)


def upgrade():
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("due_at", Timestamp, nullable=True))
        batch.create_index("ix_documents_due", ["due_at", "id"])
    with op.batch_alter_table("reviews") as batch:
        batch.add_column(sa.Column("on_behalf_of_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            batch.f("fk_reviews_on_behalf_of_id_users"), "users", ["on_behalf_of_id"], ["id"]
        )
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("notify_email", sa.Boolean(), nullable=False, server_default="1")
        )
        batch.add_column(
            sa.Column("notify_digest", sa.Boolean(), nullable=False, server_default="0")
        )
    op.create_table(
        "deadline_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=120), nullable=False),
        sa.Column("step", sa.String(length=40), nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("due", Timestamp, nullable=True),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_deadline_notices_document_id_documents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deadline_notices")),
        sa.UniqueConstraint(
            "document_id",
            "period",
            "step",
            name=op.f("uq_deadline_notices_document_id_period_step"),
        ),
    )
    op.create_table(
        "delegations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("from_user_id", sa.Integer(), nullable=False),
        sa.Column("to_user_id", sa.Integer(), nullable=False),
        sa.Column("roles", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("revoked_at", Timestamp, nullable=True),
        sa.ForeignKeyConstraint(
            ["from_user_id"], ["users.id"], name=op.f("fk_delegations_from_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["to_user_id"], ["users.id"], name=op.f("fk_delegations_to_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delegations")),
    )
    op.create_index(
        op.f("ix_delegations_from_user_id"), "delegations", ["from_user_id"], unique=False
    )
    op.create_index("ix_delegations_to", "delegations", ["to_user_id", "ends_on"], unique=False)


def downgrade():
    op.drop_index("ix_delegations_to", table_name="delegations")
    op.drop_index(op.f("ix_delegations_from_user_id"), table_name="delegations")
    op.drop_table("delegations")
    op.drop_table("deadline_notices")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("notify_digest")
        batch.drop_column("notify_email")
    with op.batch_alter_table("reviews") as batch:
        batch.drop_constraint(batch.f("fk_reviews_on_behalf_of_id_users"), type_="foreign_key")
        batch.drop_column("on_behalf_of_id")
    with op.batch_alter_table("documents") as batch:
        batch.drop_index("ix_documents_due")
        batch.drop_column("due_at")
