"""Document -> desired state: pure, plain data.

The desired state names every object the agent owns for one node and scope. Namespaces are
referred to by name; HOST ("") is the network namespace the agent runs in (the node itself),
unless the caller maps it to a named one (`host_netns`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from envrouter.agent.nftables.render import (
    NFT_HOST_TABLE,
    NFT_TABLE,
    NftTableSpec,
    render_host_table,
    render_vrouter_table,
    render_vrouter_table6,
)
from envrouter.document import DeploymentDocument, IPAddress
from envrouter.errors import ValidationError

HOST = ""  # the node's own network namespace
OWNER_ALIAS = "envrouter"  # IFLA_IFALIAS of every link the agent creates
FILE_MARKER = "# managed by envrouter agent; changes are overwritten"
HOST_LINK = "vr-host"
NS_LINK = "vr-ns"
FALLBACK_METRIC = 1000
# OVS datapath types whose packets leave the kernel and lose its checksum state: the devices
# that feed them must finish checksums themselves (envrouter.agent.ovs explains)
USERSPACE_DATAPATHS = ("netdev",)
# An IPv6 route added without a metric gets 1024 from the kernel (IP6_RT_PRIO_USER): desired
# IPv6 routes say so, or every observe would differ from the plan.
IPV6_METRIC = 1024

Scope = Literal["all", "vrouter", "host"]
SCOPES = ("all", "vrouter", "host")
AUTO_SCOPE = "auto"  # the CLI's default: see resolve_scope


@dataclass(frozen=True, order=True)
class VethSpec:
    """A veth pair: `name` lives in `ns`, `host_name` in `host_ns` (enslaved to `master`)."""

    ns: str
    name: str
    host_ns: str
    host_name: str
    master: str | None


@dataclass(frozen=True, order=True)
class OvsPortSpec:
    """An OVS internal port created on `bridge` (in host_ns) and moved into `ns`."""

    ns: str
    name: str
    host_ns: str
    bridge: str


@dataclass(frozen=True, order=True)
class AddrSpec:
    ns: str
    dev: str
    address: str
    prefixlen: int


@dataclass(frozen=True, order=True)
class RouteSpec:
    ns: str
    dst: str  # "default" or a CIDR
    gateway: str
    dev: str  # "" = whichever device the kernel picks for the gateway
    metric: int


@dataclass(frozen=True, order=True)
class SysctlSpec:
    ns: str
    key: str  # dotted, e.g. net.ipv4.ip_forward
    value: str


@dataclass(frozen=True, order=True)
class FileSpec:
    path: str  # absolute, already under the root
    content: str


@dataclass(frozen=True, order=True)
class BridgeSpec:
    ns: str
    name: str
    kind: Literal["linux", "ovs"]


@dataclass(frozen=True)
class Universe:
    """What the agent owns for this node and scope, whether or not it should exist now:
    observe looks at these names, plan removes what is owned but not desired."""

    namespaces: tuple[str, ...] = ()
    owned_devs: tuple[tuple[str, str], ...] = ()  # (ns, dev) whose IPv4 addresses we manage
    owned_links: tuple[tuple[str, str], ...] = ()  # (ns, name) of links we create
    route_namespaces: tuple[str, ...] = ()  # namespaces whose RTPROT_ENVROUTER routes we own
    nft_tables: tuple[tuple[str, str, str], ...] = ()  # (ns, family, name)
    files: tuple[str, ...] = ()
    ovs_bridges: tuple[str, ...] = ()


@dataclass(frozen=True)
class DesiredState:
    universe: Universe
    namespace: str | None = None
    bridges: tuple[BridgeSpec, ...] = ()
    veths: tuple[VethSpec, ...] = ()
    ovs_ports: tuple[OvsPortSpec, ...] = ()
    up: tuple[tuple[str, str], ...] = ()  # (ns, dev) to set up, e.g. lo
    addresses: tuple[AddrSpec, ...] = ()
    protected: tuple[AddrSpec, ...] = ()  # HA-managed VIPs: never removed by converge
    routes: tuple[RouteSpec, ...] = ()
    sysctls: tuple[SysctlSpec, ...] = ()
    nft: tuple[NftTableSpec, ...] = ()
    files: tuple[FileSpec, ...] = ()
    extra: dict = field(default_factory=dict, compare=False)


# ---------------------------------------------------------------- files


def render_resolv_conf(servers: list[IPAddress], domain: str | None) -> str:
    lines = [FILE_MARKER]
    if domain:
        lines.append(f"search {domain}")
    lines += [f"nameserver {s}" for s in servers]
    return "\n".join(lines) + "\n"


def render_chrony_client(servers: list[str]) -> str:
    lines = [FILE_MARKER]
    lines += [f"server {s} iburst" for s in servers]
    lines += ["driftfile /var/lib/chrony/chrony.drift", "makestep 1.0 3", "rtcsync"]
    return "\n".join(lines) + "\n"


def host_port(port: str) -> str:
    """The host end of the veth of the namespace's `port` (on a Linux bridge)."""
    return f"{port}-h"


