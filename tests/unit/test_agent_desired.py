"""Document -> desired state (pure)."""

from __future__ import annotations

import json

import pytest

from agent_documents import compute_document, controller_document
from envrouter.agent.desired import (
    AddrSpec,
    RouteSpec,
    SysctlSpec,
    VethSpec,
    desired_state,
)
from envrouter.document import parse_document
from envrouter.errors import ValidationError


def test_controller_vrouter_scope():
    st = desired_state(controller_document("vr1"), scope="vrouter")
    assert st.namespace == "vr1"
    assert VethSpec("vr1", "vr-mgmt", "", "vr-mgmt-h", "br-mgmt") in st.veths
    assert VethSpec("vr1", "vr-pub", "", "vr-pub-h", "br-ex") in st.veths
    assert VethSpec("vr1", "vr-ns", "", "vr-host", None) in st.veths
    assert AddrSpec("vr1", "vr-mgmt", "10.20.0.101", 24) in st.addresses
    assert AddrSpec("vr1", "vr-ns", "169.254.77.2", 30) in st.addresses
    assert AddrSpec("", "vr-host", "169.254.77.1", 30) in st.addresses
    # VIPs are the HA layer's: protected, never desired by converge
    assert AddrSpec("vr1", "vr-pub", "10.30.0.2", 24) in st.protected
    assert not any(a.address == "10.30.0.2" for a in st.addresses)
    assert RouteSpec("vr1", "default", "169.254.77.1", "vr-ns", 1000) in st.routes
    assert RouteSpec("vr1", "10.40.0.0/24", "169.254.77.1", "vr-ns", 0) in st.routes
    keys = {(s.ns, s.key): s.value for s in st.sysctls}
    assert keys[("vr1", "net.ipv4.ip_forward")] == "1"
    assert keys[("vr1", "net.ipv4.conf.all.rp_filter")] == "0"  # the ports say
    assert keys[("vr1", "net.ipv4.conf.vr-pub.rp_filter")] == "0"  # no address without its VIP
    assert keys[("vr1", "net.ipv4.conf.vr-mgmt.rp_filter")] == "2"
    assert keys[("vr1", "net.netfilter.nf_conntrack_tcp_be_liberal")] == "1"
    assert keys[("", "net.ipv4.ip_forward")] == "1"
    assert SysctlSpec("vr1", "net.ipv4.ip_nonlocal_bind", "1") in st.sysctls
    assert {t.name for t in st.nft} == {"envrouter", "envrouter_host"}
    assert st.files == ()  # vrouter scope writes no files


def test_controller_host_scope_has_no_default_route_or_files():
    st = desired_state(controller_document("vr1"), scope="host", root="/r")
    assert st.routes == () and st.files == ()
    assert st.namespace is None


def test_compute_host_scope():
    st = desired_state(compute_document(), scope="all", root="/tmp/r/")
    assert st.namespace is None and st.veths == ()
    assert st.routes == (RouteSpec("", "default", "10.20.0.2", "", 0),)
    files = {f.path: f.content for f in st.files}
    assert "nameserver 10.20.0.2\n" in files["/tmp/r/etc/resolv.conf"]
    assert "search example.lab\n" in files["/tmp/r/etc/resolv.conf"]
    assert "server 10.20.0.2 iburst\n" in files["/tmp/r/etc/chrony/chrony.conf"]


def test_host_netns_names_the_node():
    st = desired_state(controller_document("vr1"), host_netns="node1")
    assert VethSpec("vr1", "vr-ns", "node1", "vr-host", None) in st.veths
    assert AddrSpec("node1", "vr-host", "169.254.77.1", 30) in st.addresses


def test_ovs_ports():
    st = desired_state(controller_document("vr1", bridge_kind="ovs"))
    assert {(p.name, p.bridge) for p in st.ovs_ports} == {
        ("vr-mgmt", "br-mgmt"),
        ("vr-pub", "br-ex"),
    }
    assert [v.name for v in st.veths] == ["vr-ns"]


