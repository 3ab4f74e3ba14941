"""The Pacemaker layout (pure) and its idempotent apply to a CIB file (CIB_file, no cluster)."""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from envrouter.document import parse_document
from envrouter.ha import cib
from envrouter.ha.layout import LayoutOptions, build_layout, render_layout_xml


def sample_doc(namespace="vrouter", peers=2, **vr_over):
    peer_list = [
        {"hostname": f"ctl{i+2}", "management_address": f"10.20.0.{12+i}",
         "namespace_address": f"10.20.0.{102+i}"} for i in range(peers)]
    vr = {
        "namespace": namespace, "bridge_kind": "linux", "management_bridge": "br-mgmt",
        "public_bridge": "br-ex", "management_cidr": "10.20.0.0/24", "public_cidr": "10.30.0.0/24",
        "public_gateway": "10.30.0.1",
        "vip_management": {"name": "vrouter", "network": "management", "role": "management",
                           "namespace": namespace, "address": "10.20.0.2", "prefixlen": 24,
                           "user_defined": False},
        "vip_public": {"name": "vrouter_pub", "network": "public", "role": "public",
                       "namespace": namespace, "address": "10.30.0.2", "prefixlen": 24,
                       "user_defined": False},
        "host_link_cidr": "169.254.77.0/30", "routes": ["10.40.0.0/24"],
        "upstream_dns": ["10.30.0.1", "192.0.2.53"],
        "upstream_ntp": ["10.30.0.1", "ntp.example.org"],
        "domain": "env.example", "nat": True, "conntrack_sync": True,
        "self_management_address": "10.20.0.11", "self_public_address": "10.30.0.11",
        "namespace_management_address": "10.20.0.101", "peers": peer_list,
    }
    vr.update(vr_over)
    raw = {"version": 1, "serial": "abc", "environment": {"id": 1, "name": "lab", "ha": True},
           "node": {"hostname": "ctl1", "roles": ["controller"]},
           "networks": [], "host": {"gateway": None, "gateway_source": "vrouter", "dns_servers": [],
                                    "ntp_servers": [], "search_domain": None},
           "vrouter": vr}
    return parse_document(raw)


def _find(layout, tag, **attrs):
    return [c for c in layout.constraints
            if c.tag == tag and all(c.get(k) == v for k, v in attrs.items())]


def test_resources_named_from_the_document():
    lay = build_layout(sample_doc())
    ids = [r.get("id") for r in lay.resources]
    assert ids == ["vrouter-clone", "vips", "conntrackd-clone", "dns-clone", "ntp-clone",
                   "ping_upstream-clone", "uplink-clone"]
    vips = lay.resources[1]
    assert (vips.get("class"), vips.get("provider"), vips.get("type")) == (
        "ocf", "envrouter", "vip")
    params = {nv.get("name"): nv.get("value") for nv in vips.iter("nvpair")}
    params.pop("conntrackd_conf", None)  # see the conntrackd test
    # every VIP on its port, the public one with the gateway (its default route); the public
    # one first
    assert params == {"namespace": "vrouter",
                      "addresses": "vr-pub,10.30.0.2/24,10.30.0.1 vr-mgmt,10.20.0.2/24"}
    assert [r.get("id") for r in lay.resources if r.get("type") == "vip"] == ["vips"]


def test_conntrackd_is_promotable_and_the_vip_start_commits_nothing():
    lay = build_layout(sample_doc())
    clone = lay.resources[2]
    meta = {nv.get("name"): nv.get("value") for nv in clone.find("meta_attributes")}
    assert meta["promotable"] == "true" and meta["promoted-max"] == "1"
    assert meta["notify"] == "false" and meta["interleave"] == "true"
    # no order chains the VIP start behind demote/promote, and nothing to commit: the peers
    # inject the flows into their kernel table as they arrive
    assert not _find(lay, "rsc_order", first="conntrackd-clone", then="vips")
    params = {nv.get("name"): nv.get("value") for nv in lay.resources[1].iter("nvpair")}
    assert "conntrackd_conf" not in params
    assert lay.cluster_options["load-threshold"] == "1000%"  # no throttling of failovers
    # no VIP action of a dual-stack switchover waits for a job slot on a small controller
    assert lay.cluster_options["node-action-limit"] == "32"
    assert lay.cluster_options["transition-delay"] == "100ms"  # no 1-s sleep in the DC
    coloc = _find(lay, "rsc_colocation", rsc="conntrackd-clone", **{"with-rsc": "vips"})
    assert coloc and coloc[0].get("rsc-role") == "Promoted" and coloc[0].get("score") == "INFINITY"


