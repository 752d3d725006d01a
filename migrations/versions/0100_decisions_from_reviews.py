"""approvals per reviewer are read from `reviews` (index ix_reviews_at), not from a copy:
`report_decisions` held one row per approval or rejection, which `reviews` already holds, and
cost every decision one more row to write

Revision ID: 0100
Revises: 0090
Create Date: 2026-12-07 06:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0100"
down_revision = "0090"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)


def upgrade():
    with op.batch_alter_table("reviews") as batch_op:
        batch_op.create_index(
            "ix_reviews_at", ["at", "decision", "user_id", "document_id"], unique=False
        )
    op.drop_table("report_decisions")


def downgrade():
    # The table as 0007 made it, filled again from the reviews it copied (the same rows the
    # report index wrote: the document's flow, the state decided in, the reviewer's name).
    op.create_table(
        "report_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("flow", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=40), nullable=False),
        sa.Column("reviewer", sa.String(length=64), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_decisions")),
    )
    op.execute(
        "INSERT INTO report_decisions (document_id, flow, state, reviewer, decision, at)"
        " SELECT r.document_id, d.flow_name, r.state, u.username, r.decision, r.at"
        " FROM reviews r JOIN documents d ON d.id = r.document_id"
        " JOIN users u ON u.id = r.user_id ORDER BY r.id"
    )
    with op.batch_alter_table("report_decisions") as batch_op:
        batch_op.create_index(
            "ix_report_decisions_at",
            ["at", "decision", "flow", "reviewer", "document_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_report_decisions_document_id"), ["document_id"], unique=False
        )
    with op.batch_alter_table("reviews") as batch_op:
        batch_op.drop_index("ix_reviews_at")
