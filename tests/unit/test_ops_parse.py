"""Parsers of the tools' reports, against outputs captured from the real tools on this machine
(tests/unit/test_ops_data/: crm_mon of the lab's 3-controller cluster, healthy and degraded,
its two VIP primitives since made the layout's one ``vips``; conntrackd 1.4.7 over UDP and
multicast; chronyc 4.3 CSV; dnsmasq 2.90 CHAOS answers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from envrouter.ops.parse import (
    ParseError,
    chaos_int,
    parse_chrony_sources_csv,
    parse_chrony_tracking_csv,
    parse_conntrack_count,
    parse_conntrackd_stats,
    parse_crm_mon,
    parse_crmadmin_state,
    parse_dnsmasq_chaos,
    parse_dnsmasq_servers,
)

DATA = Path(__file__).parent / "test_ops_data"


def data(name: str) -> str:
    return (DATA / name).read_text()


def test_crm_mon_healthy_cluster() -> None:
    c = parse_crm_mon(data("crm_mon_healthy.xml"))
    assert c.available and c.quorate is True and c.dc == "ctl2"
    assert c.stonith_enabled is False and c.maintenance_mode is False
    assert [(n.name, n.online, n.is_dc) for n in c.nodes] == [
        ("ctl1", True, False), ("ctl2", True, True), ("ctl3", True, False)]
    assert all(n.eligible for n in c.nodes)
    assert c.top_ids == ["vrouter-clone", "vips", "conntrackd-clone", "dns-clone", "ntp-clone",
                         "ping_upstream-clone"]
    assert c.active_nodes("vips") == ["ctl1"]
    (vips,) = c.instances("vips")
    assert vips.agent == "ocf:envrouter:vip" and vips.parent is None
    for clone in ("vrouter-clone", "dns-clone", "ntp-clone", "ping_upstream-clone",
                  "conntrackd-clone"):
        assert c.active_nodes(clone) == ["ctl1", "ctl2", "ctl3"], clone
    assert c.active_nodes("conntrackd-clone", role="Promoted") == ["ctl1"]
    assert c.active_nodes("conntrackd-clone", role="Unpromoted") == ["ctl2", "ctl3"]
    dns = c.instances("dns-clone")
    assert {i.id for i in dns} == {"dns"} and {i.agent for i in dns} == {"ocf:envrouter:dns"}
    assert c.failures == []


def test_crm_mon_stopped_clone() -> None:
    c = parse_crm_mon(data("crm_mon_dns_stopped.xml"))
    dns = c.instances("dns-clone")
    assert len(dns) == 3
    assert all(not i.active and i.node is None and i.role == "Stopped" for i in dns)
    assert {i.target_role for i in dns} == {"Stopped"}
    assert c.active_nodes("dns-clone") == []
    assert c.active_nodes("ntp-clone") == ["ctl1", "ctl2", "ctl3"]


def test_crm_mon_vips_moved_and_promotion_followed() -> None:
    c = parse_crm_mon(data("crm_mon_vip_banned.xml"))
    assert c.active_nodes("vips") == ["ctl2"]
    assert c.active_nodes("conntrackd-clone", role="Promoted") == ["ctl2"]


def test_crm_mon_failed_instance_and_failure_history() -> None:
    c = parse_crm_mon(data("crm_mon_dns_failed.xml"))
    failed = [i for i in c.resources if i.failed]
    assert [(i.id, i.node, i.top_id) for i in failed] == [("dns", "ctl3", "dns-clone")]
    (f,) = c.failures
    assert (f.resource, f.node, f.task, f.exitcode, f.exitstatus) == (
        "dns", "ctl3", "monitor", 7, "not running")


def test_crm_mon_resource_ids_with_underscores_in_failures() -> None:
    text = data("crm_mon_dns_failed.xml").replace(
        'op_key="dns_monitor_10000"', 'op_key="ping_upstream_monitor_10000"')
    assert parse_crm_mon(text).failures[0].resource == "ping_upstream"


def test_crm_mon_without_quorum_or_dc() -> None:
    text = data("crm_mon_healthy.xml").replace('with_quorum="true"', 'with_quorum="false"')
    assert parse_crm_mon(text).quorate is False
    text = data("crm_mon_healthy.xml").replace('<current_dc present="true"',
                                               '<current_dc present="false"')
    assert parse_crm_mon(text).dc is None


def test_crm_mon_error_result_and_garbage() -> None:
    c = parse_crm_mon(data("crm_mon_not_connected.xml"))  # no cluster on this node
    assert not c.available and c.nodes == []
    assert c.error == ("crm_mon: Not connected (code 102): crm_mon: Connection to cluster "
                       "failed: Connection refused")
    with pytest.raises(ParseError, match="crm_mon"):
        parse_crm_mon("crm_mon: Error: cluster is not available on this node")
    with pytest.raises(ParseError, match="pacemaker-result"):
        parse_crm_mon("<cib/>")


def test_crm_mon_node_attributes_and_where_each_primitive_runs() -> None:
    """What the lab's settle check reads: pingd per node, and every active primitive (inside
    clones too) with its nodes."""
    c = parse_crm_mon(data("crm_mon_healthy.xml"))
    assert {n.name: n.attributes for n in c.nodes} == {
        "ctl1": {"master-conntrackd": "1000", "pingd": "1000"},
        "ctl2": {"master-conntrackd": "100", "pingd": "1000"},
        "ctl3": {"master-conntrackd": "100", "pingd": "1000"}}
    on = c.running_on()
    assert on["vips"] == ["ctl1"]
    for primitive in ("vrouter", "conntrackd", "dns", "ntp", "ping_upstream"):
        assert sorted(on[primitive]) == ["ctl1", "ctl2", "ctl3"], primitive
    stopped = parse_crm_mon(data("crm_mon_dns_stopped.xml")).running_on()
    assert "dns" not in stopped and sorted(stopped["ntp"]) == ["ctl1", "ctl2", "ctl3"]


def test_crmadmin_controller_state() -> None:
    assert parse_crmadmin_state(data("crmadmin_S_idle.xml")) == "S_IDLE"
    busy = data("crmadmin_S_idle.xml").replace('state="S_IDLE"', 'state="S_TRANSITION_ENGINE"')
    assert parse_crmadmin_state(busy) == "S_TRANSITION_ENGINE"
    # the controller does not answer (no cluster on this machine): the tool's own error
    with pytest.raises(ParseError, match="Not connected .code 102.: error: Command failed"):
        parse_crmadmin_state(data("crmadmin_S_not_connected.xml"))
    with pytest.raises(ParseError, match="crmadmin: unexpected output: not XML"):
        parse_crmadmin_state("error: Could not connect to controller")
    with pytest.raises(ParseError, match="0 controller states"):
        parse_crmadmin_state('<pacemaker-result><status code="0" message="OK"/>'
                             "</pacemaker-result>")


def test_conntrackd_stats_udp_unicast() -> None:
    s = parse_conntrackd_stats(data("conntrackd_s_udp.txt"))
    assert (s.internal_active, s.internal_created, s.internal_failed) == (6, 6, 0)
    assert (s.external_active, s.external_created) == (0, 0)
    assert (s.transport, s.device) == ("UDP", "vr-mgmt")
    assert (s.bytes_sent, s.bytes_recv, s.packets_sent, s.packets_recv) == (784, 336, 27, 21)
    assert (s.errors_send, s.errors_recv, s.malformed_msgs, s.lost_msgs) == (0, 0, 0, 0)
    assert s.sync_errors == 0 and s.uptime_minutes is None
    r = parse_conntrackd_stats(data("conntrackd_s_udp.txt"), data("conntrackd_s_runtime.txt"))
    assert (r.uptime_minutes, r.kernel_resyncs, r.netlink_overruns) == (0, 0, 0)


def test_conntrackd_stats_multicast_holder_and_backup_with_runtime() -> None:
    holder = parse_conntrackd_stats(data("conntrackd_s_holder.txt"),
                                    data("conntrackd_s_runtime_lab.txt"))
    assert (holder.internal_active, holder.external_active) == (1, 0)
    assert holder.transport == "multicast" and holder.packets_recv == 82
    assert holder.uptime_minutes == 2 and holder.kernel_resyncs is not None
    assert holder.netlink_overruns == 0
    backup = parse_conntrackd_stats(data("conntrackd_s_backup.txt"))
    assert (backup.internal_active, backup.external_active, backup.external_created) == (0, 1, 1)


def test_conntrackd_counts_errors_and_failures() -> None:
    text = (data("conntrackd_s_udp.txt")
            .replace("0 Error send                    0 Error recv",
                     "3 Error send                    4 Error recv")
            .replace("0 Malformed msgs                    0 Lost msgs",
                     "1 Malformed msgs                    2 Lost msgs"))
    text = text.replace("connections updated:\t\t           0\tfailed:\t           0",
                        "connections updated:\t\t           0\tfailed:\t           5", 1)
    s = parse_conntrackd_stats(text)
    assert (s.errors_send, s.errors_recv, s.malformed_msgs, s.lost_msgs) == (3, 4, 1, 2)
    assert s.sync_errors == 10 and s.internal_failed == 5


def test_conntrackd_refuses_other_text() -> None:
    with pytest.raises(ParseError, match="cache internal"):
        parse_conntrackd_stats("can't connect: is conntrackd running?")
    with pytest.raises(ParseError, match="uptime"):
        parse_conntrackd_stats(data("conntrackd_s_udp.txt"), "nothing")


def test_conntrack_count() -> None:
    assert parse_conntrack_count(data("conntrack_C_vr1.txt")) == 6
    with pytest.raises(ParseError):
        parse_conntrack_count("conntrack v1.4.7 (conntrack-tools): Operation failed")


def test_chrony_tracking_synced_and_local() -> None:
    t = parse_chrony_tracking_csv(data("chronyc_csv_tracking_synced.txt"))
    assert (t.ref_address, t.stratum, t.leap_status) == ("10.30.0.1", 4, "Normal")
    assert t.last_offset == pytest.approx(-0.000006930)
    assert t.synchronised and not t.local_reference
    local = parse_chrony_tracking_csv(data("chronyc_csv_tracking_start.txt"))
    assert local.stratum == 8 and local.local_reference and local.ref_address == ""


def test_chrony_sources() -> None:
    start = parse_chrony_sources_csv(data("chronyc_csv_sources_start.txt"))
    assert [(s.address, s.state, s.reach, s.last_rx, s.reachable) for s in start] == [
        ("10.30.0.1", "?", 0, None, False), ("10.20.0.102", "?", 0, None, False)]
    lab = parse_chrony_sources_csv(data("chronyc_csv_sources_lab.txt"))
    assert [(s.address, s.state, s.reach) for s in lab] == [
        ("198.51.100.123", "*", 0o77), ("192.168.0.201", "-", 0o377),
        ("192.168.0.202", "-", 0o77)]
    assert lab[0].stratum == 3 and lab[0].offset == pytest.approx(-0.000008369)


def test_chrony_refuses_other_text() -> None:
    with pytest.raises(ParseError):
        parse_chrony_tracking_csv("506 Cannot talk to daemon")
    with pytest.raises(ParseError):
        parse_chrony_sources_csv("MS Name/IP address  Stratum Poll Reach LastRx Last sample")


def test_dnsmasq_chaos_answers() -> None:
    a = parse_dnsmasq_chaos(data("dig_noall_answer.txt"))
    assert chaos_int(a, "cachesize.bind") == 10000
    assert (chaos_int(a, "hits.bind"), chaos_int(a, "misses.bind")) == (2, 1)
    assert (chaos_int(a, "insertions.bind"), chaos_int(a, "evictions.bind")) == (1, 0)
    assert parse_dnsmasq_servers(a["servers.bind"]) == [("198.51.100.53", 53, 1, 0)]
    assert chaos_int(a, "auth.bind") is None


def test_dnsmasq_several_servers_and_garbage() -> None:
    text = 'servers.bind.\t\t0\tCH\tTXT\t"10.0.0.1#53 5 1" "10.0.0.2#5353 7 0"\n'
    a = parse_dnsmasq_chaos(text)
    assert parse_dnsmasq_servers(a["servers.bind"]) == [("10.0.0.1", 53, 5, 1),
                                                        ("10.0.0.2", 5353, 7, 0)]
    assert parse_dnsmasq_chaos(";; connection timed out; no servers could be reached") == {}
    with pytest.raises(ParseError):
        parse_dnsmasq_servers(["nonsense"])


INJECT = """\
cache internal:
current active connections:	       20011
connections created:		       20011	failed:	           0
connections updated:		       40022	failed:	           0
connections destroyed:		           0	failed:	           0

