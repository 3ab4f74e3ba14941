"""The controller on Open vSwitch bridges (userspace datapath, daemons private to the test)."""

from __future__ import annotations

import os
import subprocess

import pytest
from agent_world import MGMT_VIP, PUB_VIP, compute_document, controller_document, sh
from test_agent_netns import add_vips, addresses, apply_args, link_names

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]


def test_controller_ovs_internal_ports(world):
    world.build(0)
    ctl_ns = world.add_ns("ctl1")
    env = world.start_ovs(ctl_ns)
    ctl = world.ovs_controller(1, env)
    full = {**os.environ, **env}
    vr = world.vr
    doc = world.write_doc(controller_document(vr, bridge_kind="ovs"))
    args = apply_args(world, doc)
    out = world.agent(ctl, "apply", *args, env=env).stdout
    assert "add OVS internal port vr-mgmt to br-mgmt" in out
    ports = sh("ovs-vsctl", "list-ports", "br-mgmt", env=full).stdout.split()
    assert "vr-mgmt" in ports
    inside = link_names(vr)
    assert inside["vr-mgmt"]["alias"] == "envrouter" and "vr-pub" in inside
    assert "vr-mgmt" not in link_names(ctl)  # moved into the namespace
    assert addresses(vr, "vr-mgmt") == {"10.20.0.101/24"}

    world.tx_offload_off(extra=(vr,))
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
    add_vips(vr)
    assert world.seen_by_upstream(world.ns("cmp"), port) == PUB_VIP

    assert world.agent(ctl, "apply", *args, env=env).stdout.strip() == "nothing to do: converged"
    assert MGMT_VIP + "/24" in addresses(vr, "vr-mgmt")

    world.agent(ctl, "teardown", *args, env=env)
    assert not os.path.exists(f"/run/netns/{vr}")
    ports = set(sh("ovs-vsctl", "list-ports", "br-mgmt", env=full).stdout.split())
    assert ports == {"eth-mgmt"}
    assert not {"vr-mgmt", "vr-mgmt-h", "vr-host"} & set(link_names(ctl))
    res = subprocess.run(
        ["ovs-vsctl", "list-ports", "br-ex"], env=full, capture_output=True, text=True
    )
    assert res.stdout.split() == ["eth-pub"]
