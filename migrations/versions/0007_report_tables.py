"""report tables: indexed columns for the statistics and the contract list

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 16:30:00

Existing documents get their rows with `flask --app wsgi reports rebuild` (replays the audit log).
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade():
    op.create_table(
        "report_documents",
        sa.Column("document_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("flow", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("milestone_at", TS, nullable=True),
        sa.Column("last_activity_at", TS, nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("contract_amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("customer", sa.String(length=200), nullable=True),
        sa.Column("contract_no", sa.String(length=60), nullable=True),
        sa.Column("sales_rep", sa.String(length=60), nullable=True),
        sa.Column("paid", sa.Boolean(), nullable=True),
        sa.Column("due_date", sa.String(length=10), nullable=True),
        sa.PrimaryKeyConstraint("document_id", name=op.f("pk_report_documents")),
    )
    with op.batch_alter_table("report_documents") as batch_op:
        batch_op.create_index(
            "ix_report_documents_created", ["created_at", "flow", "amount_fen"], unique=False
        )
        batch_op.create_index(
            "ix_report_documents_finished",
            ["finished_at", "status", "flow", "created_at", "amount_fen"],
            unique=False,
        )
        batch_op.create_index(
            "ix_report_documents_flow_created", ["flow", "created_at", "amount_fen"], unique=False
        )
        batch_op.create_index(
            "ix_report_documents_flow_finished",
            ["flow", "finished_at", "status", "created_at", "amount_fen"],
            unique=False,
        )
        batch_op.create_index("ix_report_documents_contract", ["contract_no", "flow"], unique=False)
    op.create_table(
        "report_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("flow", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=40), nullable=False),
        sa.Column("entered_at", TS, nullable=False),
        sa.Column("left_at", TS, nullable=True),
        sa.Column("seconds", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_steps")),
    )
    with op.batch_alter_table("report_steps") as batch_op:
        batch_op.create_index(
            "ix_report_steps_left",
            ["left_at", "flow", "state", "outcome", "document_id", "seconds"],
            unique=False,
        )
        batch_op.create_index(
            "ix_report_steps_document", ["document_id", "left_at"], unique=False
        )
    op.create_table(
        "report_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("flow", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=40), nullable=False),
        sa.Column("reviewer", sa.String(length=64), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_decisions")),
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


def downgrade():
    op.drop_table("report_decisions")
    op.drop_table("report_steps")
    op.drop_table("report_documents")
