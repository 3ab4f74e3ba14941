"""Pydantic schemas of the REST API: Create / Update / Public per resource.

Input types are kept plain (str, int, bool) and strict (no "yes" for true, no "5" for 5): the
domain rules in envrouter.model check the values and name the field at fault, so the API and the
CLI refuse the same things the same way. The fixed sets (network roles, node roles, statuses)
come from envrouter.model.names, so the OpenAPI lists the same choices the model accepts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from envrouter.model import names

NetworkRole = Literal[names.NETWORK_ROLES]  # type: ignore[valid-type]
NodeRole = Literal[names.NODE_ROLES]  # type: ignore[valid-type]
NodeStatus = Literal[names.NODE_STATUSES]  # type: ignore[valid-type]
BridgeKind = Literal[names.BRIDGE_KINDS]  # type: ignore[valid-type]
Ipv6Egress = Literal[names.IPV6_EGRESS]  # type: ignore[valid-type]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ErrorItem(BaseModel):
    object: str
    field: str
    reason: str


class ErrorBody(BaseModel):
    detail: list[ErrorItem]


class AuthErrorBody(BaseModel):
    detail: str


class Counts(BaseModel):
    networks: int
    nodes: int
    vips: int


class EnvironmentCreate(_In):
    name: str = Field(max_length=63)
    ha: bool = False


class EnvironmentUpdate(_In):
    name: str | None = Field(None, max_length=63)
    ha: bool | None = None


class EnvironmentPublic(BaseModel):
    id: int
    name: str
    ha: bool
    counts: Counts


class RangeIn(_In):
    start: str = Field(max_length=64)
    end: str = Field(max_length=64)


class NetworkCreate(_In):
    name: str = Field(max_length=32)
    role: NetworkRole
    cidr: str = Field(max_length=64)
    gateway: str | None = Field(None, max_length=64)
    vlan: int | None = None
    bridge: str | None = Field(None, max_length=15)
    ranges: list[RangeIn] = Field(default_factory=list, max_length=64)
    cidr6: str | None = Field(
        None, max_length=64, description="the IPv6 prefix beside the IPv4 cidr (dual stack)"
    )
    gateway6: str | None = Field(None, max_length=64)
    ranges6: list[RangeIn] = Field(default_factory=list, max_length=64)


class NetworkUpdate(_In):
    name: str | None = Field(None, max_length=32)
    gateway: str | None = Field(None, max_length=64)
    vlan: int | None = None
    bridge: str | None = Field(None, max_length=15)
    ranges: list[RangeIn] | None = Field(None, max_length=64)
    cidr6: str | None = Field(
        None,
        max_length=64,
        description="may be set once (nodes on the network get an IPv6 address), then not "
        "changed",
    )
    gateway6: str | None = Field(None, max_length=64)
    ranges6: list[RangeIn] | None = Field(None, max_length=64)


class NetworkPublic(BaseModel):
    id: int
    environment_id: int
    name: str
    role: str
    cidr: str
    gateway: str | None
    vlan: int | None
    bridge: str
    ranges: list[RangeIn]
    cidr6: str | None = None
    gateway6: str | None = None
    ranges6: list[RangeIn] = Field(default_factory=list)


class NodeCreate(_In):
    hostname: str = Field(max_length=253)
    roles: list[NodeRole] = Field(default_factory=list, max_length=16)
    status: NodeStatus = names.DEFAULT_NODE_STATUS
    addresses: dict[str, str] = Field(
        default_factory=dict,
        description="network name -> address; only controllers have one on the public network",
    )
    addresses6: dict[str, str] = Field(
        default_factory=dict,
        description="network name -> IPv6 address, on networks with an IPv6 prefix (cidr6)",
    )


class NodeUpdate(_In):
    hostname: str | None = Field(None, max_length=253)
    roles: list[NodeRole] | None = Field(
        None,
        max_length=16,
        description="a node that stops being a controller gives back its public and vrouter "
        "namespace addresses; one that becomes a controller gets them",
    )
    status: NodeStatus | None = None


class NodePublic(BaseModel):
    id: int
    environment_id: int
    hostname: str
    roles: list[str]
    status: str
    addresses: dict[str, str] = Field(description="network name -> the node's host address")
    addresses6: dict[str, str] = Field(
        default_factory=dict, description="network name -> the node's IPv6 host address"
    )
    namespace_address: str | None = Field(
        None, description="controllers: the vrouter namespace's own management address"
    )


class VipPublic(BaseModel):
    name: str
    network: str
    namespace: str
    address: str
    user_defined: bool


class VipUpdate(_In):
    address: str | None = Field(..., max_length=64, description="null: back to automatic")


class VrouterSettingsPublic(BaseModel):
    enabled: bool
    dns_list: list[str]
    ntp_list: list[str]
    domain: str | None
    nat: bool
    conntrack_sync: bool
    bridge_kind: str
    host_link_cidr: str
    namespace: str
    ipv6: bool = Field(description="the vrouter serves IPv6 too (dual stack)")
    ipv6_egress: str = Field(
        description="nat66: SNAT to the public IPv6 VIP; routed: no NAT (the upstream routes "
        "the management prefix to the VIP)"
    )


class VrouterSettingsUpdate(_In):
    """Fields left out keep their current value."""

    enabled: bool | None = None
    dns_list: list[str] | None = Field(None, max_length=16)
    ntp_list: list[str] | None = Field(None, max_length=16)
    domain: str | None = Field(None, max_length=253)
    nat: bool | None = None
    conntrack_sync: bool | None = None
    bridge_kind: BridgeKind | None = None
    host_link_cidr: str | None = Field(None, max_length=64)
    namespace: str | None = Field(None, max_length=32)
    ipv6: bool | None = Field(
        None,
        description="serve IPv6 through the vrouter too (dual stack): needs an IPv6 prefix on "
        "the management and public networks and a public IPv6 gateway",
    )
    ipv6_egress: Ipv6Egress | None = None


class ClusterState(BaseModel):
    model_config = ConfigDict(extra="allow")

    source: str
    quorate: bool | None
    vip_holder: str | None
    nodes: list[dict] = Field(default_factory=list)


# ------------------------------------------------------------------- the operations view
# Every value is what a controller's `envrouter status --json` said; null is "unknown".

class HealthVip(BaseModel):
    name: str
    address: str | None
    here: bool | None = Field(description="the address is in this controller's namespace")


class HealthResource(BaseModel):
    id: str
    role: str | None
    active: bool | None
    failed: bool | None


class HealthCluster(BaseModel):
    available: bool | None
    quorate: bool | None
    dc: str | None
    error: str | None


class HealthConntrackd(BaseModel):
    configured: bool | None
    answering: bool | None
    internal_cache: int | None
    external_cache: int | None
    sync_errors: int | None
    error: str | None


class HealthNat(BaseModel):
    entries: int | None
    max: int | None
    error: str | None


class HealthDns(BaseModel):
    answering: bool | None
    upstreams_reachable: int
    upstreams: int
    error: str | None


class HealthNtp(BaseModel):
    answering: bool | None
    synchronised: bool | None
    stratum: int | None
    offset_s: float | None
    reachable_upstreams: list[str]
    error: str | None


class ControllerHealth(BaseModel):
    node: str
    error: str | None = Field(description="why this controller could not be asked")
    degraded: bool | None
    reasons: list[str]
    collected_at: float | None
    vips: list[HealthVip]
    resources: list[HealthResource]
    cluster: HealthCluster | None
    conntrackd: HealthConntrackd | None
    nat: HealthNat | None
    dns: HealthDns | None
    ntp: HealthNtp | None


class EnvironmentHealth(BaseModel):
    source: str = Field(description="'unknown' without a status command or when it failed")
    updated_at: float | None = Field(description="when the command answered (Unix time)")
    error: str | None
    controllers: list[ControllerHealth]


class VipMove(BaseModel):
    vip: str
    address: str | None
    from_nodes: list[str]
    to_nodes: list[str] = Field(description="empty: no controller held it")
    at: float


class VipMoves(BaseModel):
    observed_since: float | None = Field(description="the first poll of this server process")
    moves: list[VipMove] = Field(description="newest first")


class DrillSummary(BaseModel):
    id: str
    drill: str | None
    t_fault: float | None
    holder_before: str | None
    holder_after: str | None
    vips_moved_after_ms: float | None
    longest_gap_ms: float | None
    packets_lost: int | None
    packets_sent: int | None
    passed: bool | None
    failures: list[str]
    timeline: bool = Field(description="GET /drills/{id}/timeline.svg has its picture")
    error: str | None = None


class Drills(BaseModel):
    configured: bool = Field(description="the server was given a drills directory")
    drills: list[DrillSummary] = Field(description="newest first")


# ------------------------------------------------------------------- documented error answers

def _error(description: str, model: type[BaseModel] = ErrorBody) -> dict:
    return {"model": model, "description": description}


_UNAVAILABLE = {
    "model": ErrorBody,
    "description": "the database could not serve the request in time (busy or unreachable); "
    "try again after Retry-After seconds",
    "headers": {
        "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}
    },
}
_AUTH = {
    401: _error("missing, malformed, unknown or expired token", AuthErrorBody),
    503: _UNAVAILABLE,
}
_INVALID = {422: _error("bad input: each item names the object and the field")}
_NOT_FOUND = {404: _error("the environment, network, node or VIP does not exist")}
_WRITE = {
    403: _error("the token is read-only: writes need an admin token", AuthErrorBody),
    409: _error("clashes with the current state: a name taken, an address held, a range "
                "exhausted, or a rule another object relies on (the reason says which)"),
}

# Every status code each kind of route can answer, for the OpenAPI (issue #16 point 8).
TOKEN_ONLY: dict = {**_AUTH}  # no parameter, no body: nothing to be invalid
READ: dict = {**_AUTH, **_INVALID, **_NOT_FOUND}
CREATE_TOP: dict = {**_AUTH, **_INVALID, **_WRITE}
WRITE: dict = {**_AUTH, **_INVALID, **_NOT_FOUND, **_WRITE}
