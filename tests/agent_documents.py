"""Deployment documents of a test controller and a test compute node (pure data).

Shared by the unit tier and the namespace tier (tests/ is on sys.path: pytest puts the
directory of the top-level tests/conftest.py there).
"""

from __future__ import annotations

import json

from envrouter.document import (
    DeploymentDocument,
    DocEnvironment,
    DocHost,
    DocNetwork,
    DocNode,
    DocPeer,
    DocVip,
    DocVrouter,
)

PUBLIC_GW = "10.30.0.1"
SERVER = "198.51.100.1"
MGMT_VIP = "10.20.0.2"
PUB_VIP = "10.30.0.2"


def _network(role: str, cidr: str, gateway: str | None, bridge: str, address: str) -> DocNetwork:
    return DocNetwork(name=role, role=role, cidr=cidr, gateway=gateway, vlan=None,
                      bridge=bridge, address=address, prefixlen=24)


def _vip(name: str, role: str, namespace: str, address: str) -> DocVip:
    return DocVip(name=name, network=role, role=role, namespace=namespace, address=address,
                  prefixlen=24, user_defined=False)


def _host(gateway: str, source: str) -> DocHost:
    return DocHost(gateway=gateway, gateway_source=source, dns_servers=[MGMT_VIP],
                   ntp_servers=[MGMT_VIP], search_domain="example.lab")


def controller_document(
    vr_ns: str,
    *,
    index: int = 1,
    bridge_kind: str = "linux",
    routes: list[str] | None = None,
    nat: bool = True,
) -> DeploymentDocument:
    mgmt = _network("management", "10.20.0.0/24", None, "br-mgmt", f"10.20.0.1{index}")
    pub = _network("public", "10.30.0.0/24", PUBLIC_GW, "br-ex", f"10.30.0.1{index}")
    vr = DocVrouter(
        namespace=vr_ns,
        bridge_kind=bridge_kind,
        management_bridge="br-mgmt",
        public_bridge="br-ex",
        management_cidr="10.20.0.0/24",
        public_cidr="10.30.0.0/24",
        public_gateway=PUBLIC_GW,
        vip_management=_vip("vrouter", "management", vr_ns, MGMT_VIP),
        vip_public=_vip("vrouter_pub", "public", vr_ns, PUB_VIP),
        host_link_cidr="169.254.77.0/30",
        routes=routes if routes is not None else ["10.40.0.0/24"],
        upstream_dns=[SERVER],
        upstream_ntp=[SERVER],
        domain="example.lab",
        nat=nat,
        conntrack_sync=True,
        self_management_address=f"10.20.0.1{index}",
        self_public_address=f"10.30.0.1{index}",
        namespace_management_address=f"10.20.0.10{index}",
        peers=[
            DocPeer(
                hostname="ctl9", management_address="10.20.0.19", namespace_address="10.20.0.109"
            )
        ],
    )
    return DeploymentDocument(
        serial="test",
        environment=DocEnvironment(id=1, name="t", ha=True),
        node=DocNode(hostname=f"ctl{index}", roles=["controller"]),
        networks=[mgmt, pub],
        host=_host(PUBLIC_GW, "public"),
        vrouter=vr,
    )


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
    one peer controller whose namespace is at `peer` (None: a lone controller)."""
    from envrouter.document import parse_document

    doc = controller_document(vr_ns, routes=[])
    peers = [] if peer is None else [
        DocPeer(hostname="ctl2", management_address="10.20.0.12", namespace_address=peer)]
    assert doc.vrouter is not None
    vr = doc.vrouter.model_copy(update={
        "upstream_dns": [PUBLIC_GW], "upstream_ntp": [PUBLIC_GW], "domain": domain,
        "namespace_management_address": me, "peers": peers})
    node = doc.node.model_copy(update={"hostname": hostname})
    # through JSON, as the agents read it: the typed fields are parsed again
    return parse_document(doc.model_copy(update={"vrouter": vr, "node": node}).model_dump_json())


def compute_document() -> DeploymentDocument:
    return DeploymentDocument(
        serial="test",
        environment=DocEnvironment(id=1, name="t", ha=True),
        node=DocNode(hostname="cmp1", roles=["compute"]),
        networks=[_network("management", "10.20.0.0/24", None, "br-mgmt", "10.20.0.50")],
        host=_host(MGMT_VIP, "vrouter"),
    )


MGMT6_CIDR = "fd00:20::/64"
MGMT6_VIP = "fd00:20::5"
CMP6_ADDRESS = "fd00:20::50"


def dual_stack_compute_document() -> DeploymentDocument:
    """The compute document as a vrouter serving IPv6 writes it: the management network with
    its IPv6 prefix and the node's IPv6 address, the IPv6 default route to the vrouter6 VIP,
    the resolver on both VIPs."""
    doc = compute_document()
    mgmt = doc.networks[0].model_copy(
        update={"cidr6": MGMT6_CIDR, "address6": CMP6_ADDRESS, "prefixlen6": 64}
    )
    host = doc.host.model_copy(
        update={"gateway6": MGMT6_VIP, "dns_servers": [doc.host.dns_servers[0], MGMT6_VIP]}
    )
    # through JSON, as the agent reads it: the typed fields are parsed again
    from envrouter.document import parse_document

    return parse_document(
        doc.model_copy(update={"networks": [mgmt], "host": host}).model_dump_json()
    )


PUB6_CIDR = "2001:db8:30::/64"
PUBLIC_GW6 = "2001:db8:30::1"
PUB6_VIP = "2001:db8:30::5"
SERVER6 = "2001:db8:51::1"


def dual_stack_controller_document(vr_ns: str, *, egress: str = "nat66") -> DeploymentDocument:
    """The controller document as a vrouter serving IPv6 writes it (IPv6 prefixes on management
    and public, both IPv6 VIPs, the IPv6 egress mode)."""
    from envrouter.document import parse_document

    doc = controller_document(vr_ns)
    raw = json.loads(doc.model_dump_json())
    mgmt, pub = raw["networks"]
    mgmt.update(cidr6=MGMT6_CIDR, address6="fd00:20::11", prefixlen6=64)
    pub.update(cidr6=PUB6_CIDR, gateway6=PUBLIC_GW6, address6="2001:db8:30::11", prefixlen6=64)
    raw["host"]["gateway6"] = PUBLIC_GW6
    vip = {"namespace": vr_ns, "prefixlen": 64, "user_defined": False}
    raw["vrouter"].update(
        management_cidr6=MGMT6_CIDR,
        public_cidr6=PUB6_CIDR,
        public_gateway6=PUBLIC_GW6,
        vip_management6={**vip, "name": "vrouter6", "network": "management",
                         "role": "management", "address": MGMT6_VIP},
        vip_public6={**vip, "name": "vrouter_pub6", "network": "public", "role": "public",
                     "address": PUB6_VIP},
        ipv6_egress=egress,
    )
    return parse_document(raw)
