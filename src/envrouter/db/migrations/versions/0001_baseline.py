"""Baseline: an environment without the virtual router.

Environments (with their upstream DNS/NTP servers, which nodes use directly), networks with
ranges (the admin network's gateway is the master node), nodes, their host addresses, API
tokens. No vrouter field.

Revision ID: 0001_baseline
Revises:
"""

import sqlalchemy as sa
from alembic import op

from envrouter.db.migrations.columns import create_owned_table, key, owner

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "environments",
        key(),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("ha", sa.Boolean, nullable=False),
        sa.Column("dns_list", sa.Text, nullable=False),
        sa.Column("ntp_list", sa.Text, nullable=False),
        sa.Column("domain", sa.String(253), nullable=True),
        sa.Column("revision", sa.Integer, nullable=False, server_default="0"),
        sa.UniqueConstraint("name", name="uq_environments_name"),
    )
    create_owned_table(
        "networks", "environment_id", "environments", "fk_networks_env",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("cidr", sa.String(64), nullable=False),
        sa.Column("gateway", sa.String(64), nullable=True),
        sa.Column("vlan", sa.Integer, nullable=True),
        sa.Column("bridge", sa.String(15), nullable=False),
        sa.UniqueConstraint("environment_id", "name", name="uq_networks_env_name"),
    )
    create_owned_table(
        "ip_ranges", "network_id", "networks", "fk_ip_ranges_network",
        sa.Column("start_address", sa.String(64), nullable=False),
        sa.Column("end_address", sa.String(64), nullable=False),
    )
    create_owned_table(
        "nodes", "environment_id", "environments", "fk_nodes_env",
        sa.Column("hostname", sa.String(253), nullable=False),
        sa.Column("roles", sa.String(255), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.UniqueConstraint("hostname", name="uq_nodes_hostname"),
    )
    create_owned_table(
        "addresses", "network_id", "networks", "fk_addresses_network",
        owner("node_id", "nodes", "fk_addresses_node", nullable=True),
        sa.Column("address", sa.String(64), nullable=False),
        sa.UniqueConstraint("network_id", "address", name="uq_addresses_network_address"),
    )
    op.create_index("ix_addresses_node_id", "addresses", ["node_id"])
    op.create_table(
        "tokens",
        key(),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("read_only", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=True),
        sa.UniqueConstraint("name", name="uq_tokens_name"),
        sa.UniqueConstraint("token_hash", name="uq_tokens_token_hash"),
    )


def downgrade() -> None:
    op.drop_table("tokens")
    op.drop_index("ix_addresses_node_id", "addresses")
    op.drop_index("ix_addresses_network_id", "addresses")
    op.drop_table("addresses")
    op.drop_index("ix_nodes_environment_id", "nodes")
    op.drop_table("nodes")
    op.drop_index("ix_ip_ranges_network_id", "ip_ranges")
    op.drop_table("ip_ranges")
    op.drop_index("ix_networks_environment_id", "networks")
    op.drop_table("networks")
    op.drop_table("environments")
