"""The deployment document: what one node must look like.

A versioned JSON document per node, a pure function of the model. It is the contract between
the control plane (which builds it) and the agent, the HA layer and the services (which consume
it). This module holds its shape; `envrouter.model.documents` builds it from the model.

Version rules: `DOCUMENT_VERSION` is bumped on any incompatible change; consumers refuse a
version they do not know (`check_version`).
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from envrouter.errors import ValidationError

DOCUMENT_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})

BridgeKind = Literal["linux", "ovs"]
# the two VIPs of the vrouter (DocVip.name), the names every layer refers to them by
VIP_MANAGEMENT = "vrouter"
VIP_PUBLIC = "vrouter_pub"


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DocEnvironment(_Doc):
    id: int
    name: str
    ha: bool


class DocNode(_Doc):
    hostname: str
    roles: list[str]


class DocNetwork(_Doc):
    """One network the node is on, with the node's own address on it."""

    name: str
    role: str = Field(description="admin | management | public | storage | other")
    cidr: str
    gateway: str | None
    vlan: int | None
    bridge: str = Field(description="the node's bridge for this network, e.g. br-mgmt")
    address: str = Field(description="the node's own address on this network")
    prefixlen: int


class DocHost(_Doc):
    """Where the node itself sends its traffic, names and time requests."""

    gateway: str | None = Field(description="the node's default gateway")
    gateway_source: Literal["vrouter", "admin", "public", "none"]
    dns_servers: list[str]
    ntp_servers: list[str]
    search_domain: str | None


class DocVip(_Doc):
    name: str = Field(description="vrouter | vrouter_pub")
    network: str = Field(description="name of the network the VIP lives on")
    role: str = Field(description="role of that network: management | public")
    namespace: str
    address: str
    prefixlen: int
    user_defined: bool


class DocPeer(_Doc):
    hostname: str
    management_address: str = Field(description="the peer controller's own host address")
    namespace_address: str = Field(
        description="the peer's vrouter namespace address on management (conntrackd sync)"
    )


class DocVrouter(_Doc):
    """Present on controllers when the vrouter is enabled."""

    namespace: str = "vrouter"
    bridge_kind: BridgeKind = "linux"
    management_bridge: str
    public_bridge: str
    management_port: str = Field("vr-mgmt", description="the namespace's port on management")
    public_port: str = Field("vr-pub", description="the namespace's port on public")
    management_cidr: str = Field(description="clients allowed to use NAT, DNS and NTP")
    public_cidr: str
    public_gateway: str
    vip_management: DocVip
    vip_public: DocVip
    host_link_cidr: str = Field(
        description="a /30: the host end takes the first address, the namespace the second"
    )
    routes: list[str] = Field(
        default_factory=list,
        description="CIDRs of the environment's other networks, routed from the namespace "
        "via the host link",
    )
    upstream_dns: list[str]
    upstream_ntp: list[str]
    domain: str | None
    nat: bool
    conntrack_sync: bool
    self_management_address: str = Field(description="this controller's host address")
    self_public_address: str = Field(description="this controller's host public address")
    namespace_management_address: str = Field(
        description="this controller's vrouter namespace address on management, allocated by "
        "IPAM per controller (never derived from another address); conntrackd syncs from it"
    )
    peers: list[DocPeer] = Field(description="the other controllers")


class DeploymentDocument(_Doc):
    version: int = DOCUMENT_VERSION
    serial: str = Field(description="a digest of the content: equal serials, equal documents")
    environment: DocEnvironment
    node: DocNode
    networks: list[DocNetwork]
    host: DocHost
    vrouter: DocVrouter | None = None

    def network_by_role(self, role: str) -> DocNetwork | None:
        for net in self.networks:
            if net.role == role:
                return net
        return None


def check_version(raw: dict) -> None:
    """Refuse a document whose version this code does not know, before parsing the rest."""
    version = raw.get("version") if isinstance(raw, dict) else None
    if version not in SUPPORTED_VERSIONS:
        raise ValidationError(
            "deployment document",
            "version",
            f"unknown version {version!r}; this envrouter understands "
            f"{sorted(SUPPORTED_VERSIONS)}",
        )


def parse_document(raw: dict | str | bytes) -> DeploymentDocument:
    """Parse and validate a document (dict or JSON text)."""
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValidationError("deployment document", "(json)", str(exc)) from exc
    check_version(raw)
    from pydantic import ValidationError as PydanticError

    try:
        return DeploymentDocument.model_validate(raw)
    except PydanticError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(document)"
        raise ValidationError("deployment document", field, err["msg"]) from exc


def document_json_schema() -> dict:
    return DeploymentDocument.model_json_schema()
