"""Checks on values that end up in daemon configuration files (pure).

The API refuses bad settings first; these checks are the last line before a file is written:
a value that is not what it claims to be (an address, a host name, a domain) never reaches a
configuration file, so a newline or a directive cannot be smuggled into one.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable

from envrouter.errors import ValidationError

MAX_UPSTREAMS = 3
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOSTNAME_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?$")
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


def _parsed(obj: str, field: str, value: object, parse: Callable[[str], object], what: str) -> str:
    """``value`` in the canonical text form ``parse`` gives it, or a ValidationError."""
    if not isinstance(value, str):
        raise ValidationError(obj, field, f"not {what}: {value!r}")
    try:
        return str(parse(value))
    except ValueError as exc:
        raise ValidationError(obj, field, f"not {what}: {value!r}") from exc


def ipv4_address(obj: str, field: str, value: object) -> str:
    return _parsed(obj, field, value, ipaddress.IPv4Address, "an IPv4 address")


def ip_address(obj: str, field: str, value: object) -> str:
    return _parsed(obj, field, value, ipaddress.ip_address, "an IP address")


def ip_network(obj: str, field: str, value: object) -> str:
    return _parsed(obj, field, value, lambda v: ipaddress.ip_network(v, strict=True), "a CIDR")


def hostname(obj: str, field: str, value: object) -> str:
    if not isinstance(value, str) or not _HOSTNAME_RE.match(value):
        raise ValidationError(obj, field, f"not a host name: {value!r}")
    return value


def address_or_hostname(obj: str, field: str, value: object) -> str:
    try:
        return ip_address(obj, field, value)
    except ValidationError:
        pass
    try:
        return hostname(obj, field, value)
    except ValidationError:
        raise ValidationError(obj, field, f"not an address or host name: {value!r}") from None


def interface_name(obj: str, field: str, value: object) -> str:
    if not isinstance(value, str) or not _IFNAME_RE.match(value) or value in (".", ".."):
        raise ValidationError(obj, field, f"not an interface name: {value!r}")
    return value


def upstream_list(obj: str, field: str, values: list[str], *, hostnames: bool) -> list[str]:
    if len(values) > MAX_UPSTREAMS:
        raise ValidationError(obj, field, f"at most {MAX_UPSTREAMS} entries, got {len(values)}")
    check = address_or_hostname if hostnames else ip_address
    out = [check(obj, f"{field}[{i}]", v) for i, v in enumerate(values)]
    if len(set(out)) != len(out):
        raise ValidationError(obj, field, "an entry appears twice")
    return out


def absolute_path(obj: str, field: str, path: str) -> str:
    """A file path written into a configuration file: absolute, with no white space."""
    if not os.path.isabs(path) or any(c.isspace() for c in path):
        raise ValidationError(obj, field, f"{path!r}: need an absolute path, no spaces")
    return path
