"""Document -> desired state: pure, plain data.

The desired state names every object the agent owns for one node and scope. Namespaces are
referred to by name; HOST ("") is the network namespace the agent runs in (the node itself),
unless the caller maps it to a named one (`host_netns`).
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field
from typing import Literal

from envrouter.document import DeploymentDocument
from envrouter.errors import ValidationError

HOST = ""  # the node's own network namespace
OWNER_ALIAS = "envrouter"  # IFLA_IFALIAS of every link the agent creates
FILE_MARKER = "# managed by envrouter agent; changes are overwritten"
HOST_LINK = "vr-host"
NS_LINK = "vr-ns"
NFT_TABLE = "envrouter"
NFT_HOST_TABLE = "envrouter_host"
FALLBACK_METRIC = 1000

Scope = Literal["all", "vrouter", "host"]
SCOPES = ("all", "vrouter", "host")


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


@dataclass(frozen=True)
class NftTableSpec:
    ns: str
    family: str
    name: str
    text: str  # the whole table definition, without the delete preamble
    digest: str
    rule_comments: tuple[tuple[str, tuple[str, ...]], ...]  # (chain, comments in order)


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


def _net(cidr: str, obj: str, fld: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(cidr, strict=True)
    except ValueError as exc:
        raise ValidationError(obj, fld, f"{cidr!r} is not an IPv4 network: {exc}") from exc


def host_link_addresses(cidr: str) -> tuple[str, str, int]:
    """(host end, namespace end, prefixlen) of the /30 host link."""
    net = _net(cidr, "vrouter", "host_link_cidr")
    if net.prefixlen != 30:
        raise ValidationError("vrouter", "host_link_cidr", f"{cidr} must be a /30")
    hosts = list(net.hosts())
    return str(hosts[0]), str(hosts[1]), 30


# ---------------------------------------------------------------- nftables rendering


def _table(family: str, name: str, chains: list[tuple[str, str, list[str]]]) -> NftTableSpec:
    """chains: (name, base chain header, rules). Each rule gets a comment naming it, so the
    observed table can be compared rule by rule; the table comment carries a digest of it all."""
    # the digest covers the whole table and is repeated in every rule comment: nft's JSON
    # listing shows rule comments (not table comments), so any change of ours, a rule
    # removed or added by hand, or a flushed chain shows as a different fingerprint
    digest = hashlib.sha256(repr(chains).encode()).hexdigest()[:12]
    body: list[str] = []
    comments: list[tuple[str, tuple[str, ...]]] = []
    for cname, header, rules in chains:
        body.append(f"\tchain {cname} {{")
        body.append(f"\t\t{header}")
        names = []
        for i, rule in enumerate(rules, 1):
            cm = f"{name}:{cname}:{i}:{digest}"
            names.append(cm)
            body.append(f'\t\t{rule} comment "{cm}"')
        body.append("\t}")
        comments.append((cname, tuple(names)))
    text = "\n".join(
        [f"table {family} {name} {{", f'\tcomment "envrouter {digest}"', *body, "}", ""]
    )
    return NftTableSpec("", family, name, text, digest, tuple(comments))


def render_vrouter_table(
    *, management_cidr: str, management_port: str, public_port: str, public_vip: str, nat: bool
) -> NftTableSpec:
    forward = [
        "ct state established,related accept",
        f'iifname "{management_port}" oifname "{public_port}" ip saddr {management_cidr} accept',
    ]
    chains = [
        ("forward", "type filter hook forward priority filter; policy drop;", forward),
    ]
    if nat:
        chains.append(
            (
                "postrouting",
                "type nat hook postrouting priority srcnat; policy accept;",
                [f'ip saddr {management_cidr} oifname "{public_port}" snat to {public_vip}'],
            )
        )
    return _table("ip", NFT_TABLE, chains)


def render_host_table(*, link_cidr: str, public_bridge: str, public_address: str) -> NftTableSpec:
    rules = [
        f'ip saddr {link_cidr} oifname "{public_bridge}" snat to {public_address}',
        f'ip saddr {link_cidr} oifname != "{HOST_LINK}" masquerade',
    ]
    return _table(
        "ip",
        NFT_HOST_TABLE,
        [("postrouting", "type nat hook postrouting priority srcnat; policy accept;", rules)],
    )


def fingerprint(spec: NftTableSpec) -> dict:
    """What observe can read back of a table we loaded: its rules' comments per chain."""
    return {"rules": tuple(sorted(spec.rule_comments))}


def nft_load_text(spec: NftTableSpec) -> str:
    """The file `nft -f` loads: create-if-missing, delete, define: one atomic transaction."""
    return f"table {spec.family} {spec.name}\ndelete table {spec.family} {spec.name}\n{spec.text}"


# ---------------------------------------------------------------- files


def render_resolv_conf(servers: list[str], domain: str | None) -> str:
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