def _under(root: str, path: str) -> str:
    root = root.rstrip("/")
    return f"{root}{path}"


def resolv_conf_path(root: str) -> str:
    return _under(root, "/etc/resolv.conf")


def chrony_client_path(root: str) -> str:
    """The node's chrony client configuration (a change may need a chrony reload)."""
    return _under(root, "/etc/chrony/chrony.conf")


# ---------------------------------------------------------------- the document -> state


def pacemaker_owns_vrouter(doc: DeploymentDocument) -> bool:
    """In an HA environment the vrouter namespace of a controller is the Pacemaker `vrouter`
    clone's: its start converges it, its monitor re-asserts it, its stop removes it. Nothing
    else may bring it back (a controller Pacemaker stopped must stay stopped)."""
    return doc.environment.ha and doc.vrouter is not None


def resolve_scope(doc: DeploymentDocument, scope: str) -> Scope:
    """`auto`: only the node's own part ("host") where Pacemaker owns the vrouter namespace,
    everything ("all") elsewhere. An explicit scope is taken as given (bootstrapping a
    controller before its cluster resources exist, e.g. the upgrade's "deploy the vrouter")."""
    if scope == AUTO_SCOPE:
        return "host" if pacemaker_owns_vrouter(doc) else "all"
    if scope not in SCOPES:
        raise ValidationError(
            "agent", "scope", f"{scope!r} is not one of {AUTO_SCOPE}, {', '.join(SCOPES)}"
        )
    return scope  # type: ignore[return-value]


