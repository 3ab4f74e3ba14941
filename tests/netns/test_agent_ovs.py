"""The controller on Open vSwitch bridges (userspace datapath, daemons private to the test), and
the agent's TX checksum offload mechanism (envrouter.agent.ovs)."""

from __future__ import annotations

import os
import subprocess

import pytest
from agent_world import MGMT_VIP, PUB_VIP, compute_document, controller_document, sh
from test_agent_netns import add_vips, addresses, apply_args, link_names

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]


def _tx_checksum(ns: str, dev: str) -> bool:
    from envrouter.agent.netlink import in_netns
    from envrouter.agent.ovs import tx_checksum

    return in_netns(ns, lambda: tx_checksum(dev))


def test_tx_checksum_on_and_off(world):
    from envrouter.agent.netlink import in_netns
    from envrouter.agent.ovs import set_tx_checksum

    ns = world.add_ns("off")
    sh("ip", "-n", ns, "link", "add", "va", "type", "veth", "peer", "name", "vb")
    assert (_tx_checksum(ns, "va"), _tx_checksum(ns, "vb")) == (True, True)
    in_netns(ns, lambda: set_tx_checksum("va", False))
    assert (_tx_checksum(ns, "va"), _tx_checksum(ns, "vb")) == (False, True)
    in_netns(ns, lambda: set_tx_checksum("va", True))
    assert _tx_checksum(ns, "va") is True
    from envrouter.errors import InfraError

    with pytest.raises(InfraError, match="nosuch: TX checksum offload"):
        in_netns(ns, lambda: set_tx_checksum("nosuch", False))


def test_controller_ovs_internal_ports(world, vip_agent):
    world.build(0)
    ctl_ns = world.add_ns("ctl1")
    env = world.start_ovs(ctl_ns)
    ctl = world.ovs_controller(1, env)
    full = {**os.environ, **env}
    # a veth patched into br-ex whose other end is the node's: what the node's stack sends
    # into `lbpatch` reaches the userspace datapath, so the agent must turn its TX
    # checksumming off (the uplinks' other ends are in the switch: out of its reach)
    sh("ip", "-n", ctl, "link", "add", "lbpatch", "type", "veth", "peer", "name", "ovspatch")
    sh("ip", "-n", ctl, "link", "set", "ovspatch", "up")
    sh("ovs-vsctl", "add-port", "br-ex", "ovspatch", env=full)
    assert _tx_checksum(ctl, "lbpatch") is True
    vr = world.vr
    doc = world.write_doc(controller_document(vr, bridge_kind="ovs"))
    args = apply_args(world, doc)
    out = world.agent(ctl, "apply", *args, env=env).stdout
    assert "add OVS internal port vr-mgmt to br-mgmt" in out
    assert "turn TX checksum offload off on lbpatch (it feeds br-ex" in out
    assert _tx_checksum(ctl, "lbpatch") is False
    # the namespace's internal ports (taps) hand OVS finished checksums already
    assert (_tx_checksum(vr, "vr-mgmt"), _tx_checksum(vr, "vr-pub")) == (False, False)
    ports = sh("ovs-vsctl", "list-ports", "br-mgmt", env=full).stdout.split()
    assert "vr-mgmt" in ports
    inside = link_names(vr)
    assert inside["vr-mgmt"]["alias"] == "envrouter" and "vr-pub" in inside
    assert "vr-mgmt" not in link_names(ctl)  # moved into the namespace
    assert addresses(vr, "vr-mgmt") == {"10.20.0.101/24"}

    server, port = world.listener()
    assert world.seen_by_upstream(vr, port) == "10.30.0.11"  # fallback via the host link
    cdoc = world.write_doc(compute_document(), "cmp.json")
    world.agent(
        world.ns("cmp"),
        "apply",
        "--document",
        str(cdoc),
        "--root",
        str(world.tmp / "croot"),
        "--state-dir",
        str(world.tmp / "cstate"),
    )
    add_vips(vip_agent, vr)
    assert world.seen_by_upstream(world.ns("cmp"), port) == PUB_VIP

    assert world.agent(ctl, "apply", *args, env=env).stdout.strip() == "nothing to do: converged"
    assert MGMT_VIP + "/24" in addresses(vr, "vr-mgmt")

    world.agent(ctl, "teardown", *args, env=env)
    assert not os.path.exists(f"/run/netns/{vr}")
    ports = set(sh("ovs-vsctl", "list-ports", "br-mgmt", env=full).stdout.split())
    assert ports == {"eth-mgmt"}
    sh("ovs-vsctl", "del-port", "br-ex", "ovspatch", env=full)
    assert not {"vr-mgmt", "vr-mgmt-h", "vr-host"} & set(link_names(ctl))
    res = subprocess.run(
        ["ovs-vsctl", "list-ports", "br-ex"], env=full, capture_output=True, text=True
    )
    assert res.stdout.split() == ["eth-pub"]
    assert _tx_checksum(ctl, "lbpatch") is False  # not the agent's link: left as it is
