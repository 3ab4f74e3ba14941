"""Domain rules: every write path runs these before touching the database.

Each rule raises `ValidationError(obj, field, reason)` naming the object and the field at fault,
and returns the value normalised (canonical address text, lower-case names).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import Any

from envrouter.errors import ValidationError
from envrouter.model import names

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

NETWORK_ROLES = names.NETWORK_ROLES
SINGLE_ROLES = names.SINGLE_NETWORK_ROLES
NODE_ROLES = names.NODE_ROLES
NODE_STATUSES = names.NODE_STATUSES
DEFAULT_BRIDGES = {
    "admin": "br-fw-admin",
    "management": "br-mgmt",
    "public": "br-ex",
    "storage": "br-storage",
}
BRIDGE_KINDS = names.BRIDGE_KINDS
MAX_UPSTREAM = 3

_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Only characters that may appear in an IPv4 or IPv6 address: no scope id ('%'), no blanks.
_ADDRESS_CHARS_RE = re.compile(r"^[0-9A-Fa-f:.]+$")


def _text(obj: str, field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError(obj, field, f"expected a string, got {type(value).__name__}")
    return value


def _named(obj: str, field: str, value: Any, rule: names.NameRule) -> str:
    """A string that `rule` (envrouter.model.names) accepts."""
    text = _text(obj, field, value)
    if not rule.ok(text):
        raise ValidationError(obj, field, rule.explain(text))
    return text


def parse_address(obj: str, field: str, value: Any) -> IPAddress:
    text = _text(obj, field, value)
    if not _ADDRESS_CHARS_RE.match(text):
        raise ValidationError(obj, field, f"{text!r} is not an IP address")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValidationError(obj, field, f"{text!r} is not an IP address") from None


def parse_cidr(obj: str, field: str, value: Any) -> IPNetwork:
    text = _text(obj, field, value)
    if "/" not in text or not re.match(r"^[0-9A-Fa-f:./]+$", text):
        raise ValidationError(obj, field, f"{text!r} is not a CIDR such as 192.168.0.0/24")
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ValidationError(obj, field, f"{text!r} is not a network CIDR: {exc}") from None
    if net.num_addresses < 4:
        raise ValidationError(obj, field, f"{text!r} is too small: at least a /30 (/126)")
    return net


def excluded_addresses(net: IPNetwork, gateway: str | None) -> set[int]:
    """Addresses never handed out: the network and broadcast addresses and the gateway."""
    out = {int(net.network_address)}
    if net.version == 4:
        out.add(int(net.broadcast_address))
    if gateway:
        out.add(int(ipaddress.ip_address(gateway)))
    return out


def validate_name(obj: str, field: str, value: Any) -> str:
    return _named(obj, field, value, names.NETWORK_NAME)


def validate_environment_name(value: Any) -> str:
    return _named("environment", "name", value, names.ENVIRONMENT_NAME)


def validate_dns_name(obj: str, field: str, value: Any) -> str:
    """An RFC 1123 host or domain name (lower-cased, no trailing dot, no all-numeric TLD)."""
    text = _text(obj, field, value)
    name = text.lower()
    if not name or len(name) > 253:
        raise ValidationError(obj, field, f"{text!r} is not a valid DNS name (1-253 characters)")
    labels = name.split(".")
    for label in labels:
        if not _LABEL_RE.match(label):
            raise ValidationError(
                obj,
                field,
                f"{text!r} is not a valid DNS name: each label is 1-63 of a-z, 0-9, '-', "
                "not starting or ending with '-'",
            )
    if not names.is_dns_name(name):
        raise ValidationError(obj, field, f"{text!r} is neither an IP address nor a DNS name")
    return name


def validate_hostname(value: Any) -> str:
    return validate_dns_name("node", "hostname", value)


def validate_roles(obj: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise ValidationError(obj, "roles", "expected a list of role names")
    out: list[str] = []
    for role in value:
        if not names.known(role, NODE_ROLES):
            raise ValidationError(obj, "roles", names.explain_choice(role, NODE_ROLES))
        if role not in out:
            out.append(role)
    return tuple(out)


def validate_status(obj: str, value: Any) -> str:
    if not names.known(value, NODE_STATUSES):
        raise ValidationError(obj, "status", names.explain_choice(value, NODE_STATUSES))
    return str(value)


def validate_bridge(obj: str, value: Any) -> str:
    return _named(obj, "bridge", value, names.INTERFACE_NAME)


def validate_vlan(obj: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4094:
        raise ValidationError(obj, "vlan", f"{value!r}: a VLAN id is an integer 1-4094")
    return value


def validate_network(
    *,
    name: Any,
    role: Any,
    cidr: Any,
    gateway: Any,
    vlan: Any,
    bridge: Any,
    ranges: Sequence[tuple[Any, Any]],
    cidr6: Any = None,
    gateway6: Any = None,
    ranges6: Sequence[tuple[Any, Any]] = (),
) -> dict[str, Any]:
    """A network's own rules: `cidr` is the IPv4 prefix and `cidr6` the optional IPv6 one
    beside it (dual stack); each family's gateway and ranges lie inside its prefix, and ranges
    do not overlap. Returns the normalised fields."""
    name = validate_name("network", "name", name)
    obj = f"network {name!r}"
    if not names.known(role, NETWORK_ROLES):
        raise ValidationError(obj, "role", names.explain_choice(role, NETWORK_ROLES))
    net = parse_cidr(obj, "cidr", cidr)
    if net.version != 4:
        raise ValidationError(
            obj, "cidr", f"{net} is IPv6: cidr is the IPv4 prefix; give an IPv6 prefix as cidr6"
        )
    gw_text = _gateway(obj, "gateway", net, gateway)
    if bridge is None or bridge == "":
        bridge = DEFAULT_BRIDGES.get(role, f"br-{name}")
    bridge = validate_bridge(obj, bridge)
    vlan = validate_vlan(obj, vlan)
    norm_ranges = _ranges(obj, "ranges", net, ranges)
    net6_text: str | None = None
    gw6_text: str | None = None
    norm_ranges6: list[tuple[str, str]] = []
    if cidr6 is not None and cidr6 != "":
        net6 = parse_cidr(obj, "cidr6", cidr6)
        if net6.version != 6:
            raise ValidationError(obj, "cidr6", f"{net6} is not an IPv6 prefix")
        net6_text = str(net6)
        gw6_text = _gateway(obj, "gateway6", net6, gateway6)
        norm_ranges6 = _ranges(obj, "ranges6", net6, ranges6)
    else:
        if gateway6 is not None and gateway6 != "":
            raise ValidationError(obj, "gateway6", "the network has no IPv6 prefix (cidr6)")
        if ranges6:
            raise ValidationError(obj, "ranges6", "the network has no IPv6 prefix (cidr6)")
    return {
        "name": name,
        "role": role,
        "cidr": str(net),
        "gateway": gw_text,
        "vlan": vlan,
        "bridge": bridge,
        "ranges": norm_ranges,
        "cidr6": net6_text,
        "gateway6": gw6_text,
        "ranges6": norm_ranges6,
    }


def _gateway(obj: str, field: str, net: IPNetwork, gateway: Any) -> str | None:
    if gateway is None or gateway == "":
        return None
    gw = parse_address(obj, field, gateway)
    if gw.version != net.version:
        raise ValidationError(obj, field, f"{gw} is not of the family of {net}")
    if gw not in net or int(gw) in excluded_addresses(net, None):
        raise ValidationError(obj, field, f"{gw} is not a host address inside {net}")
    return str(gw)


def _ranges(
    obj: str, name: str, net: IPNetwork, ranges: Sequence[tuple[Any, Any]]
) -> list[tuple[str, str]]:
    norm_ranges: list[tuple[str, str]] = []
    spans: list[tuple[int, int]] = []
    for i, pair in enumerate(ranges):
        field = f"{name}[{i}]"
        start = parse_address(obj, f"{field}.start", pair[0])
        end = parse_address(obj, f"{field}.end", pair[1])
        for which, addr in (("start", start), ("end", end)):
            if addr.version != net.version:
                raise ValidationError(
                    obj, f"{field}.{which}", f"{addr} is not of the family of {net}"
                )
            if addr not in net:
                raise ValidationError(obj, f"{field}.{which}", f"{addr} is outside {net}")
        if int(start) > int(end):
            raise ValidationError(obj, field, f"start {start} is after end {end}")
        for j, (s, e) in enumerate(spans):
            if int(start) <= e and s <= int(end):
                raise ValidationError(obj, field, f"{start}-{end} overlaps {name}[{j}]")
        spans.append((int(start), int(end)))
        norm_ranges.append((str(start), str(end)))
    return norm_ranges


def check_networks_disjoint(
    obj: str, cidr: str, others: Iterable[tuple[str, str | None]], field: str = "cidr"
) -> None:
    """Networks of one environment do not overlap (others: (name, cidr or cidr6), either
    family; a prefix only meets prefixes of its own family)."""
    net = ipaddress.ip_network(cidr)
    for other_name, other_cidr in others:
        if not other_cidr:
            continue
        other = ipaddress.ip_network(other_cidr)
        if other.version == net.version and net.overlaps(other):
            raise ValidationError(obj, field, f"{net} overlaps network {other_name!r} ({other})")


def validate_upstream_list(field: str, value: Any, *, allow_names: bool) -> list[str]:
    """dns_list (addresses only) or ntp_list (addresses or RFC 1123 host names): at most 3,
    no duplicates; anything else -- a blank, a newline, a directive -- is refused here so that
    it can never reach a configuration file."""
    obj = "vrouter settings"
    if not isinstance(value, (list, tuple)):
        raise ValidationError(obj, field, "expected a list")
    if len(value) > MAX_UPSTREAM:
        raise ValidationError(obj, field, f"at most {MAX_UPSTREAM} entries, got {len(value)}")
    out: list[str] = []
    for entry in value:
        if not isinstance(entry, str):
            raise ValidationError(obj, field, f"{entry!r} is not a string")
        if _ADDRESS_CHARS_RE.match(entry) and (
            ":" in entry or not allow_names or _looks_ipv4(entry)
        ):
            norm = str(check_upstream_address(obj, field, parse_address(obj, field, entry)))
        elif allow_names:
            norm = validate_dns_name(obj, field, entry)
        else:
            raise ValidationError(obj, field, f"{entry!r} is not an IP address")
        if norm in out:
            raise ValidationError(obj, field, f"{entry!r} is listed twice")
        out.append(norm)
    return out


def check_upstream_address(obj: str, field: str, addr: IPAddress) -> IPAddress:
    """An upstream server is a unicast address a packet can be routed to: not unspecified,
    loopback, link-local, multicast, broadcast or reserved (private addresses are fine: the
    customer's own servers)."""
    why = None
    if addr.is_unspecified:
        why = "the unspecified address"
    elif addr.is_loopback:
        why = "a loopback address"
    elif addr.is_multicast:
        why = "a multicast address"
    elif addr.version == 4 and addr == ipaddress.IPv4Address("255.255.255.255"):
        why = "the broadcast address"
    elif addr.is_link_local:
        why = "a link-local address (not routable)"
    elif addr.is_reserved or (addr.version == 4 and addr in ipaddress.ip_network("0.0.0.0/8")):
        why = "a reserved address (not routable)"
    if why:
        raise ValidationError(obj, field, f"{addr} is {why}: give a unicast, routable server")
    return addr


def _looks_ipv4(text: str) -> bool:
    return bool(re.match(r"^[0-9.]+$", text))


def validate_domain(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return validate_dns_name("vrouter settings", "domain", value)


def validate_host_link_cidr(value: Any) -> str:
    obj = "vrouter settings"
    net = parse_cidr(obj, "host_link_cidr", value)
    if net.version != 4 or net.prefixlen != 30:
        raise ValidationError(obj, "host_link_cidr", f"{net} is not an IPv4 /30")
    return str(net)


def validate_bridge_kind(value: Any) -> str:
    if not names.known(value, BRIDGE_KINDS):
        raise ValidationError(
            "vrouter settings", "bridge_kind", names.explain_choice(value, BRIDGE_KINDS)
        )
    return str(value)


def validate_namespace(obj: str, value: Any) -> str:
    return _named(obj, "namespace", value, names.NAMESPACE_NAME)


def validate_bool(obj: str, field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(obj, field, f"{value!r} is not true or false")
    return value


def vrouter_requirements(
    enabled: bool,
    networks: Iterable[tuple[Any, ...]],
    *,
    ipv6: bool = False,
    networks6: Iterable[tuple[str, str, str | None, str | None]] = (),
) -> list[tuple[str, str, str]]:
    """What an enabled vrouter needs of the environment's networks (name, role, gateway[, cidr]):
    a management network and a public network with a gateway (the namespace's default route),
    both with an IPv4 prefix. With `ipv6`, also (networks6: name, role, cidr6, gateway6) an IPv6
    prefix on both and an IPv6 gateway on the public one.
    Returns (object, field, reason) for each need not met, naming where the cause lies."""
    if not enabled:
        return []
    by_role = {n[1]: n for n in networks}
    out: list[tuple[str, str, str]] = []
    for role in ("management", "public"):
        if role not in by_role:
            out.append(("environment", "networks", f"the vrouter needs a {role} network"))
            continue
        net = by_role[role]
        # a network stored before cidr was IPv4 only
        if len(net) > 3 and net[3] and ipaddress.ip_network(net[3]).version != 4:
            out.append(
                (
                    f"network {net[0]!r}",
                    "cidr",
                    f"the vrouter needs an IPv4 prefix on the {role} network {net[0]!r} "
                    "(an IPv6 prefix goes in cidr6)",
                )
            )
    if "public" in by_role and not by_role["public"][2]:
        name = by_role["public"][0]
        out.append(
            (
                f"network {name!r}",
                "gateway",
                f"the vrouter needs a gateway on the public network {name!r}",
            )
        )
    if ipv6:
        by_role6 = {role: (name, cidr6, gw6) for name, role, cidr6, gw6 in networks6}
        for role in ("management", "public"):
            if role not in by_role6:
                continue  # reported above
            name, cidr6, gw6 = by_role6[role]
            if not cidr6:
                out.append(
                    (
                        f"network {name!r}",
                        "cidr6",
                        f"the vrouter serves IPv6 (ipv6: true) and needs an IPv6 prefix on the "
                        f"{role} network {name!r}",
                    )
                )
            elif role == "public" and not gw6:
                out.append(
                    (
                        f"network {name!r}",
                        "gateway6",
                        f"the vrouter serves IPv6 (ipv6: true) and needs an IPv6 gateway on "
                        f"the public network {name!r}",
                    )
                )
    return out


def validate_ipv6_egress(value: Any) -> str:
    if not names.known(value, names.IPV6_EGRESS):
        raise ValidationError(
            "vrouter settings", "ipv6_egress", names.explain_choice(value, names.IPV6_EGRESS)
        )
    return str(value)


def validate_ipv6(value: Any) -> bool:
    """The vrouter serves IPv6 too; what it needs (an IPv6 prefix on management and public, a
    public IPv6 gateway) is checked with the networks (`vrouter_requirements`)."""
    return validate_bool("vrouter settings", "ipv6", value)


def node_address_problems(
    hostname: str, roles: Sequence[str], address_roles: Iterable[tuple[str, str]]
) -> list[tuple[str, str, str]]:
    """A node's addresses against its roles (address_roles: (network name, network role) of
    each host address): only a controller has an address on the public network."""
    if names.CONTROLLER in roles:
        return []
    return [
        (
            f"node {hostname!r}",
            f"addresses.{net_name}",
            f"only controllers have an address on the public network {net_name!r}",
        )
        for net_name, role in address_roles
        if role == "public"
    ]