def test_the_vips_are_with_the_clone_and_ordered_after_it():
    lay = build_layout(sample_doc())
    assert _find(lay, "rsc_colocation", rsc="vips", **{"with-rsc": "vrouter-clone"})
    order = _find(lay, "rsc_order", first="vrouter-clone", then="vips")
    assert order and order[0].get("kind") == "Mandatory"
    (loc,) = _find(lay, "rsc_location", id="envrouter-vips-needs-upstream")
    ops = sorted(e.get("operation") for e in loc.iter("expression"))
    assert ops == ["lte", "not_defined"]
    assert loc.find("rule").get("score") == "-INFINITY"
    # nothing names a VIP resource of the layouts before (one primitive per VIP)
    assert not [c for c in lay.constraints if "vip__" in ET.tostring(c, encoding="unicode")]


def test_dns_and_ntp_follow_the_clone_and_ping_targets_the_public_gateway():
    lay = build_layout(sample_doc())
    for name in ("dns-clone", "ntp-clone"):
        assert _find(lay, "rsc_colocation", rsc=name, **{"with-rsc": "vrouter-clone"})
        assert _find(lay, "rsc_order", first="vrouter-clone", then=name)
    ping = next(r for r in lay.resources
                if r.get("id") == "ping_upstream-clone").find("primitive")
    assert (ping.get("class"), ping.get("provider"), ping.get("type")) == (
        "ocf", "pacemaker", "ping")
    params = {nv.get("name"): nv.get("value") for nv in ping.iter("nvpair")}
    assert params["host_list"] == "10.30.0.1" and params["name"] == "pingd"


def test_options_stonith_and_stickiness():
    lay = build_layout(sample_doc(), LayoutOptions(stonith_enabled=False, resource_stickiness=200))
    assert lay.cluster_options["stonith-enabled"] == "false"
    assert lay.rsc_defaults["resource-stickiness"] == "200"
    assert build_layout(sample_doc()).cluster_options["stonith-enabled"] == "true"


def test_without_conntrack_sync_no_conntrackd():
    lay = build_layout(sample_doc(conntrack_sync=False))
    assert "conntrackd-clone" not in [r.get("id") for r in lay.resources]
    assert "conntrackd" not in render_layout_xml(lay)


def test_plan_section_is_mark_and_sweep():
    import xml.etree.ElementTree as ET

    lay = build_layout(sample_doc())
    current = ET.Element("resources")
    current.append(ET.fromstring('<primitive id="other" class="ocf" provider="heartbeat" '
                                 'type="IPaddr2"/>'))
    current.append(ET.fromstring('<clone id="ntp-clone"><primitive id="ntp" class="ocf" '
                                 'provider="envrouter" type="ntp"/></clone>'))
    current.append(ET.fromstring('<primitive id="old" class="ocf" provider="envrouter" '
                                 'type="vip"/>'))
    steps = cib.plan_section(current, lay.resources, cib._owned_resource)
    ops = {(op, el.get("id")) for op, el in steps}
    assert ("replace", "ntp-clone") in ops and ("delete", "old") in ops
    assert not any(i == "other" for _, i in ops)


needs_pacemaker = pytest.mark.skipif(shutil.which("cibadmin") is None,
                                     reason="pacemaker's cibadmin not installed")