def desired_state(
    doc: DeploymentDocument,
    *,
    root: str = "/",
    scope: Scope = "all",
    host_netns: str = HOST,
) -> DesiredState:
    if scope not in SCOPES:
        raise ValidationError("agent", "scope", f"{scope!r} is not one of {', '.join(SCOPES)}")
    H = host_netns
    u: dict[str, list] = {k: [] for k in Universe.__dataclass_fields__}
    st: dict[str, list] = {
        k: []
        for k in (
            "bridges",
            "veths",
            "ovs_ports",
            "up",
            "addresses",
            "protected",
            "routes",
            "sysctls",
            "nft",
            "files",
        )
    }
    namespace = None
    vr = doc.vrouter
    if scope in ("all", "vrouter") and vr is not None:
        ns = vr.namespace
        namespace = ns
        mg = vr.management_cidr
        host_end, ns_end = vr.host_link_addresses
        h_addr, n_addr, plen = str(host_end), str(ns_end), vr.host_link_cidr.prefixlen
        ports = [(vr.management_port, vr.management_bridge), (vr.public_port, vr.public_bridge)]
        u["namespaces"].append(ns)
        u["route_namespaces"].append(ns)
        for port, bridge in ports:
            st["bridges"].append(BridgeSpec(H, bridge, vr.bridge_kind))
            u["owned_links"] += [(ns, port), (H, host_port(port))]
            u["owned_devs"].append((ns, port))
            if vr.bridge_kind == "linux":
                st["veths"].append(VethSpec(ns, port, H, host_port(port), bridge))
            else:
                st["ovs_ports"].append(OvsPortSpec(ns, port, H, bridge))
                u["ovs_bridges"].append(bridge)
        st["veths"].append(VethSpec(ns, NS_LINK, H, HOST_LINK, None))
        u["owned_links"] += [(ns, NS_LINK), (H, HOST_LINK)]
        u["owned_devs"] += [(ns, NS_LINK), (H, HOST_LINK)]
        st["up"] += [(ns, "lo")]
        st["addresses"] += [
            AddrSpec(ns, vr.management_port, str(vr.namespace_management_address), mg.prefixlen),
            AddrSpec(ns, NS_LINK, n_addr, plen),
            AddrSpec(H, HOST_LINK, h_addr, plen),
        ]
        st["protected"] += [
            AddrSpec(
                ns, vr.management_port, str(vr.vip_management.address), vr.vip_management.prefixlen
            ),
            AddrSpec(ns, vr.public_port, str(vr.vip_public.address), vr.vip_public.prefixlen),
        ]
        st["routes"].append(RouteSpec(ns, "default", h_addr, NS_LINK, FALLBACK_METRIC))
        for net in vr.routes:
            st["routes"].append(RouteSpec(ns, str(net), h_addr, NS_LINK, 0))
        for key, value in (
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.ip_nonlocal_bind", "1"),
            # the kernel applies the larger of `all` and the port's value. Loose on the
            # ports with an address of their own; off on the public port, which has an
            # address only while it holds the public VIP: the kernel drops, under any
            # rp_filter, a packet that arrives on a port without an IPv4 address and whose
            # source is routed elsewhere. Off, the old holder goes on forwarding the replies
            # of its flows that still reach it during a switchover (docs/ha.md, "The old
            # holder forwards until the neighbours follow")
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "2"),
            (f"net.ipv4.conf.{vr.management_port}.rp_filter", "2"),
            (f"net.ipv4.conf.{vr.public_port}.rp_filter", "0"),
            (f"net.ipv4.conf.{NS_LINK}.rp_filter", "2"),
            ("net.netfilter.nf_conntrack_tcp_be_liberal", "1"),
        ):
            st["sysctls"].append(SysctlSpec(ns, key, value))
        if vr.vip_public6 is not None:
            # only with IPv6 in the document: a kernel booted with IPv6 off has no such keys.
            # The namespace's IPv6 routes come from the document and the VIP agent, never from
            # router advertisements on its ports (the public side's least of all).
            for key, value in (
                ("net.ipv6.conf.all.accept_ra", "0"),
                ("net.ipv6.conf.default.accept_ra", "0"),
                (f"net.ipv6.conf.{vr.management_port}.accept_ra", "0"),
                (f"net.ipv6.conf.{vr.public_port}.accept_ra", "0"),
                ("net.ipv6.conf.all.forwarding", "1"),
                ("net.ipv6.ip_nonlocal_bind", "1"),
            ):
                st["sysctls"].append(SysctlSpec(ns, key, value))
        st["sysctls"].append(SysctlSpec(H, "net.ipv4.ip_forward", "1"))
        t = render_vrouter_table(
            management_cidr=str(mg),
            management_port=vr.management_port,
            public_port=vr.public_port,
            public_vip=str(vr.vip_public.address),
            nat=vr.nat,
        )
        st["nft"].append(t.in_ns(ns))
        if vr.vip_public6 is not None:
            assert vr.management_cidr6 is not None and vr.ipv6_egress is not None
            t6 = render_vrouter_table6(
                management_cidr6=str(vr.management_cidr6),
                management_port=vr.management_port,
                public_port=vr.public_port,
                public_vip6=str(vr.vip_public6.address),
                egress=vr.ipv6_egress,
            )
            st["nft"].append(t6.in_ns(ns))
        th = render_host_table(
            link_cidr=str(vr.host_link_cidr),
            public_bridge=vr.public_bridge,
            public_address=str(vr.self_public_address),
            host_link=HOST_LINK,
        )
        st["nft"].append(th.in_ns(H))
        # the IPv6 twin is ours whether or not it is desired: a document that drops IPv6
        # removes it
        u["nft_tables"] += [
            (ns, "ip", NFT_TABLE),
            (ns, "ip6", NFT_TABLE),
            (H, "ip", NFT_HOST_TABLE),
        ]
    if scope in ("all", "host"):
        resolv = resolv_conf_path(root)
        chrony = chrony_client_path(root)
        u["files"] += [resolv, chrony]
        u["route_namespaces"].append(H)
        if doc.network_by_role("public") is None:
            hst = doc.host
            if hst.gateway and hst.gateway_source != "none":
                _check_gateway(doc, hst.gateway)
                st["routes"].append(RouteSpec(H, "default", str(hst.gateway), "", 0))
            if hst.gateway6 is not None:
                bridge = _check_gateway(doc, hst.gateway6)
                if "." in bridge:  # sysctl keys are dotted: "br.101" cannot be named in one
                    raise ValidationError(
                        "host", "gateway6", f"is on bridge {bridge!r}, whose name has a '.'"
                    )
                st["routes"].append(RouteSpec(H, "default", str(hst.gateway6), "", IPV6_METRIC))
                # the document is the one source of the IPv6 default route: a router
                # advertisement on that network (a stray one, or a namespace's dnsmasq) must
                # not add a second default router (see docs/index.md, IPv6)
                st["sysctls"].append(
                    SysctlSpec(H, f"net.ipv6.conf.{bridge}.accept_ra_defrtr", "0")
                )
            if hst.dns_servers:
                st["files"].append(
                    FileSpec(resolv, render_resolv_conf(hst.dns_servers, hst.search_domain))
                )
            if hst.ntp_servers:
                st["files"].append(FileSpec(chrony, render_chrony_client(hst.ntp_servers)))
    universe = Universe(**{k: tuple(dict.fromkeys(v)) for k, v in u.items()})
    return DesiredState(
        universe=universe,
        namespace=namespace,
        **{k: tuple(dict.fromkeys(v)) for k, v in st.items()},
    )


