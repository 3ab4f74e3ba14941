"""The deployment document: what one node must look like.

A versioned JSON document per node, a pure function of the model. It is the contract between
the control plane (which builds it) and the agent, the HA layer and the services (which consume
it). This module holds its shape; `envrouter.model.documents` builds it from the model.

It is parsed once, here, into typed fields: addresses and networks are `ipaddress` objects,
names are checked against the rules below, and the few rules between fields (a /30 host link,
two different ports, at most three upstreams) are checked on the section they belong to. The
consumers (agent, services, HA layer) take the document as valid and do not check it again; a
value that is not what it claims to be never reaches the kernel or a configuration file. The
JSON shape is unchanged: every typed field is written as the same string.

Version rules: `DOCUMENT_VERSION` is bumped on any incompatible change; consumers refuse a
version they do not know (`check_version`).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    WithJsonSchema,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from envrouter.errors import ValidationError
from envrouter.model import names
from envrouter.model.names import (  # the VIPs' names
    VIP_FAMILIES,
    VIP_MANAGEMENT,
    VIP_MANAGEMENT6,
    VIP_PUBLIC,
    VIP_PUBLIC6,
)

DOCUMENT_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})

BridgeKind = Literal["linux", "ovs"]
MAX_UPSTREAMS = 3

T = TypeVar("T")

# ---------------------------------------------------------------- the rules of the fields
# Names and fixed sets come from the one module of them (envrouter.model.names, stdlib only).
# only characters that may appear in an address: no scope id ('%'), no blanks, no newline
_ADDRESS_CHARS_RE = re.compile(r"^[0-9A-Fa-f:.]+$")
_CIDR_CHARS_RE = re.compile(r"^[0-9A-Fa-f:./]+$")


def _refuse(what: str, value: object) -> PydanticCustomError:
    return PydanticCustomError("envrouter", "not {what}: {value}",
                               {"what": what, "value": repr(value)})


def _parser(what: str, parse: Callable[[str], T], chars: re.Pattern[str],
            cls: type | tuple[type, ...]) -> Callable[[object], T]:
    def check(value: object) -> T:
        if isinstance(value, cls):
            return value  # type: ignore[return-value]
        if not isinstance(value, str) or not chars.match(value):
            raise _refuse(what, value)
        try:
            return parse(value)
        except ValueError:
            raise _refuse(what, value) from None

    return check


def _named(rule: names.NameRule) -> Callable[[object], str]:
    def check(value: object) -> str:
        if not rule.ok(value):
            raise PydanticCustomError("envrouter", "{reason}", {"reason": rule.explain(value)})
        return value  # type: ignore[return-value]

    return check


def _dns_name(value: object) -> str:
    if not names.is_dns_name(value):
        raise _refuse("a DNS name (lower case, no trailing dot)", value)
    return value  # type: ignore[return-value]


def _one_of(choices: tuple[str, ...]) -> Callable[[object], str]:
    def check(value: object) -> str:
        if not names.known(value, choices):
            raise PydanticCustomError("envrouter", "{reason}",
                                      {"reason": names.explain_choice(value, choices)})
        return value  # type: ignore[return-value]

    return check


def _typed(check: Callable[[object], Any]) -> tuple[Any, ...]:
    # written and described as the plain string it always was
    return (PlainValidator(check), PlainSerializer(str, return_type=str),
            WithJsonSchema({"type": "string"}))


def _address(what: str, parse: Callable[[str], Any],
             cls: type | tuple[type, ...] | None = None) -> tuple[Any, ...]:
    """An address type: only the characters of an address, then `parse`; a value of `cls`
    (by default the type `parse` makes) passes as it is."""
    return _typed(_parser(what, parse, _ADDRESS_CHARS_RE, cls or parse))  # type: ignore[arg-type]


def _cidr(what: str, parse: Callable[..., Any],
          cls: type | tuple[type, ...] | None = None) -> tuple[Any, ...]:
    """A network type: written as a CIDR (with its '/'), no host bits (`parse(text,
    strict=True)`)."""
    def strict(text: str) -> Any:
        if "/" not in text:
            raise ValueError(text)
        return parse(text, strict=True)

    return _typed(_parser(what, strict, _CIDR_CHARS_RE, cls or parse))  # type: ignore[arg-type]


_AnyAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_AnyNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

IPv4Address = Annotated[ipaddress.IPv4Address, *_address("an IPv4 address", ipaddress.IPv4Address)]
IPv4Network = Annotated[ipaddress.IPv4Network,
                        *_cidr("an IPv4 network (CIDR, no host bits)", ipaddress.IPv4Network)]
IPv6Address = Annotated[ipaddress.IPv6Address, *_address("an IPv6 address", ipaddress.IPv6Address)]
IPv6Network = Annotated[ipaddress.IPv6Network,
                        *_cidr("an IPv6 network (CIDR, no host bits)", ipaddress.IPv6Network)]
IPAddress = Annotated[_AnyAddress, *_address("an IP address", ipaddress.ip_address,
                                             (ipaddress.IPv4Address, ipaddress.IPv6Address))]
IPNetwork = Annotated[_AnyNetwork, *_cidr("a network (CIDR, no host bits)", ipaddress.ip_network,
                                          (ipaddress.IPv4Network, ipaddress.IPv6Network))]
_STRING = WithJsonSchema({"type": "string"})
Name = Annotated[str, _STRING, PlainValidator(_named(names.NETWORK_NAME))]
EnvironmentName = Annotated[str, _STRING, PlainValidator(_named(names.ENVIRONMENT_NAME))]
InterfaceName = Annotated[str, _STRING, PlainValidator(_named(names.INTERFACE_NAME))]
NamespaceName = Annotated[str, _STRING, PlainValidator(_named(names.NAMESPACE_NAME))]
DnsName = Annotated[str, _STRING, PlainValidator(_dns_name)]
NetworkRole = Annotated[str, _STRING, PlainValidator(_one_of(names.NETWORK_ROLES))]
NodeRole = Annotated[str, _STRING, PlainValidator(_one_of(names.NODE_ROLES))]
VipName = Annotated[str, _STRING, PlainValidator(_one_of(tuple(VIP_FAMILIES)))]


def _address_or_name(value: object) -> str:
    """An NTP server: an IP address (written canonically) or a DNS name."""
    if isinstance(value, str) and _ADDRESS_CHARS_RE.match(value) and (
        ":" in value or re.match(r"^[0-9.]+$", value)
    ):
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise _refuse("an IP address", value) from None
    if names.is_dns_name(value):
        return value  # type: ignore[return-value]
    raise _refuse("an IP address or a DNS name", value)


AddressOrName = Annotated[str, _STRING, PlainValidator(_address_or_name)]


def _upstreams(values: list[T]) -> list[T]:
    if len(values) > MAX_UPSTREAMS:
        raise PydanticCustomError("envrouter", "at most {n} entries, got {got}",
                                  {"n": MAX_UPSTREAMS, "got": len(values)})
    if len(set(values)) != len(values):
        raise PydanticCustomError("envrouter", "an entry appears twice", {})
    return values


UpstreamAddresses = Annotated[list[IPAddress], AfterValidator(_upstreams)]
UpstreamServers = Annotated[list[AddressOrName], AfterValidator(_upstreams)]


def _prefixlen(maximum: int) -> Callable[[int], int]:
    def check(value: int) -> int:
        if not 0 <= value <= maximum:
            raise PydanticCustomError("envrouter", "not a prefix length 0..{m}: {v}",
                                      {"m": maximum, "v": value})
        return value

    return check


PrefixLen = Annotated[int, AfterValidator(_prefixlen(128))]
IPv4PrefixLen = Annotated[int, AfterValidator(_prefixlen(32))]


@functools.cache
def _adapter(kind: Any) -> TypeAdapter:
    return TypeAdapter(kind)


def parse_value(kind: Any, obj: str, field: str, value: object) -> Any:
    """A value from outside a document (an OCF parameter, a renderer's option) checked with
    the same rule as the document's field of that type; ValidationError names obj and field."""
    from pydantic import ValidationError as PydanticError

    try:
        return _adapter(kind).validate_python(value)
    except PydanticError as exc:
        raise ValidationError(obj, field, exc.errors()[0]["msg"]) from None


# ---------------------------------------------------------------- the document


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # Fields added after version 1 that are left out of the JSON when null: an IPv4-only
    # document stays byte for byte what it was (same serial, readable by an older agent),
    # and an older agent refuses a document that carries IPv6 (extra="forbid") instead of
    # ignoring it.
    OMIT_WHEN_NULL: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for key in self.OMIT_WHEN_NULL:
            if key in data and data[key] is None:
                del data[key]
        return data


class DocEnvironment(_Doc):
    id: int
    name: EnvironmentName
    ha: bool


class DocNode(_Doc):
    hostname: DnsName
    roles: list[NodeRole]


class DocNetwork(_Doc):
    """One network the node is on, with the node's own address on it."""

    name: Name
    role: NetworkRole = Field(description="admin | management | public | storage | other")
    cidr: IPNetwork
    gateway: IPAddress | None
    vlan: int | None
    bridge: InterfaceName = Field(description="the node's bridge for this network, e.g. br-mgmt")
    address: IPAddress = Field(description="the node's own address on this network")
    prefixlen: PrefixLen
    cidr6: IPv6Network | None = Field(None, description="the IPv6 prefix beside cidr, if any")
    gateway6: IPv6Address | None = None
    address6: IPv6Address | None = Field(
        None, description="the node's own IPv6 address on this network"
    )
    prefixlen6: PrefixLen | None = None

    OMIT_WHEN_NULL: ClassVar[frozenset[str]] = frozenset(
        {"cidr6", "gateway6", "address6", "prefixlen6"}
    )

    @model_validator(mode="after")
    def _families(self) -> DocNetwork:
        if (self.address6 is None) != (self.cidr6 is None) or (
            (self.prefixlen6 is None) != (self.cidr6 is None)
        ):
            raise PydanticCustomError(
                "envrouter", "cidr6, address6 and prefixlen6 come together", {}
            )
        if self.gateway6 is not None and self.cidr6 is None:
            raise PydanticCustomError("envrouter", "gateway6: the network has no cidr6", {})
        return self


class DocHost(_Doc):
    """Where the node itself sends its traffic, names and time requests."""

    gateway: IPAddress | None = Field(description="the node's default gateway")
    gateway_source: Literal["vrouter", "admin", "public", "none"]
    dns_servers: list[IPAddress]
    ntp_servers: list[AddressOrName]
    search_domain: DnsName | None
    gateway6: IPv6Address | None = Field(
        None,
        description="the node's IPv6 default gateway (the vrouter6 VIP, or the public "
        "network's gateway6 on a node with a public address); only while the vrouter serves "
        "IPv6",
    )

    OMIT_WHEN_NULL: ClassVar[frozenset[str]] = frozenset({"gateway6"})


class DocVip(_Doc):
    name: VipName = Field(description="vrouter | vrouter_pub | vrouter6 | vrouter_pub6")
    network: Name = Field(description="name of the network the VIP lives on")
    role: NetworkRole = Field(description="role of that network: management | public")
    namespace: NamespaceName
    address: IPAddress = Field(description="IPv4 for vrouter and vrouter_pub, IPv6 for the others")
    prefixlen: PrefixLen
    user_defined: bool

    @model_validator(mode="after")
    def _family(self) -> DocVip:
        family = VIP_FAMILIES[self.name]
        if self.address.version != family:
            raise PydanticCustomError("envrouter", "address: {a} is not an IPv{f} address",
                                      {"a": str(self.address), "f": family})
        if self.prefixlen > self.address.max_prefixlen:
            raise PydanticCustomError("envrouter", "prefixlen: {p} is too long for IPv{f}",
                                      {"p": self.prefixlen, "f": family})
        return self


class DocPeer(_Doc):
    hostname: DnsName
    management_address: IPv4Address = Field(description="the peer controller's own host address")
    namespace_address: IPv4Address = Field(
        description="the peer's vrouter namespace address on management (conntrackd sync)"
    )


class DocVrouter(_Doc):
    """Present on controllers when the vrouter is enabled."""

    namespace: NamespaceName = "vrouter"
    bridge_kind: BridgeKind = "linux"
    management_bridge: InterfaceName
    public_bridge: InterfaceName
    management_port: InterfaceName = Field(
        "vr-mgmt", description="the namespace's port on management"
    )
    public_port: InterfaceName = Field("vr-pub", description="the namespace's port on public")
    management_cidr: IPv4Network = Field(description="clients allowed to use NAT, DNS and NTP")
    public_cidr: IPv4Network
    public_gateway: IPv4Address
    vip_management: DocVip
    vip_public: DocVip
    host_link_cidr: IPv4Network = Field(
        description="a /30: the host end takes the first address, the namespace the second"
    )
    routes: list[IPv4Network] = Field(
        default_factory=list,
        description="CIDRs of the environment's other networks, routed from the namespace "
        "via the host link",
    )
    upstream_dns: UpstreamAddresses
    upstream_ntp: UpstreamServers
    domain: DnsName | None
    nat: bool
    conntrack_sync: bool
    self_management_address: IPv4Address = Field(description="this controller's host address")
    self_public_address: IPv4Address = Field(
        description="this controller's host public address"
    )
    namespace_management_address: IPv4Address = Field(
        description="this controller's vrouter namespace address on management, allocated by "
        "IPAM per controller (never derived from another address); conntrackd syncs from it"
    )
    peers: list[DocPeer] = Field(description="the other controllers")
    # IPv6 (settings ipv6: true): all five or none
    management_cidr6: IPv6Network | None = Field(
        None, description="IPv6 clients allowed to use the vrouter"
    )
    public_cidr6: IPv6Network | None = None
    public_gateway6: IPv6Address | None = None
    vip_management6: DocVip | None = None
    vip_public6: DocVip | None = None
    ipv6_egress: Literal["nat66", "routed"] | None = Field(
        None, description="nat66: SNAT to vip_public6; routed: no NAT"
    )

    OMIT_WHEN_NULL: ClassVar[frozenset[str]] = frozenset(
        {"management_cidr6", "public_cidr6", "public_gateway6", "vip_management6", "vip_public6",
         "ipv6_egress"}
    )

    @model_validator(mode="after")
    def _between_fields(self) -> DocVrouter:
        v6 = (self.management_cidr6, self.public_cidr6, self.public_gateway6,
              self.vip_management6, self.vip_public6, self.ipv6_egress)
        if any(x is not None for x in v6) and any(x is None for x in v6):
            raise PydanticCustomError(
                "envrouter", "management_cidr6, public_cidr6, public_gateway6, vip_management6, "
                "vip_public6 and ipv6_egress come together", {})
        for field, vip, name in (("vip_management", self.vip_management, VIP_MANAGEMENT),
                                 ("vip_public", self.vip_public, VIP_PUBLIC),
                                 ("vip_management6", self.vip_management6, VIP_MANAGEMENT6),
                                 ("vip_public6", self.vip_public6, VIP_PUBLIC6)):
            if vip is not None and vip.name != name:
                raise PydanticCustomError("envrouter", "{f}: the VIP is {n!r}, not {v!r}",
                                          {"f": field, "n": name, "v": vip.name})
        if self.host_link_cidr.prefixlen != 30:
            raise PydanticCustomError("envrouter", "host_link_cidr: {v} is not a /30",
                                      {"v": str(self.host_link_cidr)})
        if self.management_port == self.public_port:
            raise PydanticCustomError("envrouter", "public_port: is the same as management_port",
                                      {})
        return self

    @property
    def host_link_addresses(self) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
        """(host end, namespace end) of the /30 host link."""
        first, second = self.host_link_cidr.hosts()
        return first, second


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