def test_bad_inputs_name_object_and_field():
    raw = json.loads(controller_document("vr1").model_dump_json())
    raw["vrouter"]["host_link_cidr"] = "169.254.77.0/29"
    with pytest.raises(ValidationError, match="is not a /30") as exc:
        parse_document(raw)
    assert exc.value.field == "vrouter"
    with pytest.raises(ValidationError) as exc:
        desired_state(controller_document("vr1"), scope="everything")  # type: ignore[arg-type]
    assert exc.value.field == "scope"
    raw = json.loads(controller_document("vr1").model_dump_json())
    raw["vrouter"]["routes"] = ["10.40.0.1/24"]  # host bits set: refused when parsed
    with pytest.raises(ValidationError) as exc:
        parse_document(raw)
    assert exc.value.field == "vrouter.routes.0"
    raw["version"] = 7
    with pytest.raises(ValidationError) as exc:
        parse_document(raw)
    assert exc.value.field == "version"


def test_auto_scope_leaves_an_ha_controllers_namespace_to_pacemaker():
    from envrouter.agent.desired import resolve_scope

    ha = controller_document("vr1")
    assert ha.environment.ha and resolve_scope(ha, "auto") == "host"
    solo = ha.model_copy(update={"environment": ha.environment.model_copy(update={"ha": False})})
    assert resolve_scope(solo, "auto") == "all"
    assert resolve_scope(compute_document(), "auto") == "all"
    assert resolve_scope(ha, "vrouter") == "vrouter"  # explicit: taken as given
    with pytest.raises(ValidationError, match="scope"):
        resolve_scope(ha, "everything")


def test_compute_ipv6_default_route_and_resolver():
    from agent_documents import CMP6_ADDRESS, MGMT6_VIP, dual_stack_compute_document

    doc = dual_stack_compute_document()
    st = desired_state(doc, scope="host", root="/r")
    routes = {(r.dst, r.gateway, r.metric) for r in st.routes}
    # both families' default routes; the IPv6 one with the metric the kernel gives it
    assert ("default", MGMT6_VIP, 1024) in routes and ("default", "10.20.0.2", 0) in routes
    assert SysctlSpec("", "net.ipv6.conf.br-mgmt.accept_ra_defrtr", "0") in st.sysctls
    resolv = next(f.content for f in st.files if f.path == "/r/etc/resolv.conf")
    assert resolv.splitlines()[-2:] == ["nameserver 10.20.0.2", f"nameserver {MGMT6_VIP}"]
    # an IPv4-only compute document asks for no IPv6 route and no IPv6 sysctl
    plain = desired_state(compute_document(), scope="host", root="/r")
    assert not any(":" in r.gateway for r in plain.routes)
    assert not any("ipv6" in s.key for s in plain.sysctls)
    # the IPv6 gateway must be on one of the node's IPv6 prefixes
    raw = json.loads(doc.model_dump_json())
    raw["host"]["gateway6"] = "fd00:99::1"
    with pytest.raises(ValidationError) as info:
        desired_state(parse_document(raw), scope="host")
    assert (info.value.obj, info.value.field) == ("host", "gateway6")
    assert CMP6_ADDRESS in doc.model_dump_json()


def test_controller_ipv6_twin_table_and_namespace_sysctls():
    from agent_documents import dual_stack_controller_document

    st = desired_state(dual_stack_controller_document("vr1"), scope="vrouter")
    tables = {(t.ns, t.family, t.name) for t in st.nft}
    assert ("vr1", "ip6", "envrouter") in tables and ("vr1", "ip", "envrouter") in tables
    t6 = next(t for t in st.nft if t.family == "ip6")
    assert "snat to 2001:db8:30::5" in t6.text
    keys = {(s.ns, s.key): s.value for s in st.sysctls}
    assert keys[("vr1", "net.ipv6.conf.all.forwarding")] == "1"
    for dev in ("all", "default", "vr-mgmt", "vr-pub"):
        assert keys[("vr1", f"net.ipv6.conf.{dev}.accept_ra")] == "0"
    routed = desired_state(dual_stack_controller_document("vr1", egress="routed"), scope="vrouter")
    assert "snat" not in next(t for t in routed.nft if t.family == "ip6").text
    # IPv4 only: no IPv6 table and no IPv6 sysctl, but the twin is owned (a stale one goes)
    plain = desired_state(controller_document("vr1"), scope="vrouter")
    assert {t.family for t in plain.nft} == {"ip"}
    assert not any("ipv6" in s.key for s in plain.sysctls)
    assert ("vr1", "ip6", "envrouter") in plain.universe.nft_tables
