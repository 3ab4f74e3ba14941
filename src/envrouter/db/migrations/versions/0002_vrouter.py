"""The virtual router: its settings, the VIPs, VIP and namespace addresses.

Reserves nothing by itself: VIPs are reserved by `envrouter env reserve-vips` or the API.

Revision ID: 0002_vrouter
Revises: 0001_baseline
"""

import sqlalchemy as sa
from alembic import op

from envrouter.db.migrations.columns import create_owned_table, owner

revision = "0002_vrouter"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vrouter_settings",
        owner("environment_id", "environments", "fk_vrouter_settings_env", primary_key=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("nat", sa.Boolean, nullable=False),
        sa.Column("conntrack_sync", sa.Boolean, nullable=False),
        sa.Column("bridge_kind", sa.String(8), nullable=False),
        sa.Column("host_link_cidr", sa.String(64), nullable=False),
        sa.Column("namespace", sa.String(15), nullable=False),
    )
    create_owned_table(
        "vips", "environment_id", "environments", "fk_vips_env",
        sa.Column("name", sa.String(32), nullable=False),
        owner("network_id", "networks", "fk_vips_network"),
        sa.Column("namespace", sa.String(15), nullable=False),
        sa.Column("user_defined", sa.Boolean, nullable=False),
        sa.UniqueConstraint("environment_id", "name", name="uq_vips_env_name"),
    )
    with op.batch_alter_table("addresses") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="host"))
        batch.add_column(sa.Column("vip_id", sa.Integer, nullable=True))
        batch.create_foreign_key("fk_addresses_vip", "vips", ["vip_id"], ["id"], ondelete="CASCADE")
        batch.create_index("ix_addresses_vip_id", ["vip_id"])


def downgrade() -> None:
    # VIP and namespace addresses have no place in the baseline schema.
    op.execute("DELETE FROM addresses WHERE kind <> 'host'")
    with op.batch_alter_table("addresses") as batch:
        batch.drop_index("ix_addresses_vip_id")
        batch.drop_constraint("fk_addresses_vip", type_="foreignkey")
        batch.drop_column("vip_id")
        batch.drop_column("kind")
    op.drop_index("ix_vips_environment_id", "vips")
    op.drop_table("vips")
    op.drop_table("vrouter_settings")
