"""plan(desired, observed) from hand-built observed states (pure)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agent_documents import compute_document, controller_document
from envrouter.agent.desired import (
    OWNER_ALIAS,
    AddrSpec,
    DesiredState,
    ObservedLink,
    ObservedState,
    RouteSpec,
    desired_state,
    empty_like,
)
from envrouter.agent.nftables.render import fingerprint
from envrouter.agent.plan import plan
from envrouter.agent.steps import DelLink, OvsAddPort
from envrouter.errors import ConflictError, InfraError


def as_observed(state: DesiredState) -> ObservedState:
    """What observe reports on a node that is exactly in `state` (links up, marked, enslaved)."""
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


def bare_node(kind: str = "linux") -> ObservedState:
    obs = ObservedState()
    for br in ("br-mgmt", "br-ex"):
        obs.links[("", br)] = ObservedLink(
            "", br, "bridge" if kind == "linux" else "tun", None, None, True
        )
    if kind == "ovs":
        obs.ovs_bridges = {"br-mgmt", "br-ex"}
    return obs


@pytest.mark.parametrize("scope", ["all", "vrouter", "host"])
@pytest.mark.parametrize("kind", ["linux", "ovs"])
def test_desired_as_observed_gives_empty_plan(scope, kind):
    for doc in (controller_document("vr1", bridge_kind=kind), compute_document()):
        st = desired_state(doc, scope=scope, root="/r")
        assert plan(st, as_observed(st)) == []


def test_converged_compute_node_gives_empty_plan():
    """A compute node as observe reports it once converged, written out by hand: the kernel
    names the device of the default route (the document does not), and the files hold exactly
    this text."""
    st = desired_state(compute_document(), scope="all", root="/r")
    marker = "# managed by envrouter agent; changes are overwritten\n"
    obs = ObservedState(
        routes={RouteSpec("", "default", "10.20.0.2", "br-mgmt", 0)},
        files={
            "/r/etc/resolv.conf": marker + "search example.lab\nnameserver 10.20.0.2\n",
            "/r/etc/chrony/chrony.conf": marker + "server 10.20.0.2 iburst\n"
            "driftfile /var/lib/chrony/chrony.drift\nmakestep 1.0 3\nrtcsync\n",
        },
    )
    assert plan(st, obs) == []
    # and each difference from it is planned, one step each
    obs.routes = {RouteSpec("", "default", "10.20.0.1", "br-mgmt", 0)}
    obs.files["/r/etc/resolv.conf"] = marker + "nameserver 10.20.0.2\n"
    assert [s.description for s in plan(st, obs)] == [
        "host: remove stale route default via 10.20.0.1",
        "host: route default via 10.20.0.2",
        "host: write /r/etc/resolv.conf",
    ]


def test_from_scratch_order():
    st = desired_state(controller_document("vr1"), scope="vrouter")
    steps = plan(st, bare_node())
    ops = [s.op for s in steps]
    assert ops[0] == "create_netns"
    assert ops.index("add_veth") < ops.index("set_master")
    assert "move_link" not in ops  # the peer is created in place
    assert ops.index("add_addr") < ops.index("add_route")
    assert ops.index("load_nft") < ops.index("set_sysctl")
    assert steps[0].description == "host: create network namespace vr1"
    # everything the plan does is described
    assert all(s.description for s in steps)


def test_interrupted_between_create_and_move():
    st = desired_state(controller_document("vr1"), scope="vrouter")
    obs = as_observed(st)
    # the host end of vr-mgmt is still inside the namespace, without its alias
    del obs.links[("", "vr-mgmt-h")]
    obs.links[("vr1", "vr-mgmt-h")] = ObservedLink("vr1", "vr-mgmt-h", "veth", None, None, False)
    steps = [s.description for s in plan(st, obs)]
    assert steps == [
        "namespace vr1: mark vr-mgmt-h as envrouter's",
        "namespace vr1: move vr-mgmt-h to host",
        "host: enslave vr-mgmt-h to br-mgmt",
        "host: set vr-mgmt-h up",
    ]


def test_interrupted_between_create_and_alias():
    st = desired_state(controller_document("vr1"), scope="vrouter")
    obs = as_observed(st)
    # the host end was created but not yet marked: ours, because its peer is in our namespace
    obs.links[("", "vr-pub-h")] = ObservedLink("", "vr-pub-h", "veth", None, None, False, True)
    obs.links[("vr1", "vr-pub")] = ObservedLink("vr1", "vr-pub", "veth", None, None, False)
    steps = [s.description for s in plan(st, obs)]
    assert steps == [
        "namespace vr1: mark vr-pub as envrouter's",
        "host: mark vr-pub-h as envrouter's",
        "host: enslave vr-pub-h to br-ex",
        "host: set vr-pub-h up",
        "namespace vr1: set vr-pub up",
    ]
    # the same link with its peer elsewhere is foreign
    obs.links[("", "vr-pub-h")] = ObservedLink("", "vr-pub-h", "veth", None, None, False, False)
    with pytest.raises(ConflictError):
        plan(st, obs)


def test_stale_objects_removed_vips_kept():
    st = desired_state(controller_document("vr1"), scope="vrouter")
    obs = as_observed(st)
    obs.addresses |= {
        AddrSpec("vr1", "vr-mgmt", "10.20.0.99", 24),
        AddrSpec("vr1", "vr-mgmt", "10.20.0.2", 24),  # the VIP
        AddrSpec("vr1", "vr-pub", "10.30.0.2", 24),
    }  # the VIP
    obs.routes.add(RouteSpec("vr1", "10.50.0.0/24", "169.254.77.1", "vr-ns", 0))
    obs.sysctls[("vr1", "net.ipv4.ip_forward")] = "0"
    obs.nft[("vr1", "ip", "envrouter")] = {"rules": ()}
    steps = [s.description for s in plan(st, obs)]
    assert steps == [
        "namespace vr1: remove stale address 10.20.0.99/24 from vr-mgmt",
        "namespace vr1: remove stale route 10.50.0.0/24 via 169.254.77.1",
        "namespace vr1: load nftables table ip envrouter",
        "namespace vr1: sysctl net.ipv4.ip_forward=1",
    ]


def test_a_port_made_again_gets_its_sysctls_again():
    """A veth whose peer is lost is deleted and created again: the new device starts with the
    namespace's defaults (rp_filter 2), whatever the old one said, so its own sysctls are set
    again (the public port's rp_filter 0, docs/agent.md)."""
    st = desired_state(controller_document("vr1"), scope="vrouter")
    obs = as_observed(st)
    del obs.links[("", "vr-pub-h")]  # the host end is gone: the pair is made again
    steps = [s.description for s in plan(st, obs)]
    made = steps.index("namespace vr1: create veth pair vr-pub/vr-pub-h (vr-pub-h on host)")
    assert steps.index("namespace vr1: sysctl net.ipv4.conf.vr-pub.rp_filter=0") > made
    # the other port's and the namespace's own sysctls hold: not set again
    assert not [s for s in steps if "vr-mgmt.rp_filter" in s or "all.rp_filter" in s]


def test_a_new_default_is_followed_by_every_interface_of_its_setting():
    """The kernel copies a new `default` into every interface whose own value was never
    written: a fresh namespace whose interfaces read 0 like its default (inherited from the
    machine's) would see the public port turn to 2 when default is set, so the interfaces'
    values are written after it, even those that read right."""
    st = desired_state(controller_document("vr1"), scope="vrouter")
    obs = as_observed(st)
    obs.sysctls[("vr1", "net.ipv4.conf.default.rp_filter")] = "0"
    steps = [s.description for s in plan(st, obs)]
    assert steps == [
        "namespace vr1: sysctl net.ipv4.conf.default.rp_filter=2",
        "namespace vr1: sysctl net.ipv4.conf.vr-mgmt.rp_filter=2",
        "namespace vr1: sysctl net.ipv4.conf.vr-pub.rp_filter=0",
        "namespace vr1: sysctl net.ipv4.conf.vr-ns.rp_filter=2",
    ]


def test_foreign_clash_and_missing_bridge():
    st = desired_state(controller_document("vr1"), scope="vrouter")
    obs = bare_node()
    obs.links[("", "vr-host")] = ObservedLink("", "vr-host", "veth", None, None, True)
    with pytest.raises(ConflictError, match="vr-host"):
        plan(st, obs)
    obs = bare_node()
    del obs.links[("", "br-ex")]
    with pytest.raises(InfraError, match="bridge 'br-ex' does not exist"):
        plan(st, obs)
    with pytest.raises(InfraError, match="Open vSwitch bridge"):
        plan(desired_state(controller_document("vr1", bridge_kind="ovs")), bare_node())


def test_teardown_deletes_namespace_and_host_objects_only():
    st = desired_state(controller_document("vr1"), scope="all", root="/r")
    obs = as_observed(st)
    obs.links[("", "eth0")] = ObservedLink("", "eth0", "veth", None, None, True)  # foreign
    steps = [s.description for s in plan(empty_like(st), obs)]
    assert steps == [
        "host: delete link vr-host",
        "host: delete link vr-mgmt-h",
        "host: delete link vr-pub-h",
        "host: delete network namespace vr1",
        "host: delete nftables table ip envrouter_host",
    ]
    assert plan(empty_like(st), bare_node()) == []


def test_teardown_keeps_namespace_with_foreign_links():
    st = desired_state(controller_document("vr1"), scope="vrouter")
    obs = as_observed(st)
    obs.links[("vr1", "tap0")] = ObservedLink("vr1", "tap0", "tun", None, None, True)
    obs.foreign_in_namespace.add(("vr1", "tap0"))
    steps = [s.op for s in plan(empty_like(st), obs)]
    assert "delete_netns" not in steps and "keep_netns" in steps
    assert "delete_nft" in steps


def test_switching_bridge_kind_replaces_ports():
    linux = desired_state(controller_document("vr1"), scope="vrouter")
    ovs = desired_state(controller_document("vr1", bridge_kind="ovs"), scope="vrouter")
    obs = as_observed(linux)
    obs.ovs_bridges = {"br-mgmt", "br-ex"}
    obs.ovs_ports = {}
    steps = plan(ovs, obs)
    assert any(isinstance(s, DelLink) and (s.ns, s.name) == ("", "vr-mgmt-h") for s in steps)
    assert OvsAddPort(
        ns="", bridge="br-mgmt", port="vr-mgmt",
        description="host: add OVS internal port vr-mgmt to br-mgmt",
    ) in steps


def test_compute_default_route_replaced_when_gateway_changes():
    st = desired_state(compute_document(), root="/r")
    obs = as_observed(st)
    obs.routes = {RouteSpec("", "default", "10.20.0.1", "br-mgmt", 0)}
    steps = [s.description for s in plan(st, obs)]
    assert steps == [
        "host: remove stale route default via 10.20.0.1",
        "host: route default via 10.20.0.2",
    ]
    obs.files["/r/etc/resolv.conf"] = "nameserver 1.1.1.1\n"
    assert "host: write /r/etc/resolv.conf" in [s.description for s in plan(st, obs)]


def test_plan_is_pure_data():
    st = desired_state(controller_document("vr1"), scope="vrouter")
    steps = plan(st, bare_node())
    assert steps == plan(st, bare_node())
    assert replace(steps[0]) == steps[0]


def test_half_created_namespace_is_recreated():
    st = desired_state(controller_document("vr1"), scope="vrouter")
    obs = bare_node()
    obs.broken_namespaces.add("vr1")
    ops = [s.op for s in plan(st, obs)]
    assert ops[:2] == ["delete_netns", "create_netns"]


def test_every_step_kind_has_one_handler_in_the_applier():
    from envrouter.agent import steps
    from envrouter.agent.apply import _HANDLERS

    kinds = {
        k for k in vars(steps).values()
        if isinstance(k, type) and issubclass(k, steps.Step) and k is not steps.Step
    }
    assert len(kinds) == 21 and set(_HANDLERS) == kinds


@pytest.mark.parametrize("tso", [False, True])
@pytest.mark.parametrize("datapath", ["", "system", "netdev"])
def test_tx_checksum_off_only_where_a_userspace_datapath_reads(datapath, tso):
    """A device feeding a netdev bridge (an internal port, the node's end of a veth patched
    into the bridge) with TX checksumming on gets it turned off; one that is off, a kernel
    datapath, or OVS's userspace TSO (it finishes checksums itself) plan nothing."""
    from envrouter.agent.steps import SetTxChecksum

    st = desired_state(controller_document("vr1", bridge_kind="ovs"), scope="vrouter")
    obs = as_observed(st)
    obs.ovs_datapaths = {"br-mgmt": datapath, "br-ex": datapath}
    obs.ovs_userspace_tso = tso
    needed = datapath == "netdev" and not tso
    obs.ovs_feeders = {("vr1", "vr-mgmt"): ("br-mgmt", False), ("", "patch-lb"): ("br-ex", True)}
    steps = plan(st, obs)
    assert [(s.op, s.ns, s.name, s.on) for s in steps if isinstance(s, SetTxChecksum)] == (
        [("set_tx_checksum", "", "patch-lb", False)] if needed else [])
    if needed:
        assert steps[0].description == ("host: turn TX checksum offload off on patch-lb (it "
                                         "feeds br-ex, a userspace datapath: partial checksums "
                                         "would leave unfinished)")
    obs.ovs_feeders = {k: (br, False) for k, (br, _) in obs.ovs_feeders.items()}
    assert plan(st, obs) == []
