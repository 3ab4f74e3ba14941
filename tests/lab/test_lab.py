"""The lab itself: up/status/down round trip, a failed `up` leaves nothing, the machine's own
namespace is never touched."""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile

import pytest

from envrouter.waiting import poll

pytestmark = [pytest.mark.root, pytest.mark.lab]


def test_up_prints_progress_and_status(lab) -> None:
    out = lab.up_output
    for text in ("switch namespace", "node ctl1", "power switch", "upstream",
                 "waiting for quorum", "stonith device per controller", "the lab is up",
                 "fencing: ON"):
        assert text in out, text


def test_status_json_quorate_cluster(lab, labtools) -> None:
    res = labtools.run_cli("lab", "status", "--json", "--state-dir", lab.plan.state_dir,
                           timeout=120)
    st = json.loads(res.stdout)
    # a degraded lab (a FAILed check, a degraded controller, a VIP not on one) exits 1
    assert res.returncode == 0, (st["checks"], st["controllers"], st["vips"], res.stderr)
    ctls = [n.name for n in lab.plan.controllers]
    assert st["cluster"]["quorate"] is True
    assert st["cluster"]["dc"] in ctls
    assert sorted(st["cluster"]["online"]) == sorted(ctls)
    assert st["fencing"].startswith("ON")
    # one device per controller, running, never on the controller it fences
    devices = {d["target"]: d for d in st["fence_devices"]}
    assert sorted(devices) == sorted(ctls)
    for target, dev in devices.items():
        assert dev["id"] == f"fence-{target}" and len(dev["running_on"]) == 1, dev
        assert dev["running_on"][0] in ctls and dev["running_on"][0] != target, dev
    assert [n["name"] for n in st["nodes"]] == lab.plan.node_names
    assert all(n["running"] for n in st["nodes"])
    assert {n["name"]: n["cluster"] for n in st["nodes"] if n["kind"] == "controller"} == {
        c: "online" for c in ctls}
    # four checks per family (the shared lab is dual stack: IPv4 and IPv6)
    families = 2 if lab.plan.ipv6 else 1
    assert len(st["checks"]) == 4 * families
    assert sum("over IPv6" in c["check"] for c in st["checks"]) == 4 * (families - 1)
    # the shared lab is fully deployed: every check really passes, every controller healthy
    assert st["phase"] == "up"
    assert [c["status"] for c in st["checks"]] == ["pass"] * 4 * families, st["checks"]
    assert len(st["vips"]) == 2 * families
    assert [h["node"] for h in st["controllers"]] == ctls
    for h in st["controllers"]:
        assert (h["state"], h["reasons"]) == ("pass", []), h
    for v in st["vips"]:
        assert len(v["holder"]) == 1 and v["holder"] == v["pacemaker"], v


def test_status_table(lab, labtools) -> None:
    res = labtools.run_cli("lab", "status", "--state-dir", lab.plan.state_dir, timeout=120)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "FAIL" not in res.stdout and "DEGRADED" not in res.stdout, res.stdout
    for text in ("ctl1", "cmp1", "controller", "compute", "quorate yes", "fencing: ON",
                 "fence-ctl1",
                 "VIPs", "vrouter_pub", "checks", "ping management VIP",
                 "envrouter status on each controller"):
        assert text in res.stdout, text


def test_nodes_are_isolated(lab) -> None:
    # each controller has its own hostname, /run and pacemaker state
    for node in lab.plan.controllers:
        assert lab.exec_in(node.name, ["hostname"]).stdout.strip() == node.name
        assert lab.exec_in(node.name, ["cat", "/proc/1/cmdline"]).stdout.find("anchor") > 0
    lab.exec_in("ctl1", ["touch", "/run/only-on-ctl1"])
    assert lab.exec_in("ctl2", ["test", "-e", "/run/only-on-ctl1"], check=False).returncode == 1
    assert not os.path.exists("/run/only-on-ctl1")


def test_upstream_services_the_old_way(lab) -> None:
    """Before (or beside) the vrouter, nodes reach upstream through the admin gateway's NAT."""
    res = lab.exec_in("master", ["curl", "-s", "--max-time", "5", "http://198.51.100.80/"])
    assert json.loads(res.stdout)["source"] == lab.plan.node("master").address("public")
    res = lab.exec_in("up", ["dig", "+short", "@198.51.100.53", "www.lab.example"])
    assert res.stdout.split() == ["198.51.100.80"]


