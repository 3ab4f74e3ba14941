"""Deployment documents: a pure function of the domain objects."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from envrouter.document import parse_document
from envrouter.model.documents import build_document, build_documents, vrouter_active
from envrouter.model.entities import Environment, IpRange, Network, Node, Vip, VrouterSettings

ADMIN = Network(
    1,
    "admin",
    "admin",
    "10.20.0.0/24",
    "10.20.0.1",
    None,
    "br-fw-admin",
    (IpRange("10.20.0.10", "10.20.0.254"),),
)
MGMT = Network(
    2,
    "management",
    "management",
    "192.168.0.0/24",
    None,
    101,
    "br-mgmt",
    (IpRange("192.168.0.10", "192.168.0.254"),),
)
PUB = Network(
    3,
    "public",
    "public",
    "203.0.113.0/24",
    "203.0.113.1",
    None,
    "br-ex",
    (IpRange("203.0.113.10", "203.0.113.100"),),
)
STOR = Network(4, "storage", "storage", "192.168.1.0/24", None, 102, "br-storage", ())

SETTINGS = VrouterSettings(
    enabled=True, dns_list=("198.51.100.53",), ntp_list=("198.51.100.123",), domain="demo.example"
)
VIPS = (
    Vip("vrouter", 2, "vrouter", "192.168.0.5", False),
    Vip("vrouter_pub", 3, "vrouter", "203.0.113.5", True),
)


def controller(i: int) -> Node:
    return Node(
        id=i,
        hostname=f"ctl{i}",
        roles=("controller",),
        status="ready",
        addresses={
            1: f"10.20.0.1{i}",
            2: f"192.168.0.1{i}",
            3: f"203.0.113.1{i}",
            4: f"192.168.1.1{i}",
        },
        namespace_address=f"192.168.0.2{i}",
    )


CTLS = [controller(1), controller(2), controller(3)]
CMP = Node(
    10, "cmp1", ("compute",), "ready", {1: "10.20.0.50", 2: "192.168.0.50", 4: "192.168.1.50"}
)


def env(**kw) -> Environment:
    base = dict(
        id=7, name="demo", ha=True, networks=(ADMIN, MGMT, PUB, STOR), settings=SETTINGS, vips=VIPS
    )
    base.update(kw)
    return Environment(**base)


def test_compute_goes_through_the_vrouter_when_active():
    doc = build_document(env(), CMP, CTLS)
    assert str(doc.host.gateway) == "192.168.0.5"
    assert doc.host.gateway_source == "vrouter"
    assert doc.host.model_dump()["dns_servers"] == ["192.168.0.5"]
    assert doc.host.ntp_servers == ["192.168.0.5"]
    assert doc.host.search_domain == "demo.example"
    assert doc.vrouter is None
    assert [n.name for n in doc.networks] == ["admin", "management", "storage"]
    assert doc.network_by_role("management").vlan == 101


def test_compute_uses_admin_gateway_and_upstream_when_disabled_or_unreserved():
    for e in (env(settings=replace(SETTINGS, enabled=False)), env(vips=VIPS[:1])):
        doc = build_document(e, CMP, CTLS)
        assert str(doc.host.gateway) == "10.20.0.1" and doc.host.gateway_source == "admin"
        assert doc.host.model_dump()["dns_servers"] == ["198.51.100.53"]
        assert doc.host.ntp_servers == ["198.51.100.123"]
        assert all(build_document(e, c, CTLS).vrouter is None for c in CTLS)


def test_controller_without_namespace_address_means_inactive():
    ctls = [replace(CTLS[0], namespace_address=None), *CTLS[1:]]
    assert not vrouter_active(env(), ctls)
    assert vrouter_active(env(), CTLS)


def test_no_admin_network_no_gateway():
    doc = build_document(env(networks=(MGMT, STOR), vips=()), CMP, CTLS)
    assert doc.host.gateway is None and doc.host.gateway_source == "none"


def test_controller_vrouter_section():
    doc = build_document(env(), CTLS[0], CTLS)
    assert str(doc.host.gateway) == "203.0.113.1" and doc.host.gateway_source == "public"
    assert doc.host.model_dump()["dns_servers"] == ["198.51.100.53"]
    vr = doc.vrouter
    assert vr is not None
    assert vr.namespace == "vrouter"
    j = vr.model_dump()  # the JSON form: typed fields written as the strings they were
    assert j["vip_management"]["address"] == "192.168.0.5"
    assert vr.vip_management.prefixlen == 24
    assert vr.vip_management.network == "management" and vr.vip_management.role == "management"
    assert j["vip_public"]["address"] == "203.0.113.5" and vr.vip_public.user_defined
    assert j["public_gateway"] == "203.0.113.1"
    assert j["management_cidr"] == "192.168.0.0/24" and j["public_cidr"] == "203.0.113.0/24"
    assert vr.management_bridge == "br-mgmt" and vr.public_bridge == "br-ex"
    assert j["routes"] == ["10.20.0.0/24", "192.168.1.0/24"]
    assert j["upstream_dns"] == ["198.51.100.53"] and vr.upstream_ntp == ["198.51.100.123"]
    assert j["self_management_address"] == "192.168.0.11"
    assert j["self_public_address"] == "203.0.113.11"
    assert j["namespace_management_address"] == "192.168.0.21"
    assert [(p["hostname"], p["management_address"], p["namespace_address"])
            for p in j["peers"]] == [
        ("ctl2", "192.168.0.12", "192.168.0.22"),
        ("ctl3", "192.168.0.13", "192.168.0.23"),
    ]


def test_serial_is_a_digest_of_the_content_and_round_trips():
    a = build_document(env(), CMP, CTLS)
    b = build_document(env(), CMP, CTLS)
    assert a.serial == b.serial and len(a.serial) == 64
    changed = build_document(env(settings=replace(SETTINGS, domain="other.example")), CMP, CTLS)
    assert changed.serial != a.serial
    parsed = parse_document(a.model_dump_json())
    assert parsed == a


def test_build_documents_matches_single_builds():
    docs = build_documents(env(), [*CTLS, CMP])
    assert set(docs) == {"ctl1", "ctl2", "ctl3", "cmp1"}
    assert docs["cmp1"] == build_document(env(), CMP, CTLS)
    assert docs["ctl2"] == build_document(env(), CTLS[1], CTLS)


def test_exported_schema_is_up_to_date():
    from envrouter.cli.document import schema_text

    path = Path(__file__).resolve().parents[2] / "docs" / "document.schema.json"
    assert json.loads(path.read_text()) == json.loads(schema_text()), (
        "docs/document.schema.json is stale: run "
        "`envrouter document --schema --write docs/document.schema.json`"
    )


# ------------------------------------------------------------------ IPv6 beside IPv4

MGMT6 = replace(MGMT, cidr6="fd00:10::/64", ranges6=(IpRange("fd00:10::10", "fd00:10::ff"),))
PUB6 = replace(
    PUB,
    cidr6="2001:db8:5::/64",
    gateway6="2001:db8:5::1",
    ranges6=(IpRange("2001:db8:5::10", "2001:db8:5::ff"),),
)
VIPS6 = (
    *VIPS,
    Vip("vrouter6", 2, "vrouter", "fd00:10::5", False),
    Vip("vrouter_pub6", 3, "vrouter", "2001:db8:5::5", False),
)


def dual(node: Node) -> Node:
    six = {2: f"fd00:10::1{node.id}", 3: f"2001:db8:5::1{node.id}"}
    return replace(node, addresses6={k: v for k, v in six.items() if k in node.addresses})


def test_ipv4_only_documents_carry_no_ipv6_key():
    """An IPv4-only document is what version 1 always was: an older agent reads it and its
    serial does not change with this code."""
    for node in (CMP, CTLS[0]):
        text = build_document(env(), node, CTLS).model_dump_json()
        assert "6" not in "".join(json.loads(text)["networks"][0])
        for key in ("cidr6", "address6", "gateway6", "prefixlen6", "vip_management6",
                    "public_gateway6"):
            assert f'"{key}"' not in text


def test_dual_stack_networks_carry_the_node_ipv6_address():
    ctls = [dual(c) for c in CTLS]
    doc = build_document(env(networks=(ADMIN, MGMT6, PUB6, STOR)), dual(CMP), ctls)
    mgmt = doc.network_by_role("management").model_dump()
    assert mgmt["cidr6"] == "fd00:10::/64" and mgmt["address6"] == "fd00:10::110"
    assert mgmt["prefixlen6"] == 64 and "gateway6" not in mgmt  # no IPv6 gateway: left out
    assert "cidr6" not in doc.network_by_role("admin").model_dump()
    assert parse_document(doc.model_dump_json()) == doc
    # the vrouter's IPv6 parts only with the switch on
    ctl = build_document(env(networks=(ADMIN, MGMT6, PUB6, STOR), vips=VIPS6), ctls[0], ctls)
    assert ctl.vrouter is not None and ctl.vrouter.vip_management6 is None
    assert "vip_management6" not in ctl.model_dump_json()


def test_vrouter_ipv6_section_when_switched_on():
    ctls = [dual(c) for c in CTLS]
    e = env(networks=(ADMIN, MGMT6, PUB6, STOR), vips=VIPS6,
            settings=replace(SETTINGS, ipv6=True))
    vr = build_document(e, ctls[0], ctls).vrouter
    assert vr is not None
    j = vr.model_dump()
    assert j["management_cidr6"] == "fd00:10::/64" and j["public_cidr6"] == "2001:db8:5::/64"
    assert j["public_gateway6"] == "2001:db8:5::1"
    assert j["vip_management6"]["address"] == "fd00:10::5"
    assert j["vip_management6"]["prefixlen"] == 64
    assert j["vip_public6"]["name"] == "vrouter_pub6"
    # both IPv6 VIPs or neither: one missing leaves the IPv6 parts out
    half = replace(e, vips=VIPS6[:3])
    assert build_document(half, ctls[0], ctls).vrouter.vip_management6 is None


def test_host_ipv6_route_and_resolver_when_the_vrouter_serves_ipv6():
    ctls = [dual(c) for c in CTLS]
    on = env(networks=(ADMIN, MGMT6, PUB6, STOR), vips=VIPS6,
             settings=replace(SETTINGS, ipv6=True))
    cmp = build_document(on, dual(CMP), ctls).host.model_dump()
    assert cmp["gateway"] == "192.168.0.5" and cmp["gateway6"] == "fd00:10::5"
    assert cmp["dns_servers"] == ["192.168.0.5", "fd00:10::5"]
    assert cmp["ntp_servers"] == ["192.168.0.5"]  # one server, counted once
    ctl = build_document(on, ctls[0], ctls).host.model_dump()
    assert ctl["gateway"] == "203.0.113.1" and ctl["gateway6"] == "2001:db8:5::1"
    # a node without an IPv6 address on management gets no IPv6 route
    assert "gateway6" not in build_document(on, CMP, ctls).host.model_dump()
    # switched off (the only state the rules allow for now): no IPv6 in the host section
    off = replace(on, settings=SETTINGS)
    host = build_document(off, dual(CMP), ctls).host.model_dump()
    assert "gateway6" not in host and host["dns_servers"] == ["192.168.0.5"]
