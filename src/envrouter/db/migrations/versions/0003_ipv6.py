"""IPv6 beside IPv4: a network's IPv6 prefix and gateway, the vrouter's `ipv6` switch and
`ipv6_egress` (nat66 or routed).

IPv6 ranges are rows of `ip_ranges` and IPv6 addresses (nodes', the IPv6 VIPs') rows of
`addresses`, told apart from the IPv4 ones by their family: no new table.

Revision ID: 0003_ipv6
Revises: 0002_vrouter
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_ipv6"
down_revision = "0002_vrouter"
branch_labels = None
depends_on = None


# Plain ALTER TABLE, never a batch copy: on SQLite a batch operation re-creates the table, and
# dropping the old `networks` table cascades (foreign keys are on) into every range and address.
# SQLite has ADD COLUMN and, since 3.35 (Debian 12 ships 3.40), DROP COLUMN.


def upgrade() -> None:
    op.add_column("networks", sa.Column("cidr6", sa.String(64), nullable=True))
    op.add_column("networks", sa.Column("gateway6", sa.String(64), nullable=True))
    op.add_column(
        "vrouter_settings",
        sa.Column("ipv6", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "vrouter_settings",
        sa.Column("ipv6_egress", sa.String(8), nullable=False, server_default="nat66"),
    )


def downgrade() -> None:
    # IPv6 ranges, addresses and VIPs have no place in revision 2.
    op.execute("DELETE FROM vips WHERE name IN ('vrouter6', 'vrouter_pub6')")
    op.execute("DELETE FROM addresses WHERE address LIKE '%:%'")
    op.execute("DELETE FROM ip_ranges WHERE start_address LIKE '%:%'")
    op.drop_column("vrouter_settings", "ipv6_egress")
    op.drop_column("vrouter_settings", "ipv6")
    op.drop_column("networks", "gateway6")
    op.drop_column("networks", "cidr6")
