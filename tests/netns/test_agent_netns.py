"""The agent for real, in namespaces: controller (Linux bridge), compute, NAT path, idempotence,
stale and foreign objects, killed applies, errors, teardown."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from agent_world import (
    ENVROUTER,
    MGMT_VIP,
    PUB_VIP,
    PUBLIC_GW,
    compute_document,
    controller_document,
    sh,
    wait_for,
)
from pyroute2 import IPRoute

from envrouter.agent.vip import vip_present

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]


def ipr(ns: str) -> IPRoute:
    return IPRoute(netns=ns, flags=0)


def link_names(ns: str) -> dict[str, dict]:
    with ipr(ns) as ip:
        out = {}
        for m in ip.get_links():
            out[m.get_attr("IFLA_IFNAME")] = {
                "alias": m.get_attr("IFLA_IFALIAS"),
                "master": m.get_attr("IFLA_MASTER"),
                "index": m["index"],
            }
        return out


def addresses(ns: str, dev: str) -> set[str]:
    with ipr(ns) as ip:
        idx = ip.link_lookup(ifname=dev)[0]
        return {
            f"{m.get_attr('IFA_ADDRESS')}/{m['prefixlen']}"
            for m in ip.get_addr(family=2, index=idx)
        }


def routes(ns: str) -> set[tuple]:
    with ipr(ns) as ip:
        return {
            (
                m["dst_len"] and f"{m.get_attr('RTA_DST')}/{m['dst_len']}" or "default",
                m.get_attr("RTA_GATEWAY"),
                m.get_attr("RTA_PRIORITY") or 0,
            )
            for m in ip.get_routes(family=2, table=254)
            if m.get_attr("RTA_GATEWAY")
        }


def tables(world, ns: str) -> set[str]:
    return {i["table"]["name"] for i in world.nft_ruleset(ns)["nftables"] if "table" in i}


def start_vip(agent: str, vr: str, port: str, address: str, gateway: str = "") -> None:
    """The HA layer's VIP agent (its one implementation) takes the address."""
    env = {**os.environ, "OCF_RESKEY_namespace": vr, "OCF_RESKEY_port": port,
           "OCF_RESKEY_ip": address, "OCF_RESKEY_cidr_netmask": "24",
           "OCF_RESKEY_gateway": gateway, "OCF_RESKEY_arp_count": "1"}
    subprocess.run([agent, "start"], env=env, check=True, timeout=30)


def add_vips(agent: str, vr: str) -> None:
    start_vip(agent, vr, "vr-mgmt", MGMT_VIP)
    start_vip(agent, vr, "vr-pub", PUB_VIP, PUBLIC_GW)


def apply_args(world, doc_path) -> list[str]:
    return [
        "--document",
        str(doc_path),
        "--root",
        str(world.tmp / "root"),
        "--state-dir",
        str(world.tmp / "state"),
        # the test plays the vrouter clone's part too: in an HA environment the default
        # (auto) leaves the namespace to Pacemaker (test_default_scope_leaves_namespace...)
        "--scope",
        "all",
    ]


