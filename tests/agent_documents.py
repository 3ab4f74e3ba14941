"""Deployment documents of a test controller and a test compute node (pure data).

Shared by the unit tier and the namespace tier (tests/ is on sys.path: pytest puts the
directory of the top-level tests/conftest.py there).
"""

from __future__ import annotations

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


def compute_document() -> DeploymentDocument:
    return DeploymentDocument(
        serial="test",
        environment=DocEnvironment(id=1, name="t", ha=True),
        node=DocNode(hostname="cmp1", roles=["compute"]),
        networks=[_network("management", "10.20.0.0/24", None, "br-mgmt", "10.20.0.50")],
        host=_host(MGMT_VIP, "vrouter"),
    )
