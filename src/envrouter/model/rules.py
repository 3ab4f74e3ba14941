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

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

NETWORK_ROLES = ("admin", "management", "public", "storage", "other")
SINGLE_ROLES = frozenset({"admin", "management", "public", "storage"})
DEFAULT_BRIDGES = {
    "admin": "br-fw-admin",
    "management": "br-mgmt",
    "public": "br-ex",
    "storage": "br-storage",
}
BRIDGE_KINDS = ("linux", "ovs")
MAX_UPSTREAM = 3

_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_IFNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
_ROLE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_NAMESPACE_RE = re.compile(r"^[a-z0-9_-]{1,15}$")
# Only characters that may appear in an IPv4 or IPv6 address: no scope id ('%'), no blanks.
_ADDRESS_CHARS_RE = re.compile(r"^[0-9A-Fa-f:.]+$")


def _text(obj: str, field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError(obj, field, f"expected a string, got {type(value).__name__}")
    return value


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
    text = _text(obj, field, value)
    if not _NAME_RE.match(text):
        raise ValidationError(
            obj,
            field,
            f"{text!r}: use 1-32 characters a-z, 0-9, '_' or '-', starting with a letter",
        )
    return text


def validate_environment_name(value: Any) -> str:
    text = _text("environment", "name", value)
    if not _ENV_NAME_RE.match(text):
        raise ValidationError(
            "environment", "name", f"{text!r}: use 1-63 characters A-Z, a-z, 0-9, '_', '.', '-'"
        )
    return text


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
    if labels[-1].isdigit():
        raise ValidationError(obj, field, f"{text!r} is neither an IP address nor a DNS name")
    return name


def validate_hostname(value: Any) -> str:
    return validate_dns_name("node", "hostname", value)


def validate_roles(obj: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise ValidationError(obj, "roles", "expected a list of role names")
    out: list[str] = []
    for role in value:
        if not isinstance(role, str) or not _ROLE_RE.match(role):
            raise ValidationError(obj, "roles", f"{role!r} is not a role name (a-z, 0-9, _ -)")
        if role not in out:
            out.append(role)
    return tuple(out)


def validate_status(obj: str, value: Any) -> str:
    text = _text(obj, "status", value)
    if not _ROLE_RE.match(text):
        raise ValidationError(obj, "status", f"{text!r} is not a status name (a-z, 0-9, _ -)")
    return text


def validate_bridge(obj: str, value: Any) -> str:
    text = _text(obj, "bridge", value)
    if not _IFNAME_RE.match(text):
        raise ValidationError(
            obj, "bridge", f"{text!r} is not an interface name (1-15 of A-Z a-z 0-9 _ . -)"
        )
    return text


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
) -> dict[str, Any]:
    """A network's own rules: family matches, gateway and ranges inside the CIDR, ranges do not
    overlap. Returns the normalised fields."""
    name = validate_name("network", "name", name)
    obj = f"network {name!r}"
    if role not in NETWORK_ROLES:
        raise ValidationError(obj, "role", f"{role!r}: one of {', '.join(NETWORK_ROLES)}")
    net = parse_cidr(obj, "cidr", cidr)
    gw_text: str | None = None
    if gateway is not None and gateway != "":
        gw = parse_address(obj, "gateway", gateway)
        if gw.version != net.version:
            raise ValidationError(obj, "gateway", f"{gw} is not of the family of {net}")
        if gw not in net or int(gw) in excluded_addresses(net, None):
            raise ValidationError(obj, "gateway", f"{gw} is not a host address inside {net}")
        gw_text = str(gw)
    if bridge is None or bridge == "":
        bridge = DEFAULT_BRIDGES.get(role, f"br-{name}")
    bridge = validate_bridge(obj, bridge)
    vlan = validate_vlan(obj, vlan)
    norm_ranges: list[tuple[str, str]] = []
    spans: list[tuple[int, int]] = []
    for i, pair in enumerate(ranges):
        field = f"ranges[{i}]"
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
                raise ValidationError(obj, field, f"{start}-{end} overlaps ranges[{j}]")
        spans.append((int(start), int(end)))
        norm_ranges.append((str(start), str(end)))
    return {
        "name": name,
        "role": role,
        "cidr": str(net),
        "gateway": gw_text,
        "vlan": vlan,
        "bridge": bridge,
        "ranges": norm_ranges,
    }


def check_networks_disjoint(obj: str, cidr: str, others: Iterable[tuple[str, str]]) -> None:
    """Networks of one environment do not overlap (others: (name, cidr))."""
    net = ipaddress.ip_network(cidr)
    for other_name, other_cidr in others:
        other = ipaddress.ip_network(other_cidr)
        if other.version == net.version and net.overlaps(other):
            raise ValidationError(obj, "cidr", f"{net} overlaps network {other_name!r} ({other})")


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
            norm = str(parse_address(obj, field, entry))
        elif allow_names:
            norm = validate_dns_name(obj, field, entry)
        else:
            raise ValidationError(obj, field, f"{entry!r} is not an IP address")
        if norm in out:
            raise ValidationError(obj, field, f"{entry!r} is listed twice")
        out.append(norm)
    return out


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
    if value not in BRIDGE_KINDS:
        raise ValidationError("vrouter settings", "bridge_kind", f"{value!r}: linux or ovs")
    return str(value)


def validate_namespace(obj: str, value: Any) -> str:
    text = _text(obj, "namespace", value)
    if not _NAMESPACE_RE.match(text):
        raise ValidationError(obj, "namespace", f"{text!r}: 1-15 characters a-z, 0-9, '_', '-'")
    return text


def validate_bool(obj: str, field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(obj, field, f"{value!r} is not true or false")
    return value
