"""The lab's plan (pure): which nodes, networks, addresses and services the lab is made of.

Nothing here touches the machine; `envrouter.lab.nodes` and friends turn the plan into
namespaces and processes.

Layout::

    up (upstream, "the internet")  eth-pub 203.0.113.1 = public gateway;
                                   lo: DNS 198.51.100.53, NTP 198.51.100.123, HTTP 198.51.100.80
                                   dual stack (the default): eth-pub 2001:db8:113::1 = public
                                   IPv6 gateway; lo: DNS 2001:db8:51::53, NTP 2001:db8:51::123,
                                   HTTP 2001:db8:51::80
    (dual stack: management fd00:168::/64, public 2001:db8:113::/64; the admin network and
    master stay IPv4 only)
    master (admin gateway)         eth-admin 10.20.0.1, eth-pub 203.0.113.254, SNAT admin -> public
    ctlN (controllers)             eth-admin/eth-mgmt/eth-pub enslaved to br-fw-admin/br-mgmt/br-ex
    cmpN (compute)                 eth-admin + eth-mgmt (enslaved to br-mgmt; no public)
    sw (switch)                    bridges br-admin, br-mgmt, br-pub joining everyone
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from envrouter.errors import ValidationError

DEFAULT_PREFIX = "erl-"
DEFAULT_STATE_DIR = "/var/lib/envrouter-lab"
ZONE = "lab.example"
UPSTREAM_DNS = "198.51.100.53"
UPSTREAM_NTP = "198.51.100.123"
UPSTREAM_HTTP = "198.51.100.80"
UPSTREAM_HTTP_PORT = 80
UPSTREAM_DNS6 = "2001:db8:51::53"
UPSTREAM_NTP6 = "2001:db8:51::123"
UPSTREAM_HTTP6 = "2001:db8:51::80"
CLUSTER_NAME = "envrouter-lab"
ENV_NAME = "lab"
MAX_CONTROLLERS = 9
MAX_COMPUTES = 40

_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,6}-$")

# Directories every node gets privately (host path under the node's dir -> path in the node).
PRIVATE_DIRS: tuple[tuple[str, str], ...] = (
    ("run", "/run"),
    ("log", "/var/log"),
    ("lib-pacemaker", "/var/lib/pacemaker"),
    ("lib-corosync", "/var/lib/corosync"),
    ("etc-corosync", "/etc/corosync"),
    ("lib-envrouter", "/var/lib/envrouter"),
    # the node's own OCF agents (`envrouter ha install` inside the node writes here)
    ("ocf-envrouter", "/usr/lib/ocf/resource.d/envrouter"),
)
# under a controller's node dir: executables the anchor adds to the node's /usr/sbin (an
# overlay; the machine's /usr/sbin is untouched): the lab's fence agent, where Pacemaker's
# fencer looks for fence agents
NODE_SBIN = "sbin"
# mount points the lab may create on the machine when missing (empty directories; a package
# install would create them too). Anything else missing means a Debian package is missing.
CREATABLE_MOUNT_POINTS = ("/var/lib/envrouter", "/usr/lib/ocf/resource.d/envrouter")
# private dirs a lab built from the installed Debian package leaves shared with the machine:
# its nodes run the package's OCF agents, and an upgrade of the package replaces them there
SHARED_WHEN_INSTALLED = ("ocf-envrouter",)


@dataclass(frozen=True)
class LabNetwork:
    name: str
    role: str
    cidr: str
    gateway: str | None
    switch_bridge: str  # the segment, in the switch namespace
    node_bridge: str  # the bridge on controllers (the API's default for the role)
    port: str  # the node's interface on this network
    ranges: tuple[tuple[str, str], ...]
    # the IPv6 prefix beside cidr (dual-stack lab), its gateway and ranges
    cidr6: str | None = None
    gateway6: str | None = None
    ranges6: tuple[tuple[str, str], ...] = ()

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.cidr).prefixlen


@dataclass(frozen=True)
class LabPort:
    network: str
    ifname: str  # in the node
    switch_ifname: str  # the veth end in the switch namespace
    switch_bridge: str
    address: str
    prefixlen: int
    node_bridge: str | None  # controllers enslave the port to a host bridge holding the address
    address6: str | None = None  # the node's IPv6 address there (dual-stack lab)
    prefixlen6: int = 64

    @property
    def addressed_device(self) -> str:
        return self.node_bridge or self.ifname


@dataclass(frozen=True)
class LabNode:
    name: str
    kind: str  # controller | compute | master | upstream
    roles: tuple[str, ...]
    netns: str
    ports: tuple[LabPort, ...]
    default_gateway: str | None
    loopback_addresses: tuple[str, ...] = ()
    nodeid: int | None = None  # corosync node id (controllers)

    def address(self, network: str) -> str | None:
        for port in self.ports:
            if port.network == network:
                return port.address
        return None

    def address6(self, network: str) -> str | None:
        for port in self.ports:
            if port.network == network:
                return port.address6
        return None


@dataclass(frozen=True)
class LabPlan:
    prefix: str
    state_dir: str
    networks: tuple[LabNetwork, ...]
    nodes: tuple[LabNode, ...]
    switch_netns: str
    vip_management: str
    vip_public: str
    bridge_kind: str = "linux"
    zone: str = ZONE
    cluster_name: str = CLUSTER_NAME
    env_name: str = ENV_NAME
    upstream_dns: str = UPSTREAM_DNS
    upstream_ntp: str = UPSTREAM_NTP
    upstream_http: str = UPSTREAM_HTTP
    dns_records: tuple[tuple[str, str], ...] = field(default=())
    # dual stack (None: an IPv4-only lab)
    vip_management6: str | None = None
    vip_public6: str | None = None
    upstream_dns6: str | None = None
    upstream_ntp6: str | None = None
    upstream_http6: str | None = None

    @property
    def ipv6(self) -> bool:
        return self.vip_management6 is not None

    def node(self, name: str) -> LabNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise ValidationError("lab", "node", f"no node named {name!r} (nodes: {self.node_names})")

    def network(self, name: str) -> LabNetwork:
        for net in self.networks:
            if net.name == name:
                return net
        raise ValidationError("lab", "network", f"no network named {name!r}")

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    @property
    def controllers(self) -> list[LabNode]:
        return [n for n in self.nodes if n.kind == "controller"]

    @property
    def computes(self) -> list[LabNode]:
        return [n for n in self.nodes if n.kind == "compute"]

    @property
    def deployed_nodes(self) -> list[LabNode]:
        """Nodes the control plane knows and whose agent runs (controllers + computes)."""
        return [n for n in self.nodes if n.kind in ("controller", "compute")]

    def node_dir(self, name: str) -> str:
        return f"{self.state_dir}/nodes/{name}"

    @property
    def state_file(self) -> str:
        return f"{self.state_dir}/state.json"

    def corosync_nodes(self) -> list[tuple[str, int, str]]:
        out = []
        for n in self.controllers:
            addr = n.address("management")
            assert addr is not None and n.nodeid is not None
            out.append((n.name, n.nodeid, addr))
        return out


# The lab's networks, one row each: name (also its role), IPv4 prefix and gateway, the segment
# in the switch namespace, the controllers' bridge, the nodes' port; then the IPv6 prefix and
# gateway beside it in the dual-stack lab. Every network's pool is hosts .200-.250 (::200-::250).
_NETWORKS: tuple[tuple[str, str, str | None, str, str, str, str | None, str | None], ...] = (
    ("admin", "10.20.0.0/24", "10.20.0.1", "br-admin", "br-fw-admin", "eth-admin", None, None),
    ("management", "192.168.0.0/24", None, "br-mgmt", "br-mgmt", "eth-mgmt",
     "fd00:168::/64", None),
    ("public", "203.0.113.0/24", "203.0.113.1", "br-pub", "br-ex", "eth-pub",
     "2001:db8:113::/64", "2001:db8:113::1"),
)


def _pool(cidr: str, first: int, last: int) -> tuple[tuple[str, str], ...]:
    return ((_host(cidr, first), _host(cidr, last)),)


def lab_networks(ipv6: bool = True) -> tuple[LabNetwork, ...]:
    nets = []
    for name, cidr, gateway, switch_bridge, node_bridge, port, cidr6, gateway6 in _NETWORKS:
        six = {"cidr6": cidr6, "gateway6": gateway6, "ranges6": _pool(cidr6, 0x200, 0x250)
               } if ipv6 and cidr6 else {}
        nets.append(LabNetwork(name=name, role=name, cidr=cidr, gateway=gateway,
                               switch_bridge=switch_bridge, node_bridge=node_bridge, port=port,
                               ranges=_pool(cidr, 200, 250), **six))
    return tuple(nets)


def _host(cidr: str, index: int) -> str:
    return str(ipaddress.ip_network(cidr).network_address + index)


def _port(net: LabNetwork, node: str, address: str, bridged: bool,
          index6: int | None = None) -> LabPort:
    """The node's port on `net`; with `index6` and an IPv6 prefix on `net`, also the IPv6
    address of that index (its own number, like the IPv4 one: never derived from it)."""
    address6 = _host(net.cidr6, index6) if net.cidr6 and index6 is not None else None
    return LabPort(
        network=net.name,
        ifname=net.port,
        switch_ifname=f"{node}-{net.switch_bridge[3:]}",
        switch_bridge=net.switch_bridge,
        address=address,
        prefixlen=net.prefixlen,
        node_bridge=net.node_bridge if bridged else None,
        address6=address6,
    )


def validate_prefix(prefix: str) -> None:
    if not _PREFIX_RE.match(prefix):
        raise ValidationError(
            "lab", "prefix", f"{prefix!r}: must be a lowercase letter, up to 6 letters/digits "
            "and a final '-' (e.g. 'erl-')"
        )


def plan_lab(
    controllers: int = 3,
    computes: int = 2,
    *,
    prefix: str = DEFAULT_PREFIX,
    state_dir: str = DEFAULT_STATE_DIR,
    bridge_kind: str = "linux",
    ipv6: bool = True,
) -> LabPlan:
    if not isinstance(controllers, int) or not 1 <= controllers <= MAX_CONTROLLERS:
        raise ValidationError("lab", "controllers", f"must be 1..{MAX_CONTROLLERS}")
    if not isinstance(computes, int) or not 0 <= computes <= MAX_COMPUTES:
        raise ValidationError("lab", "nodes", f"must be 0..{MAX_COMPUTES}")
    if bridge_kind not in ("linux", "ovs"):
        raise ValidationError("lab", "bridge", "must be linux or ovs")
    validate_prefix(prefix)
    if not state_dir.startswith("/") or state_dir.rstrip("/") in ("", "/"):
        raise ValidationError("lab", "state_dir", f"{state_dir!r}: must be an absolute dir")
    state_dir = state_dir.rstrip("/")

    nets = lab_networks(ipv6)
    six = (UPSTREAM_DNS6, UPSTREAM_NTP6, UPSTREAM_HTTP6) if ipv6 else ()
    admin, mgmt, pub = nets
    nodes: list[LabNode] = [
        LabNode(
            name="up",
            kind="upstream",
            roles=(),
            netns=f"{prefix}up",
            ports=(_port(pub, "up", pub.gateway or "", False, 1),),
            default_gateway=None,
            loopback_addresses=(UPSTREAM_DNS, UPSTREAM_NTP, UPSTREAM_HTTP, *six),
        ),
        LabNode(
            name="master",
            kind="master",
            roles=(),
            netns=f"{prefix}master",
            ports=(
                _port(admin, "master", admin.gateway or "", False),
                _port(pub, "master", _host(pub.cidr, 254), False),
            ),
            default_gateway=pub.gateway,
        ),
    ]
    # controllers carry every network (bridged, for the vrouter) and a corosync node id;
    # computes only admin and management. "The old way": every node routes through the admin
    # gateway until deployed.
    # Their IPv6 addresses (dual stack) have numbers of their own (hexadecimal 0x1N, 0x10N).
    # Computes' management port is on br-mgmt too, the bridge the document names (the agent
    # turns accept_ra_defrtr off there with the IPv6 route).
    members = [("controller", f"ctl{i}", 10 + i, 0x10 + i, (admin, mgmt, pub), i)
               for i in range(1, controllers + 1)]
    members += [("compute", f"cmp{i}", 100 + i, 0x100 + i, (admin, mgmt), None)
                for i in range(1, computes + 1)]

    def bridged(kind: str, net: LabNetwork) -> bool:
        return kind == "controller" or net.role == "management"

    for kind, name, host, host6, on, nodeid in members:
        nodes.append(
            LabNode(
                name=name,
                kind=kind,
                roles=(kind,),
                netns=f"{prefix}{name}",
                ports=tuple(_port(net, name, _host(net.cidr, host), bridged(kind, net), host6)
                            for net in on),
                default_gateway=admin.gateway,
                nodeid=nodeid,
            )
        )
    records = [
        ("www", UPSTREAM_HTTP),
        ("ns", UPSTREAM_DNS),
        ("ntp", UPSTREAM_NTP),
        *[(n.name, n.address("management") or "") for n in nodes if n.kind in
          ("controller", "compute")],
    ]
    if ipv6:  # AAAA records beside the A ones
        records += [("www", UPSTREAM_HTTP6), ("ns", UPSTREAM_DNS6), ("ntp", UPSTREAM_NTP6)]
    return LabPlan(
        prefix=prefix,
        state_dir=state_dir,
        networks=nets,
        nodes=tuple(nodes),
        switch_netns=f"{prefix}sw",
        vip_management=_host(mgmt.cidr, 2),
        vip_public=_host(pub.cidr, 2),
        bridge_kind=bridge_kind,
        dns_records=tuple(records),
        vip_management6=_host(mgmt.cidr6, 2) if mgmt.cidr6 else None,
        vip_public6=_host(pub.cidr6, 2) if pub.cidr6 else None,
        upstream_dns6=UPSTREAM_DNS6 if ipv6 else None,
        upstream_ntp6=UPSTREAM_NTP6 if ipv6 else None,
        upstream_http6=UPSTREAM_HTTP6 if ipv6 else None,
    )


def master_nat_ruleset(plan: LabPlan) -> str:
    """nftables table of `master`: the admin network reaches upstream through SNAT (the way
    nodes were routed before the vrouter)."""
    admin = plan.network("admin")
    master = plan.node("master")
    pub_addr = master.address("public")
    return (
        "table ip envrouter_lab_master\n"
        "delete table ip envrouter_lab_master\n"
        "table ip envrouter_lab_master {\n"
        "    chain postrouting {\n"
        "        type nat hook postrouting priority srcnat; policy accept;\n"
        f'        ip saddr {admin.cidr} oifname "{plan.network("public").port}" '
        f"snat to {pub_addr}\n"
        "    }\n"
        "}\n"
    )


def dnsmasq_upstream_argv(plan: LabPlan, pid_file: str, log_file: str) -> list[str]:
    """An authoritative dnsmasq for the lab's zone, on the upstream's DNS address."""
    argv = [
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        f"--listen-address={plan.upstream_dns}",
        *([f"--listen-address={plan.upstream_dns6}"] if plan.upstream_dns6 else []),
        f"--pid-file={pid_file}",
        f"--log-facility={log_file}",
        "--user=root",
        f"--auth-server=ns.{plan.zone},{plan.upstream_dns}",
        f"--auth-zone={plan.zone}",
    ]
    by_name: dict[str, list[str]] = {}
    for name, addr in plan.dns_records:
        by_name.setdefault(name, []).append(addr)
    for name, addrs in by_name.items():  # one record per name: its A and AAAA addresses
        argv.append(f"--host-record={name}.{plan.zone},{','.join(addrs)}")
    return argv


def chrony_upstream_conf(plan: LabPlan, run_dir: str) -> str:
    """A local-stratum NTP server for everybody; no command sockets."""
    six = f"bindaddress {plan.upstream_ntp6}\n" if plan.upstream_ntp6 else ""
    return (
        "# envrouter lab: the upstream NTP server\n"
        "local stratum 3\n"
        "allow all\n"
        f"bindaddress {plan.upstream_ntp}\n"
        f"{six}"
        "cmdport 0\n"
        "bindcmdaddress /\n"
        f"pidfile {run_dir}/chronyd.pid\n"
    )


def http_url(address: str, port: int = UPSTREAM_HTTP_PORT) -> str:
    """The upstream echo server's URL on `address` (an IPv6 one in brackets)."""
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}/"


def expected_echo(plan: LabPlan) -> str:
    """What the echo server must report for a compute node's fetch through the vrouter NAT."""
    return plan.vip_public
