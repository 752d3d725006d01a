"""the inbox's order served by an index: (flow_version_id, state, entered_at, id) replaces
(flow_version_id, state), so each (flow version, state) pair a user can act in is one ordered
range (workflow/queries.task_keys)

Revision ID: 0070
Revises: 0010
Create Date: 2026-11-30 19:40:00

"""

from alembic import op

revision = "0070"
down_revision = "0060"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("documents") as batch:
        batch.create_index(
            "ix_documents_task_order", ["flow_version_id", "state", "entered_at", "id"]
        )
        batch.drop_index("ix_documents_flow_state")


def downgrade():
    with op.batch_alter_table("documents") as batch:
        batch.create_index("ix_documents_flow_state", ["flow_version_id", "state"])
        batch.drop_index("ix_documents_task_order")