def test_host_untouched_while_up(lab, host_before, labtools) -> None:
    assert labtools.host_snapshot() == host_before


def test_failed_up_leaves_nothing(labtools) -> None:
    """A real failure half-way (the upstream DNS server refuses a bogus option) after the
    switch and every node exist: `up` fails with the reason and removes everything."""
    before = labtools.host_snapshot()
    prefix = f"ert{secrets.token_hex(2)}-"
    state_dir = tempfile.mkdtemp(prefix="envrouter-lab-fail-")
    os.rmdir(state_dir)
    res = labtools.run_cli("lab", "up", "--state-dir", state_dir, "--prefix", prefix,
                  "--controllers", "1", "--nodes", "1", "--no-deploy",
                  env={"ENVROUTER_LAB_UPSTREAM_DNSMASQ_ARGS": "--no-such-option"})
    assert res.returncode == 1, res.stdout + res.stderr
    assert "upstream DNS" in res.stderr
    assert "node ctl1" in res.stdout  # it really got that far
    assert labtools.lab_leftovers(prefix, state_dir) == []
    assert labtools.host_snapshot() == before


def test_up_cleans_leftovers_of_a_crash(labtools) -> None:
    """`up` after a crash of `up` itself: a leftover namespace with the prefix is removed."""
    from pyroute2 import netns

    prefix = f"ert{secrets.token_hex(2)}-"
    state_dir = tempfile.mkdtemp(prefix="envrouter-lab-crash-")
    os.rmdir(state_dir)
    netns.create(f"{prefix}ctl1")
    try:
        res = labtools.run_cli("lab", "up", "--state-dir", state_dir, "--prefix", prefix,
                      "--controllers", "1", "--nodes", "0", "--no-deploy",
                      env={"ENVROUTER_LAB_UPSTREAM_DNSMASQ_ARGS": "--no-such-option"})
        assert "removing leftovers" in res.stdout
        assert "node ctl1" in res.stdout  # recreated: the stale one was gone
    finally:
        if f"{prefix}ctl1" in netns.listnetns():
            netns.remove(f"{prefix}ctl1")
    assert labtools.lab_leftovers(prefix, state_dir) == []


def test_without_root_or_packages_clear_error(tmp_path, labtools) -> None:
    res = labtools.run_cli("lab", "up", "--state-dir", str(tmp_path / "s"), "--prefix", "ertx-",
                  env={"PATH": str(tmp_path)})
    assert res.returncode == 1
    assert "make deps-runtime" in res.stderr and "corosync" in res.stderr
    assert not os.path.exists(tmp_path / "s")


def test_power_cycle_a_compute_node(lab) -> None:
    """power_off is a crash (netns gone, processes gone); power_on brings the node back with a
    fresh /run, its wiring and (if deployed) its agent's configuration."""
    from pyroute2 import netns

    from envrouter.lab.build import power_on

    node = lab.plan.computes[-1]
    lab.exec_in(node.name, ["touch", "/run/before-crash"])
    lab.power_off(node.name)
    try:
        assert node.netns not in netns.listnetns()
        assert not lab.node_running(node.name)
    finally:
        power_on(lab, node.name)
    assert lab.exec_in(node.name, ["test", "-e", "/run/before-crash"], check=False).returncode == 1
    gateway = lab.plan.node("master").address("admin")
    assert lab.exec_in(node.name, ["ping", "-c", "1", "-W", "2", gateway],
                       check=False).returncode == 0
    if (lab.state.get("deployment") or {}).get("agents"):
        vip = lab.state["deployment"]["vips"]["vrouter"]
        assert lab.exec_in(node.name, ["ping", "-c", "1", "-W", "2", vip],
                           check=False).returncode == 0


def test_without_root_clear_error(tmp_path, labtools) -> None:
    import shutil
    import subprocess
    import sys

    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is missing")
    res = subprocess.run(
        ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", sys.executable,
         "-m", "envrouter.cli.main", "lab", "up", "--state-dir", str(tmp_path / "s")],
        capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 1
    assert "needs root" in res.stderr
    assert not os.path.exists(tmp_path / "s")


