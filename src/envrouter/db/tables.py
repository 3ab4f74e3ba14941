"""SQLAlchemy 2 tables (the head of the migration history).

Every held address -- a node's host address, a controller's vrouter namespace address, a VIP --
is one row of `addresses`; the unique constraint (network_id, address) is the last guard
against an address held twice, behind the allocation lock in `envrouter.model.service`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ADDRESS_HOST = "host"
ADDRESS_NAMESPACE = "namespace"
ADDRESS_VIP = "vip"


class Base(DeclarativeBase):
    pass


def _owned(back_populates: str, order_by: str | None = None, **kw: Any) -> Any:
    """The rows a parent owns: they go with it, deleted by the database (ON DELETE CASCADE;
    passive_deletes: the ORM does not load them first)."""
    if order_by is not None:
        kw["order_by"] = order_by
    return relationship(back_populates=back_populates, cascade="all, delete-orphan",
                        passive_deletes=True, **kw)


class _InEnvironment:
    """A row of one environment (networks, nodes, VIPs): deleted with it."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment_id: Mapped[int] = mapped_column(
        ForeignKey("environments.id", ondelete="CASCADE"), index=True
    )


class EnvironmentRow(Base):
    __tablename__ = "environments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    ha: Mapped[bool] = mapped_column(Boolean, default=False)
    # Upstream servers exist before the vrouter: nodes used them directly (baseline schema).
    dns_list: Mapped[str] = mapped_column(Text, default="[]")
    ntp_list: Mapped[str] = mapped_column(Text, default="[]")
    domain: Mapped[str | None] = mapped_column(String(253), nullable=True)
    # Bumped by every write to the environment: documents are cached per revision.
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    networks: Mapped[list[NetworkRow]] = _owned("environment", "NetworkRow.id")
    nodes: Mapped[list[NodeRow]] = _owned("environment", "NodeRow.id")
    vips: Mapped[list[VipRow]] = _owned("environment", "VipRow.id")
    settings: Mapped[VrouterSettingsRow | None] = _owned("environment", uselist=False)


class NetworkRow(_InEnvironment, Base):
    __tablename__ = "networks"
    __table_args__ = (UniqueConstraint("environment_id", "name", name="uq_networks_env_name"),)

    name: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(16))
    cidr: Mapped[str] = mapped_column(String(64))
    gateway: Mapped[str | None] = mapped_column(String(64), nullable=True)
    vlan: Mapped[int | None] = mapped_column(Integer, nullable=True)
    bridge: Mapped[str] = mapped_column(String(15))
    # revision 3: the IPv6 prefix beside the IPv4 one; its ranges are rows of ip_ranges too
    # (told apart by their family), its addresses rows of addresses.
    cidr6: Mapped[str | None] = mapped_column(String(64), nullable=True)
    gateway6: Mapped[str | None] = mapped_column(String(64), nullable=True)

    environment: Mapped[EnvironmentRow] = relationship(back_populates="networks")
    ranges: Mapped[list[IpRangeRow]] = _owned("network", "IpRangeRow.id")


class IpRangeRow(Base):
    __tablename__ = "ip_ranges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    network_id: Mapped[int] = mapped_column(
        ForeignKey("networks.id", ondelete="CASCADE"), index=True
    )
    start_address: Mapped[str] = mapped_column(String(64))
    end_address: Mapped[str] = mapped_column(String(64))

    network: Mapped[NetworkRow] = relationship(back_populates="ranges")


class NodeRow(_InEnvironment, Base):
    __tablename__ = "nodes"

    hostname: Mapped[str] = mapped_column(String(253), unique=True)
    roles: Mapped[str] = mapped_column(String(255), default="")  # comma-separated
    status: Mapped[str] = mapped_column(String(32), default="discovered")

    environment: Mapped[EnvironmentRow] = relationship(back_populates="nodes")
    addresses: Mapped[list[AddressRow]] = _owned("node", "AddressRow.id")

    @property
    def role_list(self) -> tuple[str, ...]:
        return tuple(r for r in self.roles.split(",") if r)


class AddressRow(Base):
    __tablename__ = "addresses"
    __table_args__ = (
        UniqueConstraint("network_id", "address", name="uq_addresses_network_address"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    network_id: Mapped[int] = mapped_column(
        ForeignKey("networks.id", ondelete="CASCADE"), index=True
    )
    node_id: Mapped[int | None] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), nullable=True, index=True
    )
    address: Mapped[str] = mapped_column(String(64))
    # revision 2: VIP addresses and vrouter namespace addresses
    kind: Mapped[str] = mapped_column(String(16), default=ADDRESS_HOST, server_default=ADDRESS_HOST)
    vip_id: Mapped[int | None] = mapped_column(
        ForeignKey("vips.id", ondelete="CASCADE"), nullable=True, index=True
    )

    node: Mapped[NodeRow | None] = relationship(back_populates="addresses")
    network: Mapped[NetworkRow] = relationship()
    vip: Mapped[VipRow | None] = relationship(back_populates="address_row")


class TokenRow(Base):
    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    read_only: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=False), nullable=True)


class VrouterSettingsRow(Base):
    """Revision 2."""

    __tablename__ = "vrouter_settings"

    environment_id: Mapped[int] = mapped_column(
        ForeignKey("environments.id", ondelete="CASCADE"), primary_key=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    nat: Mapped[bool] = mapped_column(Boolean, default=True)
    conntrack_sync: Mapped[bool] = mapped_column(Boolean, default=True)
    bridge_kind: Mapped[str] = mapped_column(String(8), default="linux")
    host_link_cidr: Mapped[str] = mapped_column(String(64), default="169.254.77.0/30")
    namespace: Mapped[str] = mapped_column(String(15), default="vrouter")
    # revision 3
    ipv6: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    ipv6_egress: Mapped[str] = mapped_column(String(8), default="nat66", server_default="nat66")

    environment: Mapped[EnvironmentRow] = relationship(back_populates="settings")


class VipRow(_InEnvironment, Base):
    """Revision 2."""

    __tablename__ = "vips"
    __table_args__ = (UniqueConstraint("environment_id", "name", name="uq_vips_env_name"),)

    name: Mapped[str] = mapped_column(String(32))
    network_id: Mapped[int] = mapped_column(ForeignKey("networks.id", ondelete="CASCADE"))
    namespace: Mapped[str] = mapped_column(String(15), default="vrouter")
    user_defined: Mapped[bool] = mapped_column(Boolean, default=False)

    environment: Mapped[EnvironmentRow] = relationship(back_populates="vips")
    network: Mapped[NetworkRow] = relationship()
    address_row: Mapped[AddressRow | None] = relationship(
        back_populates="vip", uselist=False, cascade="all, delete-orphan", passive_deletes=True
    )
