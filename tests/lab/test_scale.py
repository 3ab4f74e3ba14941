"""Failover at scale in the shared lab: 20,000 idle TCP connections through the NAT, a churn
of new connections (200 a second) and UDP flows, then a planned switchover (standby) and a hard
kill. Every idle, active and new connection (established at least 200 ms before the fault)
must answer the check after it, every UDP flow keep its NAT mapping, and the VIPs end on
exactly one other controller. No stopwatch assertion: the times are bench/failover.py's.

Needs envrouter's conntrackd (packaging/conntrackd; the suite checks at its start): with
Debian's 1.4.7 a drill that follows another within 120 s lost a few idle connections, peers'
copies on another NAT port (docs/ha.md "At scale"). With envrouter's build no peer holds a copy
on another port after any drill, but some hard kills still lose idle connections (89 of 20,000
here on 2026-12-02; 0, 0 and 162 in four drills back to back on another lab, "established, no
check round trip"): issue #12 is open. When the ONLY failures of a drill are such idle/new TCP
connection losses, the test is reported as XFAIL with the figures (visible in the summary); any
other failure (a VIP on two or no controllers, an active stream or UDP flow lost, a NAT mapping
changed, missing records) fails.
"""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.root, pytest.mark.lab]

CONNECTIONS = 20_000


def _drill(lab, labtools, name: str) -> dict:
    from envrouter.lab.nodes import Lab

    try:
        res = labtools.run_cli("lab", "drill", name, "--connections", str(CONNECTIONS),
                               "--json", "--state-dir", lab.plan.state_dir, timeout=600)
    finally:
        # a power-on recorded a new anchor: the shared fixture must see it
        lab.state = Lab.load(lab.plan.state_dir).state
    assert res.stdout.strip(), res.stderr[-3000:]
    (report,) = json.loads(res.stdout)
    assert res.returncode in (0, 1), res.stderr[-2000:]
    assert (res.returncode == 0) == (report["failures"] == []), report["failures"][:20]
    return report


def _known_loss(failure: str) -> bool:
    return failure.startswith(("idle TCP connections lost:", "new TCP connections"))


def _every_flow_survived_and_the_vips_moved(report: dict) -> None:
    after = report["holder_after"]
    assert after not in (None, report["holder_before"])
    for vip, holders in report["holders_after"].items():
        assert holders == [after], (vip, holders)
    load = report["load"]
    assert load["idle_total"] == CONNECTIONS  # every idle connection has a record
    assert load["new_total"] > 0
    assert load["udp_total"] > 0 and load["udp_ok"] == load["udp_total"]
    assert report["tcp_total"] > 0 and report["tcp_surviving"] == report["tcp_total"]
    assert report["udp_surviving"] == report["udp_total"] > 0
    others = [f for f in report["failures"] if not _known_loss(f)]
    assert others == [], others
    if report["failures"]:
        pytest.xfail("issue #12 open, idle connections lost in a hard kill with envrouter's "
                     "conntrackd (docs/ha.md At scale): " + "; ".join(report["failures"]))
    assert load["idle_ok"] == CONNECTIONS and load["new_ok"] == load["new_total"]


def test_standby_at_scale_keeps_every_flow(lab, labtools) -> None:
    _every_flow_survived_and_the_vips_moved(_drill(lab, labtools, "standby"))


def test_hard_kill_at_scale_keeps_every_flow(lab, labtools) -> None:
    report = _drill(lab, labtools, "hard-kill")
    assert lab.node_running(report["holder_before"])  # powered on again
    _every_flow_survived_and_the_vips_moved(report)