def _check_gateway(doc: DeploymentDocument, gateway: IPAddress) -> str:
    """The bridge of the node's network the gateway is on. A rule of this node's routing, not
    of the document's shape: the gateway must be on-link."""
    for net in doc.networks:
        if gateway in net.cidr or (
            net.cidr6 is not None and net.address6 is not None and gateway in net.cidr6
        ):
            return net.bridge
    field = "gateway6" if gateway.version == 6 else "gateway"
    raise ValidationError("host", field, f"{gateway} is on none of the node's networks")


def empty_like(state: DesiredState) -> DesiredState:
    """Nothing desired, same universe: the desired state of a teardown."""
    return DesiredState(universe=state.universe)


# ---------------------------------------------------------------- what observe returns


@dataclass(frozen=True)
class ObservedLink:
    ns: str
    name: str
    kind: str | None
    alias: str | None
    master: str | None  # name of the master link in the same namespace
    up: bool
    peer_ours: bool = False  # a veth whose peer lives in our namespace (alias not set yet)


@dataclass
class ObservedState:
    """The kernel, files and OVS as seen now, limited to the desired state's universe."""

    namespaces: set[str] = field(default_factory=set)
    links: dict[tuple[str, str], ObservedLink] = field(default_factory=dict)
    addresses: set[AddrSpec] = field(default_factory=set)  # IPv4, on owned devs only
    routes: set[RouteSpec] = field(default_factory=set)  # RTPROT_ENVROUTER routes only
    sysctls: dict[tuple[str, str], str | None] = field(default_factory=dict)
    nft: dict[tuple[str, str, str], dict] = field(default_factory=dict)
    files: dict[str, str | None] = field(default_factory=dict)
    ovs_bridges: set[str] | None = None  # None: OVS not consulted
    ovs_ports: dict[str, set[str]] = field(default_factory=dict)
    ovs_datapaths: dict[str, str] = field(default_factory=dict)  # bridge -> datapath_type
    ovs_userspace_tso: bool = False  # other_config:userspace-tso-enable
    # devices whose transmissions an OVS bridge of the agent reads, as far as the agent sees
    # them (its internal ports; the node's end of a veth whose other end is a port):
    # (ns, device) -> (bridge, TX checksumming on)
    ovs_feeders: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)
    foreign_in_namespace: set[tuple[str, str]] = field(default_factory=set)
    broken_namespaces: set[str] = field(default_factory=set)  # a name, no namespace behind it


def files_is_ours(content: str | None) -> bool:
    return content is not None and content.startswith(FILE_MARKER)
