"""Re-registration bans, one row per (key, measure) (A8.3).

Revision ID: 0004_registration_bans
Revises: 0003_registration

``registration_keys`` held one ban per key with the id of the *last* measure only, so lifting
that measure cleared an older, longer (even permanent) ban of another measure with it.
Each measure's ban is now its own row in ``registration_bans``, lifted only by that measure;
a registration is refused while any row of its identity or phone is in force. The bans
already held move over under the measure id they kept.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_registration_bans"
down_revision = "0003_registration"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registration_bans",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("measure_id", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("banned_until", sa.Float),  # epoch seconds; NULL with permanent
        sa.Column("permanent", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.execute("""
        INSERT INTO registration_bans (key, measure_id, kind, banned_until, permanent)
        SELECT key, COALESCE(ban_measure_id, 'migrated'), kind, banned_until, ban_permanent
        FROM registration_keys WHERE banned_until IS NOT NULL OR ban_permanent
    """)
    with op.batch_alter_table("registration_keys") as batch:
        for column in ("banned_until", "ban_permanent", "ban_measure_id"):
            batch.drop_column(column)


def downgrade() -> None:
    with op.batch_alter_table("registration_keys") as batch:
        batch.add_column(sa.Column("banned_until", sa.Float))
        batch.add_column(sa.Column("ban_permanent", sa.Boolean, nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("ban_measure_id", sa.Text))
    op.drop_table("registration_bans")