external inject:
connections created:		          17	failed:	           2
connections updated:		           5	failed:	           0
connections destroyed:		           1	failed:	           0

traffic processed:
                   0 Bytes                         0 Pckts

multicast traffic (active device=vr-mgmt):
                 884 Bytes sent                 1312 Bytes recv
                  48 Pckts sent                   82 Pckts recv
                   0 Error send                    0 Error recv

message tracking:
                   0 Malformed msgs                 4711 Lost msgs

"""


def test_conntrackd_stats_without_external_cache() -> None:
    # DisableExternalCache On: the peers' flows go into the kernel ("external inject")
    s = parse_conntrackd_stats(INJECT)
    assert s.internal_active == 20011 and s.external_active is None
    assert s.external_created == 17 and s.external_failed == 2
    assert s.transport == "multicast" and not s.lost_counted
    assert s.sync_errors == 0  # the multicast "Lost msgs" are sequence interleavings


UDP_FIELDS = "InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors"
SNMP = f"""\
Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 12
Udp: {UDP_FIELDS} IgnoredMulti MemErrors
Udp: 5012 3 9 4000 9 0 0 0 0
UdpLite: {UDP_FIELDS} IgnoredMulti MemErrors
UdpLite: 0 0 0 0 0 0 0 0 0
"""


def test_udp_receive_buffer_drops() -> None:
    from envrouter.ops.parse import parse_udp_rcvbuf_errors

    assert parse_udp_rcvbuf_errors(SNMP) == 9
    assert parse_udp_rcvbuf_errors("Ip: a\nIp: 1\n") is None
