"""`envrouter status` and `envrouter metrics` on the lab's controllers: they agree with
Pacemaker, the kernel and the daemons, and a stopped resource is reported (non-zero exit,
named) until it is started again."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from envrouter.waiting import poll

pytestmark = [pytest.mark.root, pytest.mark.lab, pytest.mark.timeout(900)]

ENVROUTER = [sys.executable, "-m", "envrouter.cli.main"]
SETTLE = 240.0  # s: the cluster moves slowly on a loaded 2-core machine


def _status(lab, node: str) -> tuple[int, dict[str, Any], str]:
    p = lab.exec_in(node, [*ENVROUTER, "status", "--json"], check=False, timeout=120)
    assert p.stdout.strip(), p.stderr
    return p.returncode, json.loads(p.stdout), p.stderr


def _metrics(lab, node: str) -> dict[tuple[str, tuple], float]:
    p = lab.exec_in(node, [*ENVROUTER, "metrics"], timeout=120)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(p.stdout) for s in fam.samples}


def _until(what: str, probe, timeout: float = SETTLE, interval: float = 2.0):
    """Poll `probe` (it answers (reached, detail)) until reached; its detail."""
    last: list = []

    def reached() -> bool:
        last[:] = [probe()]
        return bool(last[0][0])

    if not poll(reached, timeout, interval):
        raise AssertionError(f"{what}: not reached in {timeout} s; last: {last[0][1]}")
    return last[0][1]


def _controllers(lab) -> list[str]:
    return [n.name for n in lab.plan.controllers]


def _all_healthy(lab) -> dict[str, dict[str, Any]]:
    def probe():
        out = {}
        for node in _controllers(lab):
            rc, st, err = _status(lab, node)
            if rc != 0:
                return False, f"{node}: {err.strip()}"
            out[node] = st
        return True, out

    return _until("every controller healthy", probe)


def _deployed(lab) -> None:
    dep = lab.state.get("deployment") or {}
    if dep.get("cluster_resources") != "applied":
        pytest.fail(f"the lab's cluster resources are not deployed: "
                    f"{lab.state.get('not_deployed_reason')}")


def test_status_agrees_with_pacemaker_kernel_and_daemons(lab) -> None:
    from envrouter.lab.cluster import cluster_view
    from envrouter.lab.status import vip_holders

    _deployed(lab)
    statuses = _all_healthy(lab)
    ctls = _controllers(lab)
    vips = lab.state["deployment"]["vips"]
    holders = {name: vip_holders(lab, addr) for name, addr in vips.items()}
    (holder,) = holders["vrouter"]
    assert holders["vrouter_pub"] == [holder]
    for node, st in statuses.items():
        view = cluster_view(lab, node)  # crm_mon, read by the lab's own code
        assert st["node"] == node and st["degraded"] is False and st["reasons"] == []
        assert st["cluster"]["quorate"] is True and st["cluster"]["dc"] == view.dc
        assert sorted(n["name"] for n in st["cluster"]["nodes"] if n["online"]) == sorted(
            view.online)
        for v in st["vips"]:
            assert v["address"] == vips[v["name"]]
            assert v["pacemaker_nodes"] == [holder] == view.resources[v["resource"]]
            assert v["here"] is (node == holder)
        assert st["conntrackd"]["answering"] and st["conntrackd"]["stats"]["device"] == "vr-mgmt"
        assert st["dns"]["answering"] and st["ntp"]["answering"]
        assert [u["reachable"] for u in st["dns"]["upstreams"]] == [True]
        upstream = [s for s in st["ntp"]["sources"] if s["upstream"]]
        assert [s["address"] for s in upstream] == [lab.plan.upstream_ntp]
        assert {s["address"] for s in st["ntp"]["sources"] if not s["upstream"]} == {
            p["namespace_address"] for p in _peers(lab, node)}
    assert sorted(statuses) == sorted(ctls)

    # DNS: a query from a compute node through the VIP shows in the holder's counters
    before = statuses[holder]["dns"]
    q = lab.exec_in(lab.plan.computes[0].name, ["dig", "+short", "+time=2",
                                                f"@{vips['vrouter']}", f"www.{lab.plan.zone}"])
    assert lab.plan.upstream_http in q.stdout.split()
    _, after, _ = _status(lab, holder)
    assert (after["dns"]["hits"] + after["dns"]["misses"]
            > before["hits"] + before["misses"])

    # conntrack: a flow NATed by the holder reaches the other controllers' kernel tables (no
    # external cache: the peers inject each flow as it arrives, docs/ha.md "At scale")
    other = next(n for n in ctls if n != holder)
    compute = lab.plan.computes[0]
    lab.exec_in(compute.name, ["ping", "-c", "3", "-i", "0.2", lab.plan.upstream_http])

    def synced():
        table = lab.exec_in(other, ["ip", "netns", "exec", "vrouter", "conntrack", "-L", "-p",
                                    "icmp", "--dst", lab.plan.upstream_http], check=False).stdout
        return f"src={compute.address('management')} " in table, table

    _until(f"the flow in {other}'s kernel table", synced, timeout=25, interval=1.0)
    _, st_holder, _ = _status(lab, holder)
    assert st_holder["conntrack"]["entries"] >= 1
    assert st_holder["conntrackd"]["stats"]["internal_active"] >= 1

    # metrics: the same facts
    m = _metrics(lab, holder)
    assert m[("envrouter_degraded", (("node", holder),))] == 0
    assert m[("envrouter_cluster_quorate", (("node", holder),))] == 1
    for name, addr in vips.items():
        assert m[("envrouter_vip_held", (("address", addr), ("vip", name)))] == 1
    assert m[("envrouter_resource_instances_running", (("resource", "dns-clone"),))] == len(ctls)
    assert m[("envrouter_dns_upstream_reachable", (("upstream", lab.plan.upstream_dns),))] == 1
    m2 = _metrics(lab, other)
    for name, addr in vips.items():
        assert m2[("envrouter_vip_held", (("address", addr), ("vip", name)))] == 0


def _peers(lab, node: str) -> list[dict[str, str]]:
    p = lab.exec_in(node, ["cat", "/var/lib/envrouter/document.json"])
    return json.loads(p.stdout)["vrouter"]["peers"]


def test_stopped_resource_is_degraded_until_started(lab) -> None:
    _deployed(lab)
    _all_healthy(lab)
    node = _controllers(lab)[0]
    stop = ["crm_resource", "--resource", "dns-clone", "--meta", "--set-parameter",
            "target-role", "--parameter-value", "Stopped"]
    start = ["crm_resource", "--resource", "dns-clone", "--meta", "--delete-parameter",
             "target-role"]
    lab.exec_in(node, stop, timeout=60)
    try:
        def degraded():
            rc, st, err = _status(lab, node)
            return rc != 0 and "dns-clone" in err, (rc, err.strip(), st["reasons"])

        rc, err, reasons = _until("status degraded, naming dns-clone", degraded)
        assert rc == 1
        assert err.startswith("degraded: ") and "\n" not in err
        assert any(r.startswith("resource dns-clone: stopped") for r in reasons), reasons
        table = lab.exec_in(node, [*ENVROUTER, "status"], check=False, timeout=120)
        assert table.returncode == 1 and "DEGRADED" in table.stdout
        m = _metrics(lab, node)
        assert m[("envrouter_degraded", (("node", node),))] == 1
        assert m[("envrouter_resource_instances_running", (("resource", "dns-clone"),))] == 0
    finally:
        lab.exec_in(node, start, timeout=60)
    _all_healthy(lab)
