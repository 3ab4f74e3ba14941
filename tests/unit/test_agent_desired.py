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
    assert keys[("vr1", "net.ipv4.conf.all.rp_filter")] == "2"
    assert keys[("vr1", "net.ipv4.conf.vr-pub.rp_filter")] == "2"
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
