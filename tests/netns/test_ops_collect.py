"""`envrouter status` / `metrics` against real daemons in test namespaces (no cluster here).

Topology (prefix ert-<random>-): `vr1` and `vr2` play two controllers' vrouter namespaces on a
management bridge (in `sw`); `vr1` has a public link to `up`, the upstream, which runs an
authoritative dnsmasq and a chronyd server. conntrackd (both), dnsmasq and chrony (vr1) are
started by the services layer exactly as the OCF agents start them, under a private run root.
The collector must report what the daemons report; no Pacemaker runs in this namespace, so the
cluster is reported unavailable and the status is degraded for that reason, by name.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cleanup import remove_namespaces, stop_daemons
from prometheus_client.parser import text_string_to_metric_families

from agent_documents import services_document
from envrouter.ops.assess import assess
from envrouter.ops.collect import CollectOptions, collect
from envrouter.services import conntrackd, dns, ntp
from envrouter.waiting import wait_until

pytestmark = [pytest.mark.root, pytest.mark.timeout(180)]

UP = "10.30.0.1"
VR1, VR2 = "10.20.0.101", "10.20.0.102"
VIP = "10.20.0.2"
ENVROUTER = [sys.executable, "-m", "envrouter.cli.main"]


def _ns(ns: str, *argv: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                          timeout=30, check=check)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from pyroute2 import NetNS, netns

    prefix = f"ert-{secrets.token_hex(3)}"
    sw, vr1, vr2, up = (f"{prefix}-{n}" for n in ("sw", "vr1", "vr2", "up"))
    base = tmp_path_factory.mktemp("ops")
    run_root = Path(f"/run/{prefix}")
    daemons, upstream = [], {}
    try:
        for n in (sw, vr1, vr2, up):
            netns.create(n)
        with NetNS(sw) as s:
            s.link("add", ifname="br-mgmt", kind="bridge", br_stp_state=0, br_forward_delay=0)
            s.link("set", index=s.link_lookup(ifname="br-mgmt")[0], state="up")
        for ns, addr, port in ((vr1, VR1, "p1"), (vr2, VR2, "p2")):
            with NetNS(ns) as a:
                a.link("set", index=a.link_lookup(ifname="lo")[0], state="up")
                a.link("add", ifname="vr-mgmt", kind="veth",
                       peer={"ifname": port, "net_ns_fd": sw})
                i = a.link_lookup(ifname="vr-mgmt")[0]
                a.addr("add", index=i, address=addr, prefixlen=24)
                a.link("set", index=i, state="up")
            with NetNS(sw) as s:
                s.link("set", index=s.link_lookup(ifname=port)[0],
                       master=s.link_lookup(ifname="br-mgmt")[0], state="up")
        with NetNS(vr1) as a:
            a.link("add", ifname="vr-pub", kind="veth", peer={"ifname": "up0", "net_ns_fd": up})
            i = a.link_lookup(ifname="vr-pub")[0]
            a.addr("add", index=i, address="10.30.0.101", prefixlen=24)
            a.link("set", index=i, state="up")
            a.addr("add", index=a.link_lookup(ifname="vr-mgmt")[0], address=VIP, prefixlen=24)
        with NetNS(up) as u:
            u.link("set", index=u.link_lookup(ifname="lo")[0], state="up")
            i = u.link_lookup(ifname="up0")[0]
            u.addr("add", index=i, address=UP, prefixlen=24)
            u.link("set", index=i, state="up")
        updir = run_root / "upstream"
        updir.mkdir(parents=True)
        shutil.chown(updir, "_chrony", "_chrony")
        os.chmod(updir, 0o750)
        (updir / "chrony.conf").write_text(
            f"local stratum 3\nallow all\ncmdport 0\nbindcmdaddress {updir}/sock\n"
            f"pidfile {updir}/chronyd.pid\n")
        upstream["dns"] = subprocess.Popen(
            ["ip", "netns", "exec", up, "dnsmasq", "-k", "-C", "/dev/null", "--no-resolv",
             "--no-hosts", "--bind-interfaces", f"--listen-address={UP}", "--user=root",
             f"--pid-file={updir}/dnsmasq.pid", f"--auth-server=ns.test.example,{UP}",
             "--auth-zone=test.example", "--host-record=www.test.example,203.0.113.7"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        upstream["ntp"] = subprocess.Popen(
            ["ip", "netns", "exec", up, "chronyd", "-x", "-d", "-f", str(updir / "chrony.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        d1, d2 = services_document(vr1, me=VR1, peer=VR2), services_document(vr2, me=VR2, peer=VR1)
        doc1 = base / "document.json"
        doc1.write_text(d1.model_dump_json())
        v1, v2 = d1.vrouter, d2.vrouter
        kw = {"run_root": str(run_root / "run"), "log_root": str(run_root / "log")}
        for d in (conntrackd.daemon(v1, **kw), conntrackd.daemon(v2, **kw), dns.daemon(v1, **kw),
                  ntp.daemon(v1, **kw)):
            daemons.append(d)
            d.start()
        assert wait_until(lambda: _ns(up, "dig", "+short", "+time=1", f"@{UP}",
                                      "www.test.example").stdout.strip() == "203.0.113.7", 20)
        yield {"vr1": vr1, "vr2": vr2, "up": up, "doc": str(doc1), "base": base,
               "run_root": kw["run_root"], "upstream": upstream, "daemons": daemons}
    finally:
        stop_daemons(daemons)
        for p in upstream.values():
            if p.poll() is None:
                p.terminate()
                p.wait(10)
        remove_namespaces((sw, vr1, vr2, up))
        shutil.rmtree(run_root, ignore_errors=True)


def _opts(world, **kw) -> CollectOptions:
    return CollectOptions(document=world["doc"], run_root=world["run_root"], node="ctl1", **kw)


def test_collect_reports_what_the_daemons_report(world) -> None:
    vr1, vr2 = world["vr1"], world["vr2"]
    for sport in (41001, 41002, 41003):
        _ns(vr1, "conntrack", "-I", "-p", "tcp", "-s", "10.20.0.50", "-d", "198.51.100.1",
            "--sport", str(sport), "--dport", "80", "--state", "ESTABLISHED", "--timeout", "600",
            "-u", "SEEN_REPLY,ASSURED", check=True)
    # a miss, then two hits through the vrouter's dnsmasq
    for _ in range(3):
        out = _ns(vr1, "dig", "+short", "+time=2", f"@{VR1}", "www.test.example").stdout
        assert out.split() == ["203.0.113.7"]

    def synced():
        st = collect(_opts(world))
        ok = (st.ntp.tracking and st.ntp.tracking.ref_address == UP and st.conntrackd.stats
              and st.conntrackd.stats.internal_active >= 3)
        return st if ok else None

    assert wait_until(lambda: synced() is not None, 60, 1.0), collect(_opts(world)).to_dict()
    st = synced()
    assert st is not None
    assert st.namespace == vr1 and st.namespace_present and st.document == world["doc"]
    assert not st.cluster.available  # no Pacemaker in this network namespace
    vips = {v.name: v for v in st.vips}
    assert vips["vrouter"].here is True and vips["vrouter_pub"].here is False
    # every VIP is carried by the layout's one primitive `vips` (not in any CIB here)
    assert {v.resource for v in st.vips} == {"vips"}
    assert all(v.pacemaker_nodes == [] for v in st.vips)
    # conntrackd: the three flows in the internal cache, over UDP to the peer, no errors
    x = st.conntrackd.stats
    assert st.conntrackd.answering and x.internal_active >= 3 and x.transport == "UDP"
    assert x.device == "vr-mgmt" and x.sync_errors == 0 and x.uptime_minutes is not None
    assert st.conntrack.entries >= 3 and st.conntrack.max > 0
    # dnsmasq: its own counters, the upstream reachable from the namespace
    assert st.dns.answering and st.dns.listen == VR1 and st.dns.cache_size == 10000
    assert st.dns.misses >= 1 and st.dns.hits >= 2
    (up,) = st.dns.upstreams
    assert up.address == UP and up.reachable is True and up.queries >= 1
    # chrony: synchronised to the upstream (stratum 3 + 1), the peer is not an upstream
    assert st.ntp.tracking.stratum == 4 and st.ntp.tracking.ref_address == UP
    assert {(s.address, s.upstream) for s in st.ntp.sources} == {(UP, True), (VR2, False)}
    assert assess(st) == ["cluster: not available (" + st.cluster.error + ")"]
    # the peer namespace: the flows were injected into its kernel table (no external cache)
    def peer():
        return collect(CollectOptions(document=world["doc"], run_root=world["run_root"],
                                      node="ctl2", namespace=vr2))

    assert wait_until(lambda: (peer().conntrack.entries or 0) >= 3, 30, 0.5), peer()
    ps = peer().conntrackd.stats
    assert ps.external_active is None and ps.internal_active == 0 and ps.external_failed == 0


def test_cli_status_and_metrics(world) -> None:
    args = ["--document", world["doc"], "--run-root", world["run_root"]]
    state = world["base"] / "state"
    state.mkdir()
    res = subprocess.run([*ENVROUTER, "status", "--json", "--state-dir", str(state), *args],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1, res.stderr
    out = json.loads(res.stdout)
    assert out["degraded"] is True and out["reasons"][0].startswith("cluster: not available")
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("degraded: cluster: ")
    assert (state / "status-last.json").exists()
    table = subprocess.run([*ENVROUTER, "status", "--state-dir", str(state), *args],
                           capture_output=True, text=True, timeout=60, env={
                               **os.environ, "COLUMNS": "160"})
    assert table.returncode == 1
    for text in ("conntrackd", "NAT table", "DNS (dnsmasq)", "NTP (chrony)", "DEGRADED",
                 world["vr1"]):
        assert text in table.stdout, text
    # the VIPs table names the resource that carries the management VIP: `vips`
    assert any("vips" in line and VIP in line for line in table.stdout.splitlines()), \
        table.stdout
    prom = world["base"] / "envrouter.prom"
    res = subprocess.run([*ENVROUTER, "metrics", "--output", str(prom), *args],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(prom.read_text()) for s in fam.samples}
    assert [v for (name, _), v in samples.items() if name == "envrouter_cluster_available"] == [0]
    assert samples[("envrouter_dns_up", ())] == 1
    assert samples[("envrouter_ntp_up", ())] == 1
    assert samples[("envrouter_conntrackd_up", ())] == 1
    assert samples[("envrouter_dns_upstream_reachable", (("upstream", UP),))] == 1
    assert [p.name for p in prom.parent.iterdir() if p.name.startswith(".envrouter-metrics")] == []


def test_upstreams_down_are_named(world) -> None:
    """Last in this module: stops the upstream servers."""
    for p in world["upstream"].values():
        p.terminate()
        p.wait(10)
    st = collect(_opts(world))
    (up,) = st.dns.upstreams
    assert up.reachable is False
    reasons = assess(st)
    assert f"dns: upstream {UP} not answering from namespace {world['vr1']}" in reasons
    # a name resolved before is still answered by the vrouter's cache
    out = _ns(world["vr1"], "dig", "+short", "+time=2", f"@{VR1}", "www.test.example").stdout
    assert out.split() == ["203.0.113.7"]


def test_daemon_killed_is_reported(world) -> None:
    d = world["daemons"][0]  # conntrackd in vr1
    d.stop()
    st = collect(_opts(world))
    assert not st.conntrackd.answering and st.conntrackd.error
    reasons = assess(st)
    assert any(r.startswith("conntrackd: not answering on ctl1") for r in reasons), reasons
