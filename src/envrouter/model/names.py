"""Names and fixed sets, in one place: every layer (model, API, document, agent, services)
imports them from here instead of writing its own pattern.

Pure and stdlib-only, so that importing it costs nothing. Each rule is a `NameRule` with
`ok(value)` (a bool, for a layer that raises its own error type) and `explain(value)` (the
sentence to put in that error).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The kernel route protocols (rtm_protocol) of envrouter's routes: what each owner may replace
# or remove, and never anybody else's.
RTPROT_ENVROUTER = 77  # routes the agent owns
# the HA layer's VIP agent: the public default routes, the IPv6 prefixes a stop keeps a while
RTPROT_ENVROUTER_VIP = 78

# Network roles: one network per role except "other" (see SINGLE_NETWORK_ROLES).
NETWORK_ROLES: tuple[str, ...] = ("admin", "management", "public", "storage", "other")
SINGLE_NETWORK_ROLES = frozenset({"admin", "management", "public", "storage"})

# Node roles. "controller" is the one the vrouter cares about (the nodes on the public network);
# the others are the usual roles of the cluster's nodes and change nothing but their name.
CONTROLLER = "controller"
NODE_ROLES: tuple[str, ...] = (
    CONTROLLER,
    "compute",
    "storage",
    "ceph-osd",
    "cinder",
    "mongo",
    "base-os",
)

# Node lifecycle as the deployment tool reports it; informational for envrouter.
NODE_STATUSES: tuple[str, ...] = (
    "discovered",
    "provisioning",
    "provisioned",
    "deploying",
    "ready",
    "error",
    "offline",
    "removing",
)
DEFAULT_NODE_STATUS = "discovered"

BRIDGE_KINDS: tuple[str, ...] = ("linux", "ovs")
# How the nodes' IPv6 traffic leaves: SNAT to the public IPv6 VIP (the default: the nodes'
# addresses may not be routable upstream), or routed (the upstream routes the management
# prefix to the public IPv6 VIP).
IPV6_EGRESS: tuple[str, ...] = ("nat66", "routed")


@dataclass(frozen=True)
class NameRule:
    what: str  # "an interface name"
    pattern: re.Pattern[str]
    description: str  # what the pattern allows, in words

    def ok(self, value: object) -> bool:
        return isinstance(value, str) and self.pattern.fullmatch(value) is not None

    def explain(self, value: object) -> str:
        return f"{value!r} is not {self.what}: {self.description}"


ENVIRONMENT_NAME = NameRule(
    "an environment name",
    re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}"),
    "1-63 characters A-Z, a-z, 0-9, '_', '.', '-', starting with a letter or digit",
)
NETWORK_NAME = NameRule(
    "a network name",
    re.compile(r"[a-z][a-z0-9_-]{0,31}"),
    "1-32 characters a-z, 0-9, '_' or '-', starting with a letter",
)
# Linux allows 15 bytes, no '/', no blank; we also refuse a leading '.' or '-'.
INTERFACE_NAME = NameRule(
    "an interface name",
    re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}"),
    "1-15 characters A-Z, a-z, 0-9, '_', '.', '-', starting with a letter or digit",
)
NAMESPACE_NAME = NameRule(
    "a namespace name",
    re.compile(r"[a-z0-9_-]{1,15}"),
    "1-15 characters a-z, 0-9, '_', '-'",
)
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def is_dns_name(value: object) -> bool:
    """An RFC 1123 host or domain name in canonical form: lower case, no trailing dot, labels of
    1-63 characters, at most 253 in all, the last label not all digits (that is an address)."""
    if not isinstance(value, str) or not 1 <= len(value) <= 253:
        return False
    labels = value.split(".")
    return all(_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit()


def known(value: object, choices: tuple[str, ...]) -> bool:
    return isinstance(value, str) and value in choices


def explain_choice(value: object, choices: tuple[str, ...]) -> str:
    return f"{value!r} is unknown; known: {', '.join(choices)}"


# The VIPs' names (the model's entities and the document import them from here).
VIP_MANAGEMENT = "vrouter"
VIP_PUBLIC = "vrouter_pub"
# The IPv6 twins, on the IPv6 prefix (cidr6) of the same two networks.
VIP_MANAGEMENT6 = "vrouter6"
VIP_PUBLIC6 = "vrouter_pub6"
# name -> role of the network it lives on
VIP_NETWORK_ROLES: dict[str, str] = {
    VIP_MANAGEMENT: "management",
    VIP_PUBLIC: "public",
    VIP_MANAGEMENT6: "management",
    VIP_PUBLIC6: "public",
}
# name -> address family
VIP_FAMILIES: dict[str, int] = {
    VIP_MANAGEMENT: 4,
    VIP_PUBLIC: 4,
    VIP_MANAGEMENT6: 6,
    VIP_PUBLIC6: 6,
}
