"""assess(): which states are degraded and how the reason reads; the metrics built from the same
Status. Every Status here is built from outputs captured from the real tools (test_ops_data).
Every VIP is carried by the layout's one primitive ``vips``: each has its VipStatus, all with
that resource and its nodes (as `envrouter.ops.collect` builds them)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from envrouter.ha.layout import VIPS
from envrouter.ops.assess import assess
from envrouter.ops.collect import expected_resources
from envrouter.ops.metrics import registry_for, render
from envrouter.ops.model import (
    ConntrackdStatus,
    ConntrackTable,
    DnsStatus,
    DnsUpstream,
    NtpStatus,
    Status,
    VipStatus,
)
from envrouter.ops.parse import (
    chaos_int,
    parse_chrony_sources_csv,
    parse_chrony_tracking_csv,
    parse_conntrackd_stats,
    parse_crm_mon,
    parse_dnsmasq_chaos,
)

DATA = Path(__file__).parent / "test_ops_data"
PEERS = {"192.168.0.201", "192.168.0.202"}


def data(name: str) -> str:
    return (DATA / name).read_text()


def vips_on(text: str, *nodes: str, target_role: str | None = None) -> str:
    """crm_mon XML `text` with the `vips` primitive active on `nodes` (none: stopped), as
    crm_mon shows it."""
    ids = {"ctl1": 1, "ctl2": 2, "ctl3": 3}
    role = "Started" if nodes else "Stopped"
    tr = f' target_role="{target_role}"' if target_role else ""
    head = (f'<resource id="{VIPS}" resource_agent="ocf:envrouter:vip" role="{role}"{tr} '
            f'active="{str(bool(nodes)).lower()}" orphaned="false" blocked="false" '
            'managed="true" failed="false" failure_ignored="false" '
            f'nodes_running_on="{len(nodes)}"')
    element = (head + ">" + "".join(f'<node name="{n}" id="{ids[n]}" cached="true"/>'
                                    for n in nodes) + "</resource>") if nodes else head + "/>"
    new, n = re.subn(rf'<resource id="{VIPS}" [^>]*>.*?</resource>', element, text, flags=re.S)
    assert n == 1, "the fixture has one vips primitive"
    return new


def make_status(crm: str = "crm_mon_healthy.xml", node: str = "ctl1", *,
                crm_text: str | None = None) -> Status:
    cluster = parse_crm_mon(crm_text if crm_text is not None else data(crm))
    vips = [VipStatus(name=n, resource=VIPS, address=a,
                      pacemaker_nodes=cluster.active_nodes(VIPS),
                      here=node in cluster.active_nodes(VIPS))
            for n, a in (("vrouter", "192.168.0.2"), ("vrouter_pub", "203.0.113.2"))]
    chaos = parse_dnsmasq_chaos(data("dig_noall_answer.txt"))
    sources = parse_chrony_sources_csv(data("chronyc_csv_sources_lab.txt"))
    for s in sources:
        s.upstream = s.address not in PEERS
    return Status(
        node=node, namespace="vrouter", document="/var/lib/envrouter/document.json",
        document_error=None, namespace_present=True, cluster=cluster, vips=vips,
        conntrackd=ConntrackdStatus(
            configured=True, answering=True,
            stats=parse_conntrackd_stats(data("conntrackd_s_holder.txt"),
                                         data("conntrackd_s_runtime_lab.txt")),
            promoted_marker=True, promoted_since=1.0),
        conntrack=ConntrackTable(entries=12, max=262144),
        dns=DnsStatus(listen="192.168.0.200", answering=True,
                      cache_size=chaos_int(chaos, "cachesize.bind"),
                      hits=chaos_int(chaos, "hits.bind"), misses=chaos_int(chaos, "misses.bind"),
                      insertions=1, evictions=0,
                      upstreams=[DnsUpstream("198.51.100.53", True, 1, 0)]),
        ntp=NtpStatus(answering=True,
                      tracking=parse_chrony_tracking_csv(data("chronyc_csv_tracking_lab.txt")),
                      sources=sources),
        expected_resources=expected_resources(None), collected_at=1795569896.0,
    )


@pytest.mark.parametrize("node", ["ctl1", "ctl2", "ctl3"])
def test_healthy_cluster_is_healthy_on_every_controller(node: str) -> None:
    st = make_status(node=node)
    assert assess(st) == []


def test_vips_moved_is_healthy_where_they_are_now() -> None:
    assert assess(make_status("crm_mon_vip_banned.xml", node="ctl2")) == []
    assert assess(make_status("crm_mon_vip_banned.xml", node="ctl1")) == []


def test_stopped_clone_is_named_once() -> None:
    st = make_status("crm_mon_dns_stopped.xml")
    assert assess(st) == [
        "resource dns-clone: stopped (target-role=Stopped) on ctl1, ctl2, ctl3"]


def test_failed_instance_is_named_with_its_node() -> None:
    reasons = assess(make_status("crm_mon_dns_failed.xml", node="ctl3"))
    assert reasons == ["resource dns: failed on ctl3"]


def test_no_quorum_comes_first() -> None:
    text = data("crm_mon_healthy.xml").replace('with_quorum="true"', 'with_quorum="false"')
    reasons = assess(make_status(crm_text=text))
    assert reasons[0] == "cluster: no quorum"


def test_offline_member_is_named_and_its_clones_not_expected() -> None:
    text = data("crm_mon_healthy.xml").replace(
        '<node name="ctl3" id="3" online="true"', '<node name="ctl3" id="3" online="false"')
    text = text.replace('<node name="ctl3" id="3" cached="true"/>', "")
    reasons = assess(make_status(crm_text=text))
    assert reasons == ["cluster: node ctl3 offline"]


def test_standby_member() -> None:
    text = data("crm_mon_healthy.xml").replace(
        'name="ctl2" id="2" online="true" standby="false"',
        'name="ctl2" id="2" online="true" standby="true"')
    assert "cluster: node ctl2 in standby" in assess(make_status(crm_text=text))


def test_cluster_unavailable_still_checks_the_daemons() -> None:
    st = make_status()
    st.cluster = dataclasses.replace(st.cluster, available=False, error="crm_mon: not connected")
    st.dns.answering, st.dns.error = False, "connection timed out"
    assert assess(st) == ["cluster: not available (crm_mon: not connected)",
                          "dns: dnsmasq not answering on 192.168.0.200 (connection timed out)"]


def test_vips_nowhere_and_twice_and_a_vip_apart() -> None:
    """`vips` stopped or active on two nodes: one reason, naming every VIP it carries."""
    st = make_status(crm_text=vips_on(data("crm_mon_healthy.xml")))
    assert assess(st) == ["VIP vips (192.168.0.2, 203.0.113.2): not running"]
    st = make_status(crm_text=vips_on(data("crm_mon_healthy.xml"), target_role="Stopped"))
    assert assess(st) == ["VIP vips (192.168.0.2, 203.0.113.2): stopped (target-role=Stopped)"]
    st = make_status(crm_text=vips_on(data("crm_mon_healthy.xml"), "ctl1", "ctl2"))
    assert assess(st) == ["VIP vips (192.168.0.2, 203.0.113.2): running on ctl1 and ctl2"]
    # one primitive cannot run the VIPs apart; a kernel can still hold one of them apart: ctl2's
    # namespace has the public VIP while Pacemaker runs `vips` on ctl1
    st = make_status(node="ctl2")
    st.vips[1].here = True
    assert assess(st) == [
        "VIP 203.0.113.2: configured in namespace vrouter on ctl2 but Pacemaker runs "
        "vips on ctl1 (split brain?)"]


def test_kernel_and_pacemaker_disagree_on_a_vip() -> None:
    st = make_status(node="ctl2")
    st.vips[0].here = True  # ctl2's namespace has the VIP, Pacemaker runs it on ctl1
    assert assess(st) == [
        "VIP 192.168.0.2: configured in namespace vrouter on ctl2 but Pacemaker runs "
        "vips on ctl1 (split brain?)"]
    st = make_status(node="ctl1")
    st.vips[1].here = False
    assert assess(st) == [
        "VIP 203.0.113.2: Pacemaker runs vips on ctl1 but the address is missing "
        "from namespace vrouter"]


def test_conntrackd_promoted_away_from_the_vips() -> None:
    text = data("crm_mon_healthy.xml").replace('role="Promoted"', 'role="Unpromoted"')
    assert "resource conntrackd: promoted nowhere" in assess(make_status(crm_text=text))
    st = make_status(crm_text=vips_on(data("crm_mon_vip_banned.xml"), "ctl3"), node="ctl2")
    assert st.vips[0].pacemaker_nodes == st.vips[1].pacemaker_nodes == ["ctl3"]
    assert assess(st) == ["resource conntrackd: promoted on ctl2 but the VIPs are on ctl3"]


def test_conntrackd_down_and_sync_errors_growing() -> None:
    st = make_status()
    st.conntrackd = ConntrackdStatus(configured=True, answering=False,
                                     error="can't connect: is conntrackd running?")
    assert assess(st) == [
        "conntrackd: not answering on ctl1 (can't connect: is conntrackd running?)"]
    st = make_status()
    # on the multicast group "Lost msgs" counts the interleaving of several senders' sequence
    # numbers, not losses: the receive buffer drops of the namespace count instead
    st.conntrackd.stats.lost_msgs = 1000
    st.conntrackd.stats.rcvbuf_errors = 7
    assert assess(st, previous_sync_errors=7) == []
    assert assess(st, previous_sync_errors=None) == []
    assert assess(st, previous_sync_errors=2) == [
        "conntrackd: sync errors grew by 5 since the previous check"]
    st.conntrackd.stats.transport = "UDP"  # one sender: a gap is a loss
    st.conntrackd.stats.rcvbuf_errors = 0
    st.conntrackd.stats.lost_msgs = 7
    assert assess(st, previous_sync_errors=2) == [
        "conntrackd: sync errors grew by 5 since the previous check"]
    assert assess(st, previous_sync_errors=20) == []  # restarted daemon: counters reset


def test_conntrackd_not_configured_is_not_expected() -> None:
    st = make_status()
    st.expected_resources.remove("conntrackd-clone")
    st.conntrackd = ConntrackdStatus(configured=False, answering=False, error="no configuration")
    assert assess(st) == []


def test_conntrack_table_nearly_full() -> None:
    st = make_status()
    st.conntrack = ConntrackTable(entries=950, max=1000)
    assert assess(st) == ["conntrack table: 950 of 1000 entries (95 %)"]


def test_dns_upstream_unreachable() -> None:
    st = make_status()
    st.dns.upstreams = [DnsUpstream("198.51.100.53", False, 4, 0, "timed out")]
    assert assess(st) == ["dns: upstream 198.51.100.53 not answering from namespace vrouter"]


def test_dns_not_checked_where_pacemaker_stopped_it() -> None:
    st = make_status("crm_mon_dns_stopped.xml")
    st.dns.answering, st.dns.error = False, "connection refused"
    assert not any(r.startswith("dns:") for r in assess(st))


def test_ntp_without_reachable_upstream_serves_local_stratum() -> None:
    st = make_status()
    st.ntp = NtpStatus(
        answering=True,
        tracking=parse_chrony_tracking_csv(data("chronyc_csv_tracking_start.txt")),
        sources=parse_chrony_sources_csv(data("chronyc_csv_sources_start.txt")))
    assert assess(st) == ["ntp: no upstream source reachable (serving local stratum 8)"]


def test_ntp_down_and_unsynchronised() -> None:
    st = make_status()
    st.ntp = NtpStatus(answering=False, error="506 Cannot talk to daemon")
    assert assess(st) == ["ntp: chronyd not answering (506 Cannot talk to daemon)"]
    st = make_status()
    st.ntp.tracking.leap_status = "Not synchronised"
    assert assess(st) == ["ntp: not synchronised (leap status Not synchronised, stratum 4)"]


def test_namespace_missing_and_resource_not_configured() -> None:
    st = make_status()
    st.namespace_present = False
    st.vips[0].here = st.vips[1].here = False
    reasons = assess(st)
    assert reasons[:2] == [
        "VIP 192.168.0.2: Pacemaker runs vips on ctl1 but the address is missing from "
        "namespace vrouter",
        "VIP 203.0.113.2: Pacemaker runs vips on ctl1 but the address is missing from "
        "namespace vrouter"]
    assert "namespace vrouter: missing on ctl1" in reasons
    st = make_status()
    st.expected_resources.append("extra-clone")
    assert assess(st) == ["resource extra-clone: not configured (envrouter ha apply)"]


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_carry_the_status() -> None:
    st = make_status()
    text = render(registry_for(st, assess(st)))
    m = _samples(text)
    assert m[("envrouter_degraded", (("node", "ctl1"),))] == 0
    assert m[("envrouter_cluster_quorate", (("node", "ctl1"),))] == 1
    assert m[("envrouter_cluster_is_dc", (("node", "ctl1"),))] == 0
    assert m[("envrouter_vip_held", (("address", "192.168.0.2"), ("vip", "vrouter")))] == 1
    assert m[("envrouter_resource_instances_running", (("resource", "dns-clone"),))] == 3
    assert m[("envrouter_resource_running", (("member", "ctl1"), ("resource",
              "conntrackd-clone"), ("role", "Promoted")))] == 1
    assert m[("envrouter_conntrackd_cache_entries", (("cache", "internal"),))] == 1
    assert m[("envrouter_conntrackd_sync_packets_total", (("direction", "received"),))] == 82
    # multicast: "lost" is not a loss there (see assess); the namespace's drops are
    assert ("envrouter_conntrackd_sync_errors_total", (("kind", "lost"),)) not in m
    assert m[("envrouter_conntrackd_sync_errors_total", (("kind", "malformed"),))] == 0
    assert m[("envrouter_conntrack_entries", ())] == 12
    assert m[("envrouter_dns_cache_size", ())] == 10000
    assert m[("envrouter_dns_cache_hits_total", ())] == 2
    assert m[("envrouter_dns_upstream_reachable", (("upstream", "198.51.100.53"),))] == 1
    assert m[("envrouter_ntp_stratum", ())] == 4
    assert m[("envrouter_ntp_sources_reachable", (("kind", "peer"),))] == 2
    assert m[("envrouter_ntp_source_reach", (("kind", "upstream"),
                                             ("source", "198.51.100.123")))] == 0o77


def test_metrics_leave_out_what_could_not_be_asked() -> None:
    st = make_status("crm_mon_dns_stopped.xml")
    st.ntp = NtpStatus(answering=False, error="506 Cannot talk to daemon")
    st.conntrack = ConntrackTable(entries=None, max=None, error="namespace vrouter missing")
    reasons = assess(st)
    m = _samples(render(registry_for(st, reasons)))
    assert m[("envrouter_degraded", (("node", "ctl1"),))] == 1
    assert m[("envrouter_degraded_reasons", (("node", "ctl1"),))] == len(reasons) == 2
    assert m[("envrouter_ntp_up", ())] == 0
    assert m[("envrouter_resource_instances_running", (("resource", "dns-clone"),))] == 0
    names = {k[0] for k in m}
    assert "envrouter_ntp_stratum" not in names
    assert "envrouter_ntp_sources_reachable" not in names
    assert "envrouter_conntrack_entries" not in names
