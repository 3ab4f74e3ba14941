"""Deployment documents of a test controller and a test compute node, made the way the control
plane makes them: a small environment of domain objects (envrouter.model.entities) through the
control plane's own builder (envrouter.model.documents.build_document), then through JSON as an
agent reads it (envrouter.document.parse_document), so every typed field is validated on both
sides. A test's document cannot hold what the server would never write.

The environment: management 10.20.0.0/24 (br-mgmt), public 10.30.0.0/24 (br-ex, gateway
10.30.0.1), a routed network 10.40.0.0/24; the VIPs 10.20.0.2 and 10.30.0.2; controllers ctlN at
10.20.0.1N/10.30.0.1N with their namespace at 10.20.0.10N (the test node ctl1 and a peer ctl9);
the compute node cmp1 at 10.20.0.50. Dual stack adds fd00:20::/64 and 2001:db8:30::/64.

Shared by the unit tier and the namespace tier (tests/ is on sys.path: pytest puts the
directory of the top-level tests/conftest.py there).
"""

from __future__ import annotations

from envrouter.document import DeploymentDocument, parse_document
from envrouter.model.documents import build_document
from envrouter.model.entities import (
    VIP_MANAGEMENT,
    VIP_MANAGEMENT6,
    VIP_PUBLIC,
    VIP_PUBLIC6,
    Environment,
    Network,
    Node,
    Vip,
    VrouterSettings,
)

PUBLIC_GW = "10.30.0.1"
SERVER = "198.51.100.1"
MGMT_VIP = "10.20.0.2"
PUB_VIP = "10.30.0.2"
ROUTED = "10.40.0.0/24"

MGMT6_CIDR = "fd00:20::/64"
MGMT6_VIP = "fd00:20::5"
CMP6_ADDRESS = "fd00:20::50"
PUB6_CIDR = "2001:db8:30::/64"
PUBLIC_GW6 = "2001:db8:30::1"
PUB6_VIP = "2001:db8:30::5"
SERVER6 = "2001:db8:51::1"

MGMT, PUB, ROUTED_ID = 1, 2, 3  # the networks' ids
PEER = 9  # the test controller's peer, ctl9


def _environment(
    vr_ns: str,
    *,
    bridge_kind: str = "linux",
    routed: bool = True,
    upstream: str = SERVER,
    domain: str = "example.lab",
    ipv6: bool = False,
    egress: str = "nat66",
) -> Environment:
    """The test environment with its vrouter on (namespace `vr_ns`), as its database holds it."""
    networks = [
        Network(MGMT, "management", "management", "10.20.0.0/24", None, None, "br-mgmt",
                cidr6=MGMT6_CIDR if ipv6 else None),
        Network(PUB, "public", "public", "10.30.0.0/24", PUBLIC_GW, None, "br-ex",
                cidr6=PUB6_CIDR if ipv6 else None, gateway6=PUBLIC_GW6 if ipv6 else None),
    ]
    if routed:  # a network the vrouter routes to (no node of the tests is on it)
        networks.append(Network(ROUTED_ID, "storage", "storage", ROUTED, None, None, "br-st"))
    vips = [Vip(VIP_MANAGEMENT, MGMT, vr_ns, MGMT_VIP, False),
            Vip(VIP_PUBLIC, PUB, vr_ns, PUB_VIP, False)]
    if ipv6:
        vips += [Vip(VIP_MANAGEMENT6, MGMT, vr_ns, MGMT6_VIP, False),
                 Vip(VIP_PUBLIC6, PUB, vr_ns, PUB6_VIP, False)]
    settings = VrouterSettings(
        enabled=True, dns_list=(upstream,), ntp_list=(upstream,), domain=domain,
        bridge_kind=bridge_kind, host_link_cidr="169.254.77.0/30", namespace=vr_ns, ipv6=ipv6,
        ipv6_egress=egress,
    )
    return Environment(1, "t", True, tuple(networks), settings, tuple(vips))


def _controller(
    index: int, *, hostname: str | None = None, namespace_address: str | None = None,
    ipv6: bool = False,
) -> Node:
    return Node(
        id=index,
        hostname=hostname or f"ctl{index}",
        roles=("controller",),
        status="ready",
        addresses={MGMT: f"10.20.0.1{index}", PUB: f"10.30.0.1{index}"},
        namespace_address=namespace_address or f"10.20.0.10{index}",
        addresses6={MGMT: f"fd00:20::1{index}", PUB: f"2001:db8:30::1{index}"} if ipv6 else {},
    )


def _compute(*, ipv6: bool = False) -> Node:
    return Node(id=50, hostname="cmp1", roles=("compute",), status="ready",
                addresses={MGMT: "10.20.0.50"}, addresses6={MGMT: CMP6_ADDRESS} if ipv6 else {})


def _document(env: Environment, node: Node, controllers: list[Node]) -> DeploymentDocument:
    """`node`'s document as the control plane builds it, read back as an agent reads it."""
    return parse_document(build_document(env, node, controllers).model_dump_json())


def controller_document(vr_ns: str, *, bridge_kind: str = "linux") -> DeploymentDocument:
    env = _environment(vr_ns, bridge_kind=bridge_kind)
    me = _controller(1)
    return _document(env, me, [me, _controller(PEER)])


def services_document(
    vr_ns: str,
    *,
    me: str = "10.20.0.101",
    peer: str | None = "10.20.0.102",
    hostname: str = "ctl1",
    domain: str = "env.example",
) -> DeploymentDocument:
    """The controller document of the namespace tier's service worlds: the daemons' upstream is
    the public gateway (an upstream namespace there), the namespace's management address `me`,
    one peer controller ctl2 whose namespace is at `peer` (None: a lone controller)."""
    env = _environment(vr_ns, routed=False, upstream=PUBLIC_GW, domain=domain)
    node = _controller(1, hostname=hostname, namespace_address=me)
    peers = [] if peer is None else [_controller(2, namespace_address=peer)]
    return _document(env, node, [node, *peers])


def compute_document() -> DeploymentDocument:
    return _document(_environment("vrouter"), _compute(), [_controller(1)])


def dual_stack_compute_document() -> DeploymentDocument:
    """The compute document of a vrouter serving IPv6: the management network with its IPv6
    prefix and the node's IPv6 address, the IPv6 default route to the vrouter6 VIP, the
    resolver on both VIPs."""
    env = _environment("vrouter", ipv6=True)
    return _document(env, _compute(ipv6=True), [_controller(1, ipv6=True)])


def dual_stack_controller_document(vr_ns: str, *, egress: str = "nat66") -> DeploymentDocument:
    """The controller document of a vrouter serving IPv6 (IPv6 prefixes on management and
    public, both IPv6 VIPs, the IPv6 egress mode)."""
    env = _environment(vr_ns, ipv6=True, egress=egress)
    me = _controller(1, ipv6=True)
    return _document(env, me, [me, _controller(PEER, ipv6=True)])
