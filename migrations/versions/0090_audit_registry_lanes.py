"""audit registry lanes: a chain's registry entry gets a lane (0: `system` and the lanes'
roots; 1-16: documents' chains), unique with its position, so registering a new document's
chain locks only its lane's root instead of the one `system` row; (PostgreSQL) a chain row may
not change its lane either

Revision ID: 0090
Revises: 0080
Create Date: 2026-12-06 21:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0090"
down_revision = "0080"
branch_labels = None
depends_on = None


def chain_grows_only(*, lane: bool) -> str:
    """The guard as this migration leaves it (lane=True) and as 0005 wrote it (lane=False)."""
    frozen = " OR NEW.lane IS DISTINCT FROM OLD.lane" if lane else ""
    return f"""CREATE OR REPLACE FUNCTION fuhe_chain_grows_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.key IS DISTINCT FROM OLD.key{frozen}
     OR NEW.position IS DISTINCT FROM OLD.position
     OR NEW.prev_hash IS DISTINCT FROM OLD.prev_hash OR NEW.hash IS DISTINCT FROM OLD.hash
     OR NEW.key_id IS DISTINCT FROM OLD.key_id OR NEW.opened_at IS DISTINCT FROM OLD.opened_at
     OR NEW.length IS DISTINCT FROM OLD.length + 1 THEN
    RAISE EXCEPTION 'fuhe: audit chain % may only grow by one event at a time', OLD.key
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$"""


def upgrade():
    # Every existing entry is lane 0, where it already is: its seal is unchanged.
    with op.batch_alter_table("audit_chains") as batch_op:
        batch_op.add_column(sa.Column("lane", sa.Integer(), server_default="0", nullable=False))
        batch_op.drop_constraint("uq_audit_chains_position", type_="unique")
        batch_op.create_unique_constraint("uq_audit_chains_lane_position", ["lane", "position"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(chain_grows_only(lane=True))


def downgrade():
    # Chains registered in lanes 1-16 cannot go back into one list: their seals name their
    # lane, and only the audit key (outside the database) could re-seal them.
    laned = op.get_bind().scalar(sa.text("SELECT count(*) FROM audit_chains WHERE lane > 0"))
    if laned:
        raise RuntimeError(
            f"cannot downgrade below 0090: {laned} audit chains are registered in lanes "
            "1-16 (their seals name the lane); restore a backup taken before 0090 instead"
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(chain_grows_only(lane=False))
    with op.batch_alter_table("audit_chains") as batch_op:
        batch_op.drop_constraint("uq_audit_chains_lane_position", type_="unique")
        batch_op.create_unique_constraint("uq_audit_chains_position", ["position"])
        batch_op.drop_column("lane")
