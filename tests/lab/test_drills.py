"""Failover drills in the shared lab: a hard kill and a planned switchover (standby) while TCP,
UDP and ICMP traffic flows from the compute nodes through the NAT. Every TCP connection must
survive and the VIPs must move; each drill puts the lab back (power-on / unstandby) before it
returns. The drills run through the CLI (`envrouter lab drill ... --json`), as an operator would.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

pytestmark = [pytest.mark.root, pytest.mark.lab]


def _drill(lab, labtools, name: str, *extra: str) -> dict:
    from envrouter.lab.nodes import Lab

    try:
        res = labtools.run_cli("lab", "drill", name, "--json", "--state-dir",
                               lab.plan.state_dir, *extra, timeout=420)
    finally:
        # the drill ran in another process; a power-on recorded a new anchor in the state
        # file: the shared fixture must see it (the other lab tests use it after this one)
        lab.state = Lab.load(lab.plan.state_dir).state
    assert res.stdout.strip(), res.stderr[-3000:]
    (report,) = json.loads(res.stdout)
    assert res.returncode == 0, (report["failures"], res.stderr[-2000:])
    return report


def _check_moved_and_survived(report: dict) -> None:
    assert report["failures"] == []
    assert report["tcp_total"] >= 4 and report["tcp_surviving"] == report["tcp_total"]
    assert report["udp_total"] >= 2 and report["udp_surviving"] == report["udp_total"]
    assert report["icmp_surviving"] == report["icmp_total"] >= 1
    assert report["holder_after"] not in (None, report["holder_before"])
    for vip, holders in report["holders_after"].items():
        assert holders == [report["holder_after"]], (vip, holders)
    assert report["vips_moved_after_ms"] is not None
    assert 0 < report["longest_gap_ms"] < 30_000


def test_hard_kill_moves_the_vips_and_keeps_every_connection(lab, labtools) -> None:
    report = _drill(lab, labtools, "hard-kill")
    _check_moved_and_survived(report)
    # the killed controller was powered on again (and the drill waited for it to rejoin)
    assert lab.node_running(report["holder_before"])


def test_standby_moves_the_vips_and_keeps_every_connection(lab, labtools, tmp_path) -> None:
    report = _drill(lab, labtools, "standby", "--plot", str(tmp_path / "standby.svg"))
    _check_moved_and_survived(report)
    # its timeline: one lane per flow of the report (envrouter.lab.timeline)
    root = ET.parse(tmp_path / "standby.svg").getroot()
    lanes = [g.get("id") for g in root.iter("{http://www.w3.org/2000/svg}g")
             if (g.get("id") or "").startswith("lane-")]
    assert sorted(lanes) == sorted(f"lane-{f['flow']}" for f in report["flows"])