def test_ovs_lab_checks_and_datapath(ovs_lab, labtools) -> None:
    """`lab up --bridge ovs`: every check passes; each controller's br-mgmt and br-ex are OVS
    bridges with the userspace datapath, the namespace's ports are OVS internal ports on them,
    and every device feeding OVS hands it finished checksums (the switch's veths: the lab,
    with the agent's mechanism; the namespace's ports: the agent). `down` leaving nothing is
    the fixture's check."""
    from envrouter.agent.netlink import in_netns
    from envrouter.agent.ovs import tx_checksum

    res = labtools.run_cli("lab", "status", "--json", "--state-dir", ovs_lab.plan.state_dir)
    st = json.loads(res.stdout)
    assert [c["status"] for c in st["checks"]] == ["pass"] * len(st["checks"]), st["checks"]
    for ctl in ovs_lab.plan.controllers:
        for br in ("br-mgmt", "br-ex"):
            dp = ovs_lab.exec_in(ctl.name, ["ovs-vsctl", "get", "Bridge", br, "datapath_type"])
            assert dp.stdout.strip() == "netdev", (ctl.name, br, dp.stdout)
        ports = ovs_lab.exec_in(ctl.name, ["ovs-vsctl", "list-ports", "br-mgmt"]).stdout.split()
        assert "eth-mgmt" in ports and len(ports) == 2, (ctl.name, ports)
        (port,) = set(ports) - {"eth-mgmt"}
        kind = ovs_lab.exec_in(ctl.name, ["ovs-vsctl", "get", "Interface", port, "type"])
        assert kind.stdout.strip() == "internal", (ctl.name, port, kind.stdout)
        on = ovs_lab.exec_in(ctl.name, ["ip", "netns", "exec", "vrouter", sys.executable,
                                        "-c", "from envrouter.agent.ovs import tx_checksum; "
                                        f"print(tx_checksum({port!r}))"]).stdout.strip()
        assert on == "False", (ctl.name, port)
        for p in ctl.ports:
            if p.network in ("management", "public"):
                sw_end = p.switch_ifname
                assert in_netns(ovs_lab.plan.switch_netns,
                                lambda sw_end=sw_end: tx_checksum(sw_end)) is False, sw_end


def test_down_after_up_was_killed(labtools) -> None:
    """`lab up` SIGKILLed half-way (nodes and daemons running, nothing of its own cleanup
    ran): `lab down` still removes everything."""
    import signal
    import subprocess
    import sys

    prefix = f"ert{secrets.token_hex(2)}-"
    state_dir = tempfile.mkdtemp(prefix="envrouter-lab-kill-")
    os.rmdir(state_dir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "envrouter.cli.main", "lab", "up", "--controllers", "1",
         "--nodes", "1", "--no-deploy", "--state-dir", state_dir, "--prefix", prefix],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        def last_node_anchored() -> bool:
            try:
                with open(os.path.join(state_dir, "state.json")) as f:
                    state = json.load(f)
            except (OSError, ValueError):
                return False
            return "cmp1" in state.get("anchors", {})

        poll(lambda: last_node_anchored() or proc.poll() is not None, 60, 0.1)
        assert last_node_anchored(), "lab up never got to its last node"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert labtools.lab_leftovers(prefix, state_dir) != []  # it really left things behind
    down = labtools.run_cli("lab", "down", "--state-dir", state_dir, "--prefix", prefix)
    assert down.returncode == 0, down.stderr
    assert labtools.lab_leftovers(prefix, state_dir) == []


def test_api_shows_the_live_cluster(lab) -> None:
    """The lab's control plane runs with --cluster-command, so the API (and the UI) show who
    holds the VIPs: it must be the controller whose namespace really has the address."""
    import httpx

    from envrouter.lab.status import vip_holders

    cp = lab.state["deployment"]["control_plane"]
    headers = {"Authorization": f"Bearer {cp['token']}"}
    envs = httpx.get(f"{cp['url']}/api/v1/environments", headers=headers, timeout=10).json()
    got = httpx.get(f"{cp['url']}/api/v1/environments/{envs[0]['id']}/cluster",
                    headers=headers, timeout=30).json()
    assert got["source"].startswith("crm_mon"), got
    assert got["quorate"] is True
    assert [got["vip_holder"]] == vip_holders(lab, lab.plan.vip_management)
    assert sorted(n["name"] for n in got["nodes"]) == sorted(c.name for c in lab.plan.controllers)
