"""Build deployment documents: a pure function of the domain objects (no I/O, no queries).

Rules (see docs/control-plane.md):
- the vrouter is *active* when its settings say enabled and both VIPs are reserved and every
  controller has its namespace address;
- host.gateway: the public network's gateway for a node with a public address; otherwise the
  `vrouter` VIP when the vrouter is active, else the admin network's gateway (the master node);
- DNS and NTP follow the gateway: the `vrouter` VIP for a node routed through it, else the
  upstream lists of the settings;
- the `vrouter` section only for controllers while the vrouter is active.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable, Sequence

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
from envrouter.model.entities import (
    VIP_MANAGEMENT,
    VIP_MANAGEMENT6,
    VIP_PUBLIC,
    VIP_PUBLIC6,
    Environment,
    Network,
    Node,
    Vip,
)

ROLE_ORDER = {"admin": 0, "management": 1, "public": 2, "storage": 3, "other": 4}


def vrouter_active(env: Environment, controllers: Iterable[Node]) -> bool:
    if not env.settings.enabled:
        return False
    if env.vip(VIP_MANAGEMENT) is None or env.vip(VIP_PUBLIC) is None:
        return False
    mgmt, pub = env.network_by_role("management"), env.network_by_role("public")
    if mgmt is None or pub is None or not pub.gateway:
        return False
    if ipaddress.ip_network(mgmt.cidr).version != 4 or ipaddress.ip_network(pub.cidr).version != 4:
        return False  # stored before cidr was IPv4 only; the rules refuse to enable it
    return all(c.namespace_address and pub.id in c.addresses for c in controllers)


def vrouter_ipv6_active(env: Environment) -> bool:
    """The vrouter (already active) also serves IPv6: switched on, both networks with an IPv6
    prefix, the public one with an IPv6 gateway, both IPv6 VIPs reserved."""
    mgmt, pub = env.network_by_role("management"), env.network_by_role("public")
    return bool(
        env.settings.ipv6
        and mgmt is not None
        and pub is not None
        and mgmt.cidr6
        and pub.cidr6
        and pub.gateway6
        and env.vip(VIP_MANAGEMENT6) is not None
        and env.vip(VIP_PUBLIC6) is not None
    )


def _sorted_networks(env: Environment) -> list[Network]:
    return sorted(env.networks, key=lambda n: (ROLE_ORDER.get(n.role, 9), n.name))


def _doc_vip(env: Environment, vip: Vip) -> DocVip:
    net = env.network_by_id(vip.network_id)
    six = ipaddress.ip_address(vip.address).version == 6
    return DocVip(
        name=vip.name,
        network=net.name,
        role=net.role,
        namespace=vip.namespace,
        address=vip.address,
        prefixlen=net.prefixlen6 if six else net.prefixlen,
        user_defined=vip.user_defined,
    )


def _serial(doc: DeploymentDocument) -> str:
    body = doc.model_dump(mode="json", exclude={"serial"})
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def build_document(
    env: Environment, node: Node, controllers: Sequence[Node], *, active: bool | None = None
) -> DeploymentDocument:
    """The deployment document of `node`; `controllers` are all the environment's controllers
    (the node itself may be among them). `active` may be passed when building many documents."""
    if active is None:
        active = vrouter_active(env, controllers)
    settings = env.settings
    networks = _sorted_networks(env)
    doc_networks = [
        DocNetwork(
            name=net.name,
            role=net.role,
            cidr=net.cidr,
            gateway=net.gateway,
            vlan=net.vlan,
            bridge=net.bridge,
            address=node.addresses[net.id],
            prefixlen=net.prefixlen,
            **(
                {
                    "cidr6": net.cidr6,
                    "gateway6": net.gateway6,
                    "address6": node.addresses6[net.id],
                    "prefixlen6": net.prefixlen6,
                }
                if net.cidr6 and net.id in node.addresses6
                else {}
            ),
        )
        for net in networks
        if net.id in node.addresses
    ]
    public = env.network_by_role("public")
    mgmt = env.network_by_role("management")
    admin = env.network_by_role("admin")
    vip_mgmt = env.vip(VIP_MANAGEMENT)
    ipv6 = active and vrouter_ipv6_active(env)
    vip_mgmt6 = env.vip(VIP_MANAGEMENT6) if ipv6 else None
    if public is not None and public.id in node.addresses and public.gateway:
        host = DocHost(
            gateway=public.gateway,
            gateway_source="public",
            dns_servers=list(settings.dns_list),
            ntp_servers=list(settings.ntp_list),
            search_domain=settings.domain,
            gateway6=public.gateway6 if ipv6 and public.id in node.addresses6 else None,
        )
    elif active and vip_mgmt is not None:
        # with IPv6: the IPv6 route to vrouter6, the resolver asks both VIPs (either family
        # answers if the other is broken); NTP stays on the IPv4 VIP alone: the two VIPs are
        # one server, and chrony must not count it twice
        six = vip_mgmt6 is not None and mgmt is not None and mgmt.id in node.addresses6
        host = DocHost(
            gateway=vip_mgmt.address,
            gateway_source="vrouter",
            dns_servers=[vip_mgmt.address, *([vip_mgmt6.address] if six else [])],
            ntp_servers=[vip_mgmt.address],
            search_domain=settings.domain,
            gateway6=vip_mgmt6.address if six else None,
        )
    else:
        gateway = admin.gateway if admin is not None else None
        host = DocHost(
            gateway=gateway,
            gateway_source="admin" if gateway else "none",
            dns_servers=list(settings.dns_list),
            ntp_servers=list(settings.ntp_list),
            search_domain=settings.domain,
        )
    vrouter = None
    if active and node.is_controller:
        assert mgmt is not None and public is not None and vip_mgmt is not None
        vip_pub = env.vip(VIP_PUBLIC)
        assert vip_pub is not None and public.gateway is not None
        assert node.namespace_address is not None
        v6: dict = {}
        if ipv6:
            vip_mgmt6, vip_pub6 = env.vip(VIP_MANAGEMENT6), env.vip(VIP_PUBLIC6)
            assert vip_mgmt6 is not None and vip_pub6 is not None
            v6 = {
                "management_cidr6": mgmt.cidr6,
                "public_cidr6": public.cidr6,
                "public_gateway6": public.gateway6,
                "vip_management6": _doc_vip(env, vip_mgmt6),
                "vip_public6": _doc_vip(env, vip_pub6),
                "ipv6_egress": settings.ipv6_egress,
            }
        vrouter = DocVrouter(
            namespace=settings.namespace,
            bridge_kind=settings.bridge_kind,  # type: ignore[arg-type]
            management_bridge=mgmt.bridge,
            public_bridge=public.bridge,
            management_cidr=mgmt.cidr,
            public_cidr=public.cidr,
            public_gateway=public.gateway,
            vip_management=_doc_vip(env, vip_mgmt),
            vip_public=_doc_vip(env, vip_pub),
            host_link_cidr=settings.host_link_cidr,
            routes=[
                n.cidr
                for n in networks
                if n.role not in ("management", "public")
                and ipaddress.ip_network(n.cidr).version == 4
            ],
            upstream_dns=list(settings.dns_list),
            upstream_ntp=list(settings.ntp_list),
            domain=settings.domain,
            nat=settings.nat,
            conntrack_sync=settings.conntrack_sync,
            self_management_address=node.addresses[mgmt.id],
            self_public_address=node.addresses[public.id],
            namespace_management_address=node.namespace_address,
            peers=[
                DocPeer(
                    hostname=c.hostname,
                    management_address=c.addresses[mgmt.id],
                    namespace_address=c.namespace_address or "",
                )
                for c in sorted(controllers, key=lambda c: c.hostname)
                if c.id != node.id and mgmt.id in c.addresses
            ],
            **v6,
        )
    doc = DeploymentDocument(
        serial="",
        environment=DocEnvironment(id=env.id, name=env.name, ha=env.ha),
        node=DocNode(hostname=node.hostname, roles=list(node.roles)),
        networks=doc_networks,
        host=host,
        vrouter=vrouter,
    )
    return doc.model_copy(update={"serial": _serial(doc)})


def build_documents(env: Environment, nodes: Sequence[Node]) -> dict[str, DeploymentDocument]:
    """Every node's document, keyed by hostname (all nodes of the environment given)."""
    controllers = [n for n in nodes if n.is_controller]
    active = vrouter_active(env, controllers)
    return {n.hostname: build_document(env, n, controllers, active=active) for n in nodes}