def test_controller_nat_path_idempotence_and_teardown(world, vip_agent):
    world.build(1)
    ctl, cmp, vr = world.ns("ctl1"), world.ns("cmp"), world.vr
    doc = world.write_doc(controller_document(vr))
    args = apply_args(world, doc)
    planned = world.agent(ctl, "plan", *args).stdout
    assert f"create network namespace {vr}" in planned
    assert not (world.tmp / "state" / "document.json").exists()  # plan changes nothing
    import os

    assert not os.path.exists(f"/run/netns/{vr}")

    world.agent(ctl, "apply", *args)
    saved = json.loads((world.tmp / "state" / "document.json").read_text())
    assert saved["vrouter"]["namespace"] == vr
    # kernel state, read through pyroute2
    host = link_names(ctl)
    assert host["vr-mgmt-h"]["master"] == host["br-mgmt"]["index"]
    assert host["vr-pub-h"]["master"] == host["br-ex"]["index"]
    assert host["vr-host"]["alias"] == "envrouter"
    inside = link_names(vr)
    assert {"lo", "vr-mgmt", "vr-pub", "vr-ns"} <= set(inside)
    assert addresses(vr, "vr-mgmt") == {"10.20.0.101/24"}
    assert addresses(vr, "vr-ns") == {"169.254.77.2/30"}
    assert addresses(ctl, "vr-host") == {"169.254.77.1/30"}
    assert ("default", "169.254.77.1", 1000) in routes(vr)
    assert ("10.40.0.0/24", "169.254.77.1", 0) in routes(vr)
    assert "envrouter" in tables(world, vr) and "envrouter_host" in tables(world, ctl)
    snat = [
        i["rule"]
        for i in world.nft_ruleset(vr)["nftables"]
        if "rule" in i and i["rule"]["chain"] == "postrouting"
    ]
    assert any(json.dumps(r).find('"snat"') >= 0 and PUB_VIP in json.dumps(r) for r in snat)
    assert (
        sh("ip", "netns", "exec", vr, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"
    )

    server, port = world.listener()
    # fallback: the namespace without the public VIP reaches upstream through the host link,
    # NATed to the controller's own public address
    assert world.seen_by_upstream(vr, port) == "10.30.0.11"

    # compute: default route via the management VIP, resolver and chrony files under --root
    cdoc = world.write_doc(compute_document(), "cmp.json")
    croot = world.tmp / "cmproot"
    marker = world.tmp / "chrony-restarted"
    capply = [
        "apply",
        "--document",
        str(cdoc),
        "--root",
        str(croot),
        "--state-dir",
        str(world.tmp / "cstate"),
        "--scope",
        "host",
        "--chrony-restart",
        f"touch {marker}",
    ]
    assert "ran touch" in world.agent(cmp, *capply).stdout
    assert marker.exists()
    marker.unlink()
    assert world.agent(cmp, *capply).stdout.strip() == "nothing to do: converged"
    assert not marker.exists()  # nothing changed: no restart
    assert ("default", MGMT_VIP, 0) in routes(cmp)
    assert f"nameserver {MGMT_VIP}" in (croot / "etc/resolv.conf").read_text()
    assert f"server {MGMT_VIP} iburst" in (croot / "etc/chrony/chrony.conf").read_text()
    assert (
        "converged"
        in world.agent(
            cmp, "status", "--document", str(cdoc), "--root", str(croot), "--scope", "host"
        ).stdout
    )

    # the HA layer takes the VIPs: compute traffic leaves with the public VIP as source
    add_vips(vip_agent, vr)
    start_vip(vip_agent, vr, "vr-mgmt", MGMT_VIP)  # idempotent
    assert wait_for(
        lambda: world.seen_by_upstream(cmp, port) == PUB_VIP,
        10,
        "compute traffic NATed to the public VIP",
    )
    assert world.seen_by_upstream(vr, port) == PUB_VIP  # the public route wins now

    # second apply: nothing to do, and the VIPs (HA's) are kept
    out = world.agent(ctl, "apply", *args).stdout
    assert out.strip() == "nothing to do: converged"
    assert vip_present(vr, "vr-mgmt", MGMT_VIP) and vip_present(vr, "vr-pub", PUB_VIP)

    # stale owned objects go, foreign ones stay
    sh("ip", "-n", vr, "addr", "add", "10.20.0.222/24", "dev", "vr-mgmt")
    sh("ip", "-n", vr, "route", "add", "10.99.0.0/24", "via", "169.254.77.1", "proto", "77")
    sh("ip", "-n", ctl, "link", "add", "foreign0", "type", "veth", "peer", "name", "foreign1")
    sh("ip", "-n", ctl, "addr", "add", "192.0.2.1/24", "dev", "foreign0")
    sh("ip", "netns", "exec", vr, "nft", "flush", "chain", "ip", "envrouter", "forward")
    sh("ip", "netns", "exec", vr, "sysctl", "-qw", "net.ipv4.ip_forward=0")
    status = world.agent(ctl, "status", *args, check=False)
    assert status.returncode == 1 and "not converged" in status.stdout
    out = world.agent(ctl, "apply", *args).stdout
    assert "remove stale address 10.20.0.222/24 from vr-mgmt" in out
    assert "remove stale route 10.99.0.0/24" in out
    assert "load nftables table ip envrouter" in out
    assert "net.ipv4.ip_forward=1" in out
    assert addresses(vr, "vr-mgmt") == {"10.20.0.101/24", f"{MGMT_VIP}/24"}
    assert world.agent(ctl, "status", *args).stdout.strip() == "converged"
    assert world.seen_by_upstream(cmp, port) == PUB_VIP

    # a host end without its mark (an apply killed between creating and marking it) is
    # recognised by its peer in our namespace, and marked again
    sh("ip", "-n", ctl, "link", "set", "vr-pub-h", "alias", "")
    assert link_names(ctl)["vr-pub-h"]["alias"] is None
    out = world.agent(ctl, "apply", *args).stdout.strip().splitlines()
    assert out == [f"namespace {ctl}: mark vr-pub-h as envrouter's"]
    assert link_names(ctl)["vr-pub-h"]["alias"] == "envrouter"

    # teardown: nothing of ours left, foreign objects intact
    world.agent(ctl, "teardown", *args)
    assert not os.path.exists(f"/run/netns/{vr}")
    left = link_names(ctl)
    assert not {"vr-mgmt-h", "vr-pub-h", "vr-host"} & set(left)
    assert {"foreign0", "foreign1", "br-mgmt", "br-ex", "eth-mgmt", "eth-pub"} <= set(left)
    assert addresses(ctl, "foreign0") == {"192.0.2.1/24"}
    assert "envrouter_host" not in tables(world, ctl)
    world.agent(ctl, "teardown", *args)  # idempotent
    world.agent(cmp, "teardown", "--document", str(cdoc), "--root", str(croot), "--scope", "host")
    assert not (croot / "etc/resolv.conf").exists()
    assert ("default", MGMT_VIP, 0) not in routes(cmp)


def test_killed_apply_recovers(world):
    world.build(1)
    ctl, vr = world.ns("ctl1"), world.vr
    doc = world.write_doc(controller_document(vr))
    args = apply_args(world, doc)
    kills = 0
    # kill after a given number of applied steps (apply prints each one when done), so the
    # SIGKILL lands inside the work, not during interpreter start-up; fixed points spread over
    # a from-scratch apply (~30 steps), so a failure replays
    for i, after in enumerate((1, 4, 8, 13, 19, 26)):
        proc = subprocess.Popen(
            [ENVROUTER, "agent", "apply", "--host-netns", ctl, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        world.pids.append(proc.pid)
        assert proc.stdout is not None
        for _ in range(after):
            if not proc.stdout.readline():
                break
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.communicate()
        world.pids.remove(proc.pid)
        world.agent(ctl, "apply", *args)
        status = world.agent(ctl, "status", *args).stdout.strip()
        assert status == "converged", f"round {i}, killed after {after} steps"
        if i % 2 == 0:
            world.agent(ctl, "teardown", *args)
    assert kills >= 1, "no apply was interrupted: the delays are too long for this machine"


def test_errors_are_one_line_and_leave_nothing(world):
    world.build(1)
    ctl, vr = world.ns("ctl1"), world.vr
    import os

    # missing bridge
    doc = controller_document(vr).model_copy(deep=True)
    raw = json.loads(doc.model_dump_json())
    raw["vrouter"]["public_bridge"] = "br-nope"
    bad = world.tmp / "bad.json"
    bad.write_text(json.dumps(raw))
    res = world.agent(ctl, "apply", *apply_args(world, bad), check=False)
    assert res.returncode != 0
    assert res.stderr.strip() == "failed: bridge 'br-nope' does not exist on this node"
    assert not os.path.exists(f"/run/netns/{vr}")
    # unknown document version
    raw["version"] = 99
    bad.write_text(json.dumps(raw))
    res = world.agent(ctl, "apply", *apply_args(world, bad), check=False)
    assert res.returncode == 2 and "version" in res.stderr and len(res.stderr.splitlines()) == 1
    # a foreign link with one of our names
    sh("ip", "-n", ctl, "link", "add", "vr-mgmt-h", "type", "veth", "peer", "name", "x0")
    good = world.write_doc(controller_document(vr))
    res = world.agent(ctl, "apply", *apply_args(world, good), check=False)
    assert res.returncode == 2
    assert "link 'vr-mgmt-h': name: exists on this node and is not envrouter's" in res.stderr
    assert not os.path.exists(f"/run/netns/{vr}")
    sh("ip", "-n", ctl, "link", "del", "vr-mgmt-h")
    world.agent(ctl, "apply", *apply_args(world, good))
    # non-root
    res = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            ENVROUTER,
            "agent",
            "status",
            "--document",
            str(good),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode != 0 and "needs root" in res.stderr


def test_concurrent_applies_serialise(world):
    world.build(1)
    ctl, vr = world.ns("ctl1"), world.vr
    args = apply_args(world, world.write_doc(controller_document(vr)))
    procs = [
        subprocess.Popen(
            [ENVROUTER, "agent", "apply", "--host-netns", ctl, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    world.pids += [p.pid for p in procs]
    outs = [p.communicate(timeout=60) for p in procs]
    for p in procs:
        world.pids.remove(p.pid)  # reaped: never signal a PID that may be reused
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    # exactly one of them did the work, the others found it done
    assert sorted(o.strip() == "nothing to do: converged" for o, _ in outs) == [
        False,
        True,
        True,
    ]
    assert world.agent(ctl, "status", *args).stdout.strip() == "converged"


def test_default_scope_leaves_an_ha_controllers_namespace_to_pacemaker(world):
    """One owner: in an HA environment the vrouter namespace is the Pacemaker vrouter clone's
    (which converges with scope vrouter). `agent apply|status|teardown` without --scope
    neither create it, nor report it, nor remove it."""
    world.build(1)
    ctl, vr = world.ns("ctl1"), world.vr
    doc = world.write_doc(controller_document(vr))
    own = apply_args(world, doc)[:-2]  # without "--scope all"
    assert "--scope" not in own
    assert world.agent(ctl, "apply", *own).stdout.strip() == "nothing to do: converged"
    assert not os.path.exists(f"/run/netns/{vr}")
    world.agent(ctl, "apply", *apply_args(world, doc))  # the clone's start, played by the test
    assert os.path.exists(f"/run/netns/{vr}")
    sh("ip", "netns", "exec", vr, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")  # drift
    assert world.agent(ctl, "status", *own).stdout.strip() == "converged"  # not its to report
    world.agent(ctl, "teardown", *own)
    assert os.path.exists(f"/run/netns/{vr}")  # the clone's stop removes it, not this
    # outside an HA environment the agent owns it all
    ha = controller_document(vr)
    solo = ha.model_copy(update={"environment": ha.environment.model_copy(update={"ha": False})})
    sown = apply_args(world, world.write_doc(solo, "solo.json"))[:-2]
    assert "sysctl net.ipv4.ip_forward=1" in world.agent(ctl, "apply", *sown).stdout
    world.agent(ctl, "teardown", *sown)
    assert not os.path.exists(f"/run/netns/{vr}")
