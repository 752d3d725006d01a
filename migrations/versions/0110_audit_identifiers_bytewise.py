"""the audit log's names (chain keys, logins, actions, outcomes, flows, states) compare
bytewise on PostgreSQL (COLLATE "C"): seven indexes over the largest table were built and kept
through the locale's strcoll for comparisons that only ever ask for equality (at 1M documents
the actor index built in 8.9 s, 5.0 s bytewise)

Revision ID: 0110
Revises: 0100
Create Date: 2026-12-07 12:00:00

"""

from alembic import op

revision = "0110"
down_revision = "0100"
branch_labels = None
depends_on = None

# (table, column, length): what workflow/models.py declares as `Identifier`.
COLUMNS = (
    ("audit_chains", "key", 40),
    ("audit_events", "chain_key", 40),
    ("audit_events", "flow", 40),
    ("audit_events", "actor", 64),
    ("audit_events", "action", 40),
    ("audit_events", "outcome", 16),
    ("audit_events", "from_state", 40),
    ("audit_events", "to_state", 40),
)


def _collate(collation: str) -> None:
    # SQLite compares strings bytewise already. On PostgreSQL only the collation changes: no
    # table is rewritten, the indexes on these columns are rebuilt (one statement per table),
    # and the columns are analyzed again.
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in dict.fromkeys(t for t, _, _ in COLUMNS):
        changes = ", ".join(
            f'ALTER COLUMN "{column}" TYPE varchar({length}) COLLATE {collation}'
            for t, column, length in COLUMNS
            if t == table
        )
        op.execute(f"ALTER TABLE {table} {changes}")
        # Changing a column's type drops its planner statistics, and autovacuum does not analyze
        # again for a change of type: without them the reviewer's document list (which probes
        # the audit log by actor) took 638 ms instead of 17 ms at 1M. Half a second at 7.2M.
        columns = ", ".join(f'"{column}"' for t, column, _ in COLUMNS if t == table)
        op.execute(f"ANALYZE {table} ({columns})")


def upgrade():
    _collate('"C"')


def downgrade():
    _collate('"default"')
