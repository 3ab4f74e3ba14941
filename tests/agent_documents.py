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


def controller_document(
    vr_ns: str,
    *,
    index: int = 1,
    bridge_kind: str = "linux",
    routes: list[str] | None = None,
    nat: bool = True,
) -> DeploymentDocument:
    mgmt = DocNetwork(
        name="management",
        role="management",
        cidr="10.20.0.0/24",
        gateway=None,
        vlan=None,
        bridge="br-mgmt",
        address=f"10.20.0.1{index}",
        prefixlen=24,
    )
    pub = DocNetwork(
        name="public",
        role="public",
        cidr="10.30.0.0/24",
        gateway=PUBLIC_GW,
        vlan=None,
        bridge="br-ex",
        address=f"10.30.0.1{index}",
        prefixlen=24,
    )
    vr = DocVrouter(
        namespace=vr_ns,
        bridge_kind=bridge_kind,
        management_bridge="br-mgmt",
        public_bridge="br-ex",
        management_cidr="10.20.0.0/24",
        public_cidr="10.30.0.0/24",
        public_gateway=PUBLIC_GW,
        vip_management=DocVip(
            name="vrouter",
            network="management",
            role="management",
            namespace=vr_ns,
            address=MGMT_VIP,
            prefixlen=24,
            user_defined=False,
        ),
        vip_public=DocVip(
            name="vrouter_pub",
            network="public",
            role="public",
            namespace=vr_ns,
            address=PUB_VIP,
            prefixlen=24,
            user_defined=False,
        ),
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
        host=DocHost(
            gateway=PUBLIC_GW,
            gateway_source="public",
            dns_servers=[MGMT_VIP],
            ntp_servers=[MGMT_VIP],
            search_domain="example.lab",
        ),
        vrouter=vr,
    )


def compute_document() -> DeploymentDocument:
    mgmt = DocNetwork(
        name="management",
        role="management",
        cidr="10.20.0.0/24",
        gateway=None,
        vlan=None,
        bridge="br-mgmt",
        address="10.20.0.50",
        prefixlen=24,
    )
    return DeploymentDocument(
        serial="test",
        environment=DocEnvironment(id=1, name="t", ha=True),
        node=DocNode(hostname="cmp1", roles=["compute"]),
        networks=[mgmt],
        host=DocHost(
            gateway=MGMT_VIP,
            gateway_source="vrouter",
            dns_servers=[MGMT_VIP],
            ntp_servers=[MGMT_VIP],
            search_domain="example.lab",
        ),
    )
