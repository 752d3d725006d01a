"""role-addressed notifications: one row per notification to roles (notification_roles,
notification_exclusions), read by a per-user watermark (users.notifications_read_id), mailed
through per-person delivery rows the worker writes (notification_deliveries)

Revision ID: 0080
Revises: 0040
Create Date: 2026-11-30 22:30:00

"""

import sqlalchemy as sa
from alembic import op

# The view and trigger as they were when this migration was written (not imported from the
# models, which may change after it).
SQLITE_NOTIFY_TO_ROLES = (
    "CREATE VIEW IF NOT EXISTS notification_to_roles"
    " (kind, document_id, details, created_at, roles, exclude)"
    " AS SELECT NULL, NULL, NULL, NULL, NULL, NULL WHERE 0",
    "CREATE TRIGGER IF NOT EXISTS notification_to_roles_insert"
    " INSTEAD OF INSERT ON notification_to_roles BEGIN"
    " INSERT INTO notifications (kind, document_id, details, created_at, expanded)"
    " VALUES (NEW.kind, NEW.document_id, NEW.details, NEW.created_at, 0);"
    " INSERT INTO notification_roles (notification_id, role)"
    " SELECT (SELECT max(id) FROM notifications), value FROM json_each(NEW.roles);"
    " INSERT INTO notification_exclusions (notification_id, user_id)"
    " SELECT (SELECT max(id) FROM notifications), value FROM json_each(NEW.exclude);"
    " END",
)

revision = "0080"
down_revision = "0040"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)
DELIVERY_FK = "fk_notification_deliveries_notification_id_notifications"


def upgrade():
    # 1. The deliveries, first without their key to `notifications` (SQLite rebuilds that
    #    table below: a referencing key would take the copied rows with it).
    op.create_table(
        "notification_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("notification_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("email_state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", Timestamp, nullable=False),
        sa.Column("delivered_at", Timestamp, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notification_deliveries_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_deliveries")),
        sa.UniqueConstraint(
            "notification_id",
            "user_id",
            name=op.f("uq_notification_deliveries_notification_id_user_id"),
        ),
    )
    op.create_index(
        "ix_notification_deliveries_outbox",
        "notification_deliveries",
        ["email_state", "next_attempt_at"],
        unique=False,
    )
    # Every existing notification is personal: its mail state becomes its one delivery, and
    # what each person read becomes their watermark (mark_read marked all at once).
    op.execute(
        "INSERT INTO notification_deliveries "
        "(notification_id, user_id, email_state, attempts, next_attempt_at, delivered_at) "
        "SELECT id, user_id, email_state, attempts, next_attempt_at, delivered_at "
        "FROM notifications"
    )
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("notifications_read_id", sa.Integer(), server_default="0", nullable=False)
        )
    op.execute(
        "UPDATE users SET notifications_read_id = COALESCE((SELECT MAX(n.id) FROM notifications n "
        "WHERE n.user_id = users.id AND n.read_at IS NOT NULL), 0)"
    )
    # 2. The notification itself: personal or to roles (user_id NULL), expanded by the worker.
    with op.batch_alter_table("notifications") as batch:
        batch.drop_index("ix_notifications_user_unread")
        batch.drop_index("ix_notifications_outbox")
        batch.add_column(
            sa.Column("expanded", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.alter_column("user_id", existing_type=sa.Integer(), nullable=True)
        for column in ("read_at", "email_state", "attempts", "next_attempt_at", "delivered_at"):
            batch.drop_column(column)
    op.execute(sa.text("UPDATE notifications SET expanded = :yes").bindparams(yes=True))
    with op.batch_alter_table("notifications") as batch:
        batch.create_index("ix_notifications_user", ["user_id", "id"], unique=False)
        batch.create_index("ix_notifications_expand", ["expanded", "id"], unique=False)
    # 3. Now the deliveries' key, and the roles and exclusions.
    with op.batch_alter_table("notification_deliveries") as batch:
        batch.create_foreign_key(
            op.f(DELIVERY_FK), "notifications", ["notification_id"], ["id"], ondelete="CASCADE"
        )
    op.create_table(
        "notification_roles",
        sa.Column("notification_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.id"],
            name=op.f("fk_notification_roles_notification_id_notifications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("notification_id", "role", name=op.f("pk_notification_roles")),
    )
    op.create_index(
        "ix_notification_roles_role",
        "notification_roles",
        ["role", "notification_id"],
        unique=False,
    )
    op.create_table(
        "notification_exclusions",
        sa.Column("notification_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.id"],
            name=op.f("fk_notification_exclusions_notification_id_notifications"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notification_exclusions_user_id_users")
        ),
        sa.PrimaryKeyConstraint(
            "notification_id", "user_id", name=op.f("pk_notification_exclusions")
        ),
    )
    if op.get_bind().dialect.name == "sqlite":  # one statement per notification to roles
        for statement in SQLITE_NOTIFY_TO_ROLES:
            op.execute(statement)


def downgrade():
    """Back to one row per person: role notifications are dropped (their deliveries say who
    got mail; the in-app rows cannot be rebuilt for people who never had one)."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS notification_to_roles_insert")
        op.execute("DROP VIEW IF EXISTS notification_to_roles")
    op.drop_table("notification_exclusions")
    op.drop_index("ix_notification_roles_role", table_name="notification_roles")
    op.drop_table("notification_roles")
    with op.batch_alter_table("notification_deliveries") as batch:
        batch.drop_constraint(op.f(DELIVERY_FK), type_="foreignkey")
    op.execute("DELETE FROM notification_deliveries WHERE notification_id IN "
               "(SELECT id FROM notifications WHERE user_id IS NULL)")  # fmt: skip
    op.execute("DELETE FROM notifications WHERE user_id IS NULL")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_index("ix_notifications_expand")
        batch.drop_index("ix_notifications_user")
        batch.add_column(sa.Column("read_at", Timestamp, nullable=True))
        batch.add_column(
            sa.Column("email_state", sa.String(length=12), server_default="off", nullable=False)
        )
        batch.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(
            sa.Column("next_attempt_at", Timestamp, server_default=sa.func.now(), nullable=False)
        )
        batch.add_column(sa.Column("delivered_at", Timestamp, nullable=True))
        batch.drop_column("expanded")
        batch.alter_column("user_id", existing_type=sa.Integer(), nullable=False)
    for column in ("email_state", "attempts", "next_attempt_at", "delivered_at"):
        op.execute(
            f"UPDATE notifications SET {column} = (SELECT d.{column} FROM notification_deliveries "
            f"d WHERE d.notification_id = notifications.id AND d.user_id = notifications.user_id) "
            f"WHERE EXISTS (SELECT 1 FROM notification_deliveries d "
            f"WHERE d.notification_id = notifications.id AND d.user_id = notifications.user_id)"
        )
    op.execute(
        "UPDATE notifications SET read_at = created_at WHERE id <= "
        "(SELECT u.notifications_read_id FROM users u WHERE u.id = notifications.user_id)"
    )
    with op.batch_alter_table("notifications") as batch:
        batch.create_index(
            "ix_notifications_outbox", ["email_state", "next_attempt_at"], unique=False
        )
        batch.create_index("ix_notifications_user_unread", ["user_id", "read_at"], unique=False)
    op.drop_index("ix_notification_deliveries_outbox", table_name="notification_deliveries")
    op.drop_table("notification_deliveries")
    # Not in batch mode: SQLite would rebuild `users`, which other tables' keys refer to (its
    # own ALTER TABLE … DROP COLUMN, since 3.35, does it in place).
    op.drop_column("users", "notifications_read_id")