@needs_pacemaker
def test_apply_twice_changes_nothing(tmp_path, monkeypatch):
    path = tmp_path / "cib.xml"
    path.write_text(subprocess.run(["cibadmin", "--empty"], capture_output=True, text=True,
                                   check=True).stdout)
    monkeypatch.setenv("CIB_file", str(path))
    lay = build_layout(sample_doc(), LayoutOptions(stonith_enabled=False))
    first = cib.apply(lay)
    assert "create resource vips" in first
    epoch = cib.epoch()
    assert cib.apply(lay) == []
    assert cib.epoch() == epoch
    # a changed document changes only what differs
    lay2 = build_layout(sample_doc(upstream_dns=["10.30.0.1"],
                                   vip_public={"name": "vrouter_pub", "network": "public",
                                               "role": "public", "namespace": "vrouter",
                                               "address": "10.30.0.3", "prefixlen": 24,
                                               "user_defined": True}),
                        LayoutOptions(stonith_enabled=False))
    assert cib.apply(lay2) == ["replace resource vips"]
    verify = subprocess.run(["crm_verify", "--xml-file", str(path)], capture_output=True,
                            text=True)
    assert "rror" not in verify.stderr, verify.stderr


def test_the_vips_mildly_avoid_the_dc_without_ever_moving_for_it():
    lay = build_layout(sample_doc(), LayoutOptions(resource_stickiness=100))
    (loc,) = [c for c in lay.constraints if c.get("id") == "envrouter-vips-avoids-dc"]
    rule = loc.find("rule")
    assert loc.get("rsc") == "vips"
    # a bonus below the stickiness (never forces a move), never a negative score (that would
    # forbid the DC, e.g. the last node standing)
    assert 0 < int(rule.get("score")) < 100
    expr = rule.find("expression")
    assert (expr.get("attribute"), expr.get("operation"), expr.get("value")) == (
        "#is_dc", "ne", "true")


def test_vips_leave_a_node_whose_uplink_lost_carrier():
    lay = build_layout(sample_doc())
    uplink = next(r for r in lay.resources if r.get("id") == "uplink-clone")
    prim = uplink.find("primitive")
    assert (prim.get("provider"), prim.get("type")) == ("envrouter", "uplink")
    params = {nv.get("name"): nv.get("value") for nv in prim.iter("nvpair")
              if nv.get("name") in ("bridge", "exclude", "name")}
    # the namespace's own port on the bridge is not an uplink
    assert params == {"bridge": "br-ex", "exclude": "vr-pub-h", "name": "envrouter_uplink"}
    (loc,) = _find(lay, "rsc_location", id="envrouter-vips-needs-uplink")
    (expr,) = loc.iter("expression")
    # only a defined 0 bans: a node without the agent keeps the ping rule alone
    assert (loc.get("rsc"), loc.find("rule").get("score"), expr.get("attribute"),
            expr.get("operation"), expr.get("value")) == (
        "vips", "-INFINITY", "envrouter_uplink", "lte", "0")


needs_simulate = pytest.mark.skipif(shutil.which("crm_simulate") is None,
                                    reason="pacemaker's crm_simulate not installed")
NODES = ("ctl1", "ctl2", "ctl3")


def _settled_cib(tmp_path, monkeypatch, layout, *, fencing_devices=False):
    """A CIB file of three quorate controllers with the layout running (crm_simulate runs
    every action as a success), and which node holds the VIPs. With `fencing_devices`, the
    lab's devices (`envrouter.lab.fence`: one per controller, never on the node it fences)
    are configured before the layout is applied, as `lab up` does."""
    path = tmp_path / "cib.xml"
    path.write_text(subprocess.run(["cibadmin", "--empty"], capture_output=True, text=True,
                                   check=True).stdout)
    monkeypatch.setenv("CIB_file", str(path))
    if fencing_devices:
        from envrouter.lab import fence

        for node in NODES:
            for scope, el in (("resources", fence.device_xml(node, "/run/switch.sock")),
                              ("constraints", fence.constraint_xml(node))):
                subprocess.run(["cibadmin", "--create", "--scope", scope, "--xml-text",
                                ET.tostring(el, encoding="unicode")], check=True)
    cib.apply(layout)
    for i, node in enumerate(NODES, 1):
        subprocess.run(["cibadmin", "--create", "--scope", "nodes", "--xml-text",
                        f'<node id="{i}" uname="{node}"/>'], check=True)
        for name, value in (("pingd", "1000"), ("envrouter_uplink", "1")):
            subprocess.run(["crm_attribute", "-N", node, "-n", name, "-v", value,
                            "-l", "forever"], check=True, capture_output=True)
    root = ET.parse(path).getroot()
    root.set("have-quorum", "1")
    root.set("dc-uuid", "3")
    ET.ElementTree(root).write(path)
    up = [arg for node in NODES for arg in ("--node-up", node)]
    subprocess.run(["crm_simulate", "-x", str(path), *up, "-S", "-O", str(path)],
                   check=True, capture_output=True)
    status = subprocess.run(["crm_mon", "-1", "--output-as=xml"], capture_output=True,
                            text=True, check=True).stdout
    (holder,) = {n.get("name") for r in ET.fromstring(status).iter("resource")
                 if r.get("id") == "vips" for n in r.iter("node")}
    return path, holder


