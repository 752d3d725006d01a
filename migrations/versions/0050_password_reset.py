"""people admin: a password reset by a user administrator must be changed at the next sign-in

Revision ID: 0050
Revises: 0010
Create Date: 2026-11-30 19:55:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0050"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column(
                "must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade():
    with op.batch_alter_table("users") as batch:
        batch.drop_column("must_change_password")
