"""Domain objects: plain, immutable snapshots of an environment.

The database rows (`envrouter.db.tables`) are turned into these once per request; documents
are built from these only, so building them is pure and issues no query.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from envrouter.model.ipam import Pool

# The VIPs' names are fixed sets, kept with the other names (imported here for the model's
# callers; the document imports them from names without the model's entities).
from envrouter.model.names import (  # noqa: F401
    VIP_FAMILIES,
    VIP_MANAGEMENT,
    VIP_MANAGEMENT6,
    VIP_NETWORK_ROLES,
    VIP_PUBLIC,
    VIP_PUBLIC6,
)

CONTROLLER = "controller"


@dataclass(frozen=True)
class IpRange:
    start: str
    end: str


@dataclass(frozen=True)
class Network:
    id: int
    name: str
    role: str
    cidr: str
    gateway: str | None
    vlan: int | None
    bridge: str
    ranges: tuple[IpRange, ...] = ()
    # The IPv6 prefix beside the IPv4 one (dual stack), with its own gateway and ranges.
    cidr6: str | None = None
    gateway6: str | None = None
    ranges6: tuple[IpRange, ...] = ()

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.cidr).prefixlen

    @property
    def prefixlen6(self) -> int | None:
        return ipaddress.ip_network(self.cidr6).prefixlen if self.cidr6 else None

    def pool(self, family: int = 4) -> Pool:
        """The IPv4 pool, or with family=6 the IPv6 one (a network without cidr6 has none)."""
        if family == 6:
            if self.cidr6 is None:
                raise KeyError(f"network {self.name!r} has no IPv6 prefix")
            return Pool(
                self.name, self.cidr6, self.gateway6, tuple((r.start, r.end) for r in self.ranges6)
            )
        return Pool(
            self.name, self.cidr, self.gateway, tuple((r.start, r.end) for r in self.ranges)
        )


@dataclass(frozen=True)
class Node:
    id: int
    hostname: str
    roles: tuple[str, ...]
    status: str
    addresses: Mapping[int, str] = field(default_factory=dict)  # network id -> host address
    namespace_address: str | None = None  # vrouter namespace address on management
    addresses6: Mapping[int, str] = field(default_factory=dict)  # network id -> IPv6 address

    @property
    def is_controller(self) -> bool:
        return CONTROLLER in self.roles


@dataclass(frozen=True)
class Vip:
    name: str
    network_id: int
    namespace: str
    address: str
    user_defined: bool


@dataclass(frozen=True)
class VrouterSettings:
    enabled: bool = False
    dns_list: tuple[str, ...] = ()
    ntp_list: tuple[str, ...] = ()
    domain: str | None = None
    nat: bool = True
    conntrack_sync: bool = True
    bridge_kind: str = "linux"
    host_link_cidr: str = "169.254.77.0/30"
    namespace: str = "vrouter"
    # The vrouter serves IPv6 too: the IPv6 VIPs, the nodes' IPv6 route, NAT66 or routed egress,
    # DNS/NTP on the IPv6 management VIP, conntrackd syncing IPv6 flows.
    ipv6: bool = False
    ipv6_egress: str = "nat66"  # names.IPV6_EGRESS


@dataclass(frozen=True)
class Environment:
    id: int
    name: str
    ha: bool
    networks: tuple[Network, ...] = ()
    settings: VrouterSettings = VrouterSettings()
    vips: tuple[Vip, ...] = ()

    def network_by_role(self, role: str) -> Network | None:
        for net in self.networks:
            if net.role == role:
                return net
        return None

    def network_by_id(self, network_id: int) -> Network:
        for net in self.networks:
            if net.id == network_id:
                return net
        raise KeyError(network_id)

    def vip(self, name: str) -> Vip | None:
        for vip in self.vips:
            if vip.name == name:
                return vip
        return None