# ---------------------------------------------------------------- the document -> state


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
        mg = _net(vr.management_cidr, "vrouter", "management_cidr")
        _net(vr.public_cidr, "vrouter", "public_cidr")
        h_addr, n_addr, plen = host_link_addresses(vr.host_link_cidr)
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
            AddrSpec(ns, vr.management_port, vr.namespace_management_address, mg.prefixlen),
            AddrSpec(ns, NS_LINK, n_addr, plen),
            AddrSpec(H, HOST_LINK, h_addr, plen),
        ]
        st["protected"] += [
            AddrSpec(
                ns, vr.management_port, vr.vip_management.address, vr.vip_management.prefixlen
            ),
            AddrSpec(ns, vr.public_port, vr.vip_public.address, vr.vip_public.prefixlen),
        ]
        st["routes"].append(RouteSpec(ns, "default", h_addr, NS_LINK, FALLBACK_METRIC))
        for cidr in vr.routes:
            net = _net(cidr, "vrouter", "routes")
            st["routes"].append(RouteSpec(ns, str(net), h_addr, NS_LINK, 0))
        for key, value in (
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.ip_nonlocal_bind", "1"),
            ("net.ipv4.conf.all.rp_filter", "2"),
            ("net.ipv4.conf.default.rp_filter", "2"),
            (f"net.ipv4.conf.{vr.management_port}.rp_filter", "2"),
            (f"net.ipv4.conf.{vr.public_port}.rp_filter", "2"),
            (f"net.ipv4.conf.{NS_LINK}.rp_filter", "2"),
            ("net.netfilter.nf_conntrack_tcp_be_liberal", "1"),
        ):
            st["sysctls"].append(SysctlSpec(ns, key, value))
        st["sysctls"].append(SysctlSpec(H, "net.ipv4.ip_forward", "1"))
        t = render_vrouter_table(
            management_cidr=str(mg),
            management_port=vr.management_port,
            public_port=vr.public_port,
            public_vip=vr.vip_public.address,
            nat=vr.nat,
        )
        st["nft"].append(_in_ns(t, ns))
        th = render_host_table(
            link_cidr=vr.host_link_cidr,
            public_bridge=vr.public_bridge,
            public_address=vr.self_public_address,
        )
        st["nft"].append(_in_ns(th, H))
        u["nft_tables"] += [(ns, "ip", NFT_TABLE), (H, "ip", NFT_HOST_TABLE)]
    if scope in ("all", "host"):
        resolv = _under(root, "/etc/resolv.conf")
        chrony = _under(root, "/etc/chrony/chrony.conf")
        u["files"] += [resolv, chrony]
        u["route_namespaces"].append(H)
        if doc.network_by_role("public") is None:
            hst = doc.host
            if hst.gateway and hst.gateway_source != "none":
                _check_gateway(doc, hst.gateway)
                st["routes"].append(RouteSpec(H, "default", hst.gateway, "", 0))
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


def _in_ns(t: NftTableSpec, ns: str) -> NftTableSpec:
    return NftTableSpec(ns, t.family, t.name, t.text, t.digest, t.rule_comments)


def _check_gateway(doc: DeploymentDocument, gateway: str) -> None:
    gw = ipaddress.IPv4Address(gateway)
    for net in doc.networks:
        if gw in ipaddress.IPv4Network(net.cidr, strict=False):
            return
    raise ValidationError("host", "gateway", f"{gateway} is on none of the node's networks")


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
    foreign_in_namespace: set[tuple[str, str]] = field(default_factory=set)
    broken_namespaces: set[str] = field(default_factory=set)  # a name, no namespace behind it


def as_observed(state: DesiredState) -> ObservedState:
    """The observation of a node that is exactly in `state` (for tests and dry reasoning)."""
    obs = ObservedState()
    if state.namespace:
        obs.namespaces.add(state.namespace)
    for b in state.bridges:
        obs.links[(b.ns, b.name)] = ObservedLink(b.ns, b.name, "bridge", None, None, True)
    for v in state.veths:
        obs.links[(v.ns, v.name)] = ObservedLink(v.ns, v.name, "veth", OWNER_ALIAS, None, True)
        obs.links[(v.host_ns, v.host_name)] = ObservedLink(
            v.host_ns, v.host_name, "veth", OWNER_ALIAS, v.master, True
        )
    if state.ovs_ports or state.universe.ovs_bridges:
        obs.ovs_bridges = {b.name for b in state.bridges if b.kind == "ovs"}
    for p in state.ovs_ports:
        obs.links[(p.ns, p.name)] = ObservedLink(p.ns, p.name, "tun", OWNER_ALIAS, None, True)
        obs.ovs_ports.setdefault(p.bridge, set()).add(p.name)
    for ns, dev in state.up:
        obs.links[(ns, dev)] = ObservedLink(ns, dev, None, None, None, True)
    obs.addresses = set(state.addresses)
    obs.routes = set(state.routes)
    obs.sysctls = {(s.ns, s.key): s.value for s in state.sysctls}
    obs.nft = {(t.ns, t.family, t.name): fingerprint(t) for t in state.nft}
    obs.files = {f.path: f.content for f in state.files}
    return obs


def files_is_ours(content: str | None) -> bool:
    return content is not None and content.startswith(FILE_MARKER)