def _graph(path, tmp_path, *args):
    """The next transition's graph: {action: (node or None, {actions it waits for})}, after
    checking that it runs to its end (-S: every action a success; a loop in the graph fails
    with "An invalid transition was produced")."""
    out = tmp_path / "graph.xml"
    proc = subprocess.run(["crm_simulate", "-x", str(path), *args, "-S", "-G", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "invalid transition" not in proc.stderr.lower(), (
        proc.stdout + proc.stderr)
    graph = {}
    for synapse in ET.parse(out).getroot().iter("synapse"):
        (action,) = list(synapse.find("action_set"))
        inputs = {t.get("operation_key") for t in synapse.iter("trigger")
                  for t in t if t.get("operation_key")}
        graph[action.get("operation_key")] = (action.get("on_node"), inputs)
    return graph


def _waits_for(graph, action):
    seen, todo = set(), [action]
    while todo:
        for dep in graph.get(todo.pop(), (None, set()))[1]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


@needs_pacemaker
@needs_simulate
@pytest.mark.parametrize("stack", ["ipv4", "dual"])
def test_a_planned_move_stops_the_vips_before_anything_else_on_the_old_holder(
        tmp_path, monkeypatch, stack):
    doc = sample_doc(**DUAL_STACK) if stack == "dual" else sample_doc()
    layout = build_layout(doc, LayoutOptions(stonith_enabled=False))
    vips = ["vips"]  # one resource, whatever the families
    assert [r.get("id") for r in layout.resources if r.get("type") == "vip"] == vips
    path, holder = _settled_cib(tmp_path, monkeypatch, layout)
    subprocess.run(["crm_attribute", "-N", holder, "-n", "standby", "-v", "on"], check=True)
    graph = _graph(path, tmp_path)
    vip_stops = {f"{vip}_stop_0" for vip in vips}
    assert vip_stops <= graph.keys()
    on_holder = {a for a, (node, _) in graph.items() if node == holder}
    for action in on_holder - vip_stops:
        if action.endswith("_stop_0") or action.endswith("_demote_0"):
            # conntrackd's demote, the dns, ntp, ping, uplink and vrouter stops
            assert vip_stops <= _waits_for(graph, action), action
    for vip in vips:
        # the VIP start elsewhere waits for its own stop only: nothing else of the old holder
        start = f"{vip}_start_0"
        assert graph[start][0] != holder
        assert {a for a in _waits_for(graph, start) if graph.get(a, (None,))[0]} == {
            f"{vip}_stop_0"}


@needs_pacemaker
@needs_simulate
def test_the_vrouter_restarting_in_place_is_a_valid_transition(tmp_path, monkeypatch):
    """The planned-move orders must not close a loop with the symmetric vrouter orders (VIP
    start -> dns stop would: dns stop -> vrouter stop -> vrouter start -> VIP start)."""
    path, holder = _settled_cib(tmp_path, monkeypatch,
                                build_layout(sample_doc(), LayoutOptions(stonith_enabled=False)))
    graph = _graph(path, tmp_path, "-i", f"vrouter_monitor_10000@{holder}=1")
    assert {"vrouter_stop_0", "vrouter_start_0", "vips_start_0", "dns_start_0"} <= graph.keys()


def test_no_action_of_the_layout_writes_a_pending_record():
    """Every op of every resource: one CIB update per action (its result), not two."""
    lay = build_layout(sample_doc())
    ops = [op for r in lay.resources for op in r.iter("op")]
    assert ops and all(op.get("record-pending") == "false" for op in ops)


DUAL_STACK = {
    "management_cidr6": "fd00:20::/64", "public_cidr6": "2001:db8:30::/64",
    "public_gateway6": "2001:db8:30::1", "ipv6_egress": "nat66",
    "vip_management6": {"name": "vrouter6", "network": "management", "role": "management",
                        "namespace": "vrouter", "address": "fd00:20::2", "prefixlen": 64,
                        "user_defined": False},
    "vip_public6": {"name": "vrouter_pub6", "network": "public", "role": "public",
                    "namespace": "vrouter", "address": "2001:db8:30::2", "prefixlen": 64,
                    "user_defined": False},
}


def test_ipv6_vips_are_in_the_same_resource_as_the_ipv4_ones():
    v4 = build_layout(sample_doc())
    lay = build_layout(sample_doc(**DUAL_STACK))
    assert [r.get("id") for r in lay.resources] == [r.get("id") for r in v4.resources]
    params = {nv.get("name"): nv.get("value") for nv in lay.resources[1].iter("nvpair")}
    assert params == {"namespace": "vrouter", "addresses": (
        "vr-pub,10.30.0.2/24,10.30.0.1 vr-mgmt,10.20.0.2/24 "
        "vr-pub,2001:db8:30::2/64,2001:db8:30::1 vr-mgmt,fd00:20::2/64")}
    # the constraints are the IPv4 layout's: IPv6 adds an address list, no resource
    assert [ET.tostring(c) for c in lay.constraints] == [ET.tostring(c) for c in v4.constraints]


def test_the_vips_commit_the_external_cache_once(monkeypatch):
    from envrouter.services import conntrackd as ctd

    monkeypatch.setattr(ctd, "EXTERNAL_CACHE", True)
    lay = build_layout(sample_doc(**DUAL_STACK))
    params = {nv.get("name"): nv.get("value") for nv in lay.resources[1].iter("nvpair")}
    assert params["conntrackd_conf"].endswith("conntrackd.conf")


@needs_pacemaker
def test_apply_replaces_the_one_vip_primitives_of_an_older_layout(tmp_path, monkeypatch):
    """A CIB laid out before the VIPs were one resource (a primitive per VIP, its constraints):
    the apply deletes every old primitive and its constraints before it creates `vips`, so the
    old and the new resources never hold the same addresses at once."""
    path = tmp_path / "cib.xml"
    path.write_text(subprocess.run(["cibadmin", "--empty"], capture_output=True, text=True,
                                   check=True).stdout)
    monkeypatch.setenv("CIB_file", str(path))
    lay = build_layout(sample_doc(), LayoutOptions(stonith_enabled=False))
    cib.apply(lay)
    for con in ET.fromstring(subprocess.run(["cibadmin", "--query", "--scope", "constraints"],
                                            capture_output=True, text=True, check=True).stdout):
        if "vips" in (con.get("rsc"), con.get("first"), con.get("then"), con.get("with-rsc")):
            subprocess.run(["cibadmin", "--delete", "--scope", "constraints", "--xml-text",
                            f'<{con.tag} id="{con.get("id")}"/>'], check=True)
    subprocess.run(["cibadmin", "--delete", "--scope", "resources", "--xml-text",
                    '<primitive id="vips"/>'], check=True)
    for vid, ip in (("vip__vrouter", "10.20.0.2"), ("vip__vrouter_pub", "10.30.0.2")):
        subprocess.run(["cibadmin", "--create", "--scope", "resources", "--xml-text",
                        f'<primitive id="{vid}" class="ocf" provider="envrouter" type="vip">'
                        f'<instance_attributes id="{vid}-ia"><nvpair id="{vid}-ip" name="ip" '
                        f'value="{ip}"/></instance_attributes></primitive>'], check=True)
        subprocess.run(["cibadmin", "--create", "--scope", "constraints", "--xml-text",
                        f'<rsc_colocation id="envrouter-{vid}-with-vrouter" rsc="{vid}" '
                        'with-rsc="vrouter-clone" score="INFINITY"/>'], check=True)
    # and a fencing device with the older layout's orders, by the ids the layout still uses,
    # naming the old primitives (a resource set): replaced in place, they would make the
    # schema refuse the deletion of the primitives they name
    from envrouter.lab import fence

    subprocess.run(["cibadmin", "--create", "--scope", "resources", "--xml-text",
                    ET.tostring(fence.device_xml("ctl2", "/s"), encoding="unicode")], check=True)
    for action in ("start", "stop"):
        oid = f"envrouter-vips-{action}-before-fence-ctl2"
        subprocess.run(["cibadmin", "--create", "--scope", "constraints", "--xml-text",
                        f'<rsc_order id="{oid}" kind="Optional" symmetrical="false">'
                        f'<resource_set id="{oid}-vips" sequential="false" action="{action}">'
                        '<resource_ref id="vip__vrouter"/><resource_ref id="vip__vrouter_pub"/>'
                        f'</resource_set><resource_set id="{oid}-device" action="{action}">'
                        '<resource_ref id="fence-ctl2"/></resource_set></rsc_order>'],
                       check=True)
    steps = cib.plan(lay)
    for action in ("start", "stop"):
        oid = f"envrouter-vips-{action}-before-fence-ctl2"
        assert steps.index(f"delete constraint {oid}") < steps.index(
            "delete resource vip__vrouter") < steps.index(f"create constraint {oid}")
    old = ["delete resource vip__vrouter", "delete resource vip__vrouter_pub"]
    assert set(old) < set(steps)
    assert max(steps.index(o) for o in old) < steps.index("create resource vips")
    assert steps.index("delete constraint envrouter-vip__vrouter-with-vrouter") < steps.index(
        "delete resource vip__vrouter")
    cib.apply(lay)
    ids = [r.get("id") for r in ET.fromstring(subprocess.run(
        ["cibadmin", "--query", "--scope", "resources"], capture_output=True, text=True,
        check=True).stdout)]
    assert "vips" in ids and not [i for i in ids if i.startswith("vip__")]
    assert cib.apply(lay) == []


def test_status_expects_every_vip_the_layout_lays_out():
    from envrouter.ops.collect import expected_resources, vips_and_ports

    for doc in (sample_doc(), sample_doc(**DUAL_STACK)):
        laid_out = [r.get("id") for r in build_layout(doc).resources]
        assert [i for i in expected_resources(doc.vrouter) if i in laid_out] == laid_out[:-1]
    ports = [(v.name, port) for v, port in vips_and_ports(sample_doc(**DUAL_STACK).vrouter)]
    assert ports == [("vrouter", "vr-mgmt"), ("vrouter_pub", "vr-pub"), ("vrouter6", "vr-mgmt"),
                     ("vrouter_pub6", "vr-pub")]


def _devices_on(path, node):
    status = subprocess.run(["crm_mon", "-1", "--output-as=xml"], capture_output=True,
                            text=True, check=True, env={**os.environ, "CIB_file": str(path)}).stdout
    return sorted(r.get("id") for r in ET.fromstring(status).iter("resource")
                  if r.get("id", "").startswith("fence-")
                  and node in {n.get("name") for n in r.iter("node")})


def _with_devices_on_the_holder(path, holder):
    """Every device that may run on the VIP holder runs there (a lab after a few drills: the
    devices go where Pacemaker put them at each move), settled again."""
    for node in NODES:
        if node != holder:
            subprocess.run(["cibadmin", "--create", "--scope", "constraints", "--xml-text",
                            f'<rsc_location id="test-fence-{node}-on-{holder}" '
                            f'rsc="fence-{node}" node="{holder}" score="1000"/>'], check=True)
    up = [arg for node in NODES for arg in ("--node-up", node)]
    subprocess.run(["crm_simulate", "-x", str(path), *up, "-S", "-O", str(path)],
                   check=True, capture_output=True)
    assert _devices_on(path, holder) == sorted(f"fence-{n}" for n in NODES if n != holder)


def test_apply_orders_each_fencing_device_after_the_vips_and_deleting_a_device_deletes_its_orders(
        tmp_path, monkeypatch):
    lay = build_layout(sample_doc(**DUAL_STACK))
    (start, stop) = [o for o in lay.with_fencing_devices(["fence-ctl1"]).constraints
                     if o not in lay.constraints]
    for order, action in ((start, "start"), (stop, "stop")):
        # optional and one-way: never forbids, never blocks, never moves a device
        assert (order.get("kind"), order.get("symmetrical")) == ("Optional", "false")
        assert (order.get("first"), order.get("then")) == ("vips", "fence-ctl1")
        assert order.get("first-action") == order.get("then-action") == action
    if shutil.which("cibadmin") is None:
        return
    path = tmp_path / "cib.xml"
    path.write_text(subprocess.run(["cibadmin", "--empty"], capture_output=True, text=True,
                                   check=True).stdout)
    monkeypatch.setenv("CIB_file", str(path))
    from envrouter.lab import fence

    for node in ("ctl1", "ctl2"):
        subprocess.run(["cibadmin", "--create", "--scope", "resources", "--xml-text",
                        ET.tostring(fence.device_xml(node, "/s"), encoding="unicode")],
                       check=True)
    done = cib.apply(lay)
    assert {d for d in done if "before-fence" in d} == {
        f"create constraint envrouter-vips-{a}-before-fence-{n}"
        for a in ("start", "stop") for n in ("ctl1", "ctl2")}
    assert cib.apply(lay) == []
    # the CIB's schema refuses a device its orders still name; crmsh deletes them with it, and
    # the next apply has nothing to add or sweep
    gone = subprocess.run(["cibadmin", "--delete", "--scope", "resources", "--xml-text",
                           '<primitive id="fence-ctl2"/>'], capture_output=True, text=True)
    assert gone.returncode != 0 and "schema" in gone.stderr
    subprocess.run(["crm", "configure", "delete", "fence-ctl2"], check=True,
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    orders = subprocess.run(["cibadmin", "--query", "--scope", "constraints"],
                            capture_output=True, text=True, check=True).stdout
    assert "before-fence-ctl2" not in orders and "before-fence-ctl1" in orders
    assert cib.apply(lay) == []
    verify = subprocess.run(["crm_verify", "--xml-file", str(path)], capture_output=True,
                            text=True)
    assert "rror" not in verify.stderr, verify.stderr


@needs_pacemaker
@needs_simulate
def test_a_standby_starts_the_moved_fencing_devices_after_the_vips(tmp_path, monkeypatch):
    layout = build_layout(sample_doc(**DUAL_STACK))
    path, holder = _settled_cib(tmp_path, monkeypatch, layout, fencing_devices=True)
    _with_devices_on_the_holder(path, holder)
    subprocess.run(["crm_attribute", "-N", holder, "-n", "standby", "-v", "on"], check=True)
    graph = _graph(path, tmp_path)
    starts, stops = {"vips_start_0"}, {"vips_stop_0"}
    moved = _devices_on(path, holder)
    assert moved
    for dev in moved:
        # the device leaves the standby node after the VIPs and starts after theirs
        assert stops <= _waits_for(graph, f"{dev}_stop_0")
        start = f"{dev}_start_0"
        assert graph[start][0] != holder and starts <= _waits_for(graph, start)
    # the VIP start still waits for its own stop and for nothing else of a node
    assert {a for a in _waits_for(graph, "vips_start_0")
            if graph.get(a, (None,))[0]} == {"vips_stop_0"}


@needs_pacemaker
@needs_simulate
def test_a_hard_kill_fences_first_and_moves_no_device_of_the_survivors(tmp_path, monkeypatch):
    layout = build_layout(sample_doc(**DUAL_STACK))
    path, holder = _settled_cib(tmp_path, monkeypatch, layout, fencing_devices=True)
    survivors = [n for n in NODES if n != holder]
    before = {n: _devices_on(path, n) for n in survivors}
    graph = _graph(path, tmp_path, "--node-fail", holder)
    (fencing,) = [a for a in graph if a.startswith("stonith-")]
    assert fencing in _waits_for(graph, "vips_start_0")
    for node, devices in before.items():
        for dev in devices:  # a survivor's device stays where it runs
            assert f"{dev}_stop_0" not in graph, (node, dev)
