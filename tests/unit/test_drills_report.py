"""envrouter.lab.drill_report (with analyse): gap analysis, ping parsing, flow verdicts,
the report and its verdict (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from envrouter.lab.drill_report import (
    DrillReport,
    FlowResult,
    analyse,
    format_report,
    icmp_result,
    longest_gap,
    parse_ping,
    summarize,
    tcp_result,
    udp_result,
    verdict,
    vip_problems,
)

T0 = 1_700_000_000.0


def ticks(start: float, end: float, step: float) -> list[float]:
    out, t = [], start
    while t <= end + 1e-9:
        out.append(round(t, 6))
        t += step
    return out


def test_longest_gap_between_events_and_at_the_edges() -> None:
    times = [T0 + x for x in (0.1, 0.2, 0.3, 1.8, 1.9)]
    gap = longest_gap(times, T0, T0 + 2.0)
    assert gap.seconds == pytest.approx(1.5)
    assert gap.start == pytest.approx(T0 + 0.3)
    # a flow that died: the gap runs to the end of the window
    assert longest_gap([T0 + 0.1, T0 + 0.2], T0, T0 + 5).seconds == pytest.approx(4.8)
    # nothing at all: the whole window
    assert longest_gap([], T0, T0 + 3).seconds == pytest.approx(3)
    # events outside the window are ignored, order does not matter
    assert longest_gap([T0 + 2, T0 - 5, T0 + 1], T0, T0 + 2).seconds == pytest.approx(1)


@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=50))
def test_longest_gap_bounds(offsets: list[float]) -> None:
    gap = longest_gap([T0 + o for o in offsets], T0, T0 + 100)
    assert 0 <= gap.seconds <= 100 + 1e-6
    if offsets:  # never shorter than the even spread of the events over the window
        assert gap.seconds >= 100 / (len(offsets) + 1) - 1e-6


PING = """PING 198.51.100.80 (198.51.100.80) 56(84) bytes of data.
[1700000000.050000] 64 bytes from 198.51.100.80: icmp_seq=1 ttl=62 time=0.101 ms
[1700000000.100000] 64 bytes from 198.51.100.80: icmp_seq=2 ttl=62 time=0.099 ms
[1700000000.150000] no answer yet for icmp_seq=3
[1700000000.200000] no answer yet for icmp_seq=4
[1700000000.250000] 64 bytes from 198.51.100.80: icmp_seq=5 ttl=62 time=0.120 ms
[1700000000.250100] 64 bytes from 198.51.100.80: icmp_seq=5 ttl=62 time=0.130 ms (DUP!)
[1700000000.300000] 64 bytes from 198.51.100.80: icmp_seq=6 ttl=62 time=0.090 ms

--- 198.51.100.80 ping statistics ---
6 packets transmitted, 4 received, 33.3333% packet loss, time 250ms
"""


def test_parse_ping_replies_summary_and_duplicates() -> None:
    p = parse_ping(PING)
    assert p.seqs == [1, 2, 5, 6]
    assert p.times[0] == pytest.approx(T0 + 0.05)
    assert (p.transmitted, p.received, p.lost) == (6, 4, 2)
    assert longest_gap(p.times, T0 + 0.05, T0 + 0.3).seconds == pytest.approx(0.15)


def test_parse_ping_without_summary_counts_from_sequence_numbers() -> None:
    text = "\n".join(PING.splitlines()[:8])  # killed before its summary
    p = parse_ping(text)
    assert (p.transmitted, p.received) == (6, 4)
    assert parse_ping("").lost == 0


def tcp_record(flow: str, times: list[float], error: str | None = None,
               closed_at: float | None = None) -> dict:
    return {"flow": flow, "kind": "tcp", "rx_times": times, "rx_bytes": 512 * len(times),
            "tx_bytes": 0, "error": error, "closed_at": closed_at}


FAULT = T0 + 2
END = T0 + 6
STEADY = ticks(T0, END, 0.01)
WITH_OUTAGE = [t for t in STEADY if not FAULT < t < FAULT + 1.2]


def test_tcp_survives_an_outage_when_both_directions_resume() -> None:
    client = tcp_record("c-tcp0", WITH_OUTAGE, closed_at=END + 0.1)
    # the server sees the client close at the very end: not a reset
    server = tcp_record("c-tcp0", WITH_OUTAGE, error="recv: connection closed by the peer",
                        closed_at=END + 0.2)
    r = tcp_result(client, server, T0, FAULT, END)
    assert r.survived, r.reason
    assert r.longest_gap_ms == pytest.approx(1200, abs=15)


def test_tcp_reset_or_silence_is_a_lost_connection() -> None:
    reset = tcp_record("c-tcp0", [t for t in STEADY if t < FAULT + 1],
                       error="recv: [Errno 104] Connection reset by peer", closed_at=FAULT + 1)
    r = tcp_result(reset, tcp_record("c-tcp0", STEADY, closed_at=END), T0, FAULT, END)
    assert not r.survived and "reset" in r.reason
    # the server hit an error while the client still ran
    server = tcp_record("c-tcp0", STEADY, error="recv: [Errno 104] reset", closed_at=FAULT + 1)
    r = tcp_result(tcp_record("c-tcp0", STEADY, closed_at=END), server, T0, FAULT, END)
    assert not r.survived and "server" in r.reason
    # no error, but the upload stopped arriving (a stalled connection)
    stalled = tcp_record("c-tcp0", [t for t in STEADY if t < FAULT])
    r = tcp_result(tcp_record("c-tcp0", STEADY), stalled, T0, FAULT, END)
    assert not r.survived and "upload" in r.reason
    # the server never saw it
    r = tcp_result(tcp_record("c-tcp0", STEADY), None, T0, FAULT, END)
    assert not r.survived and "never saw" in r.reason


def udp_record(times: list[float], sources: list[str]) -> dict:
    return {"flow": "c-udp0", "kind": "udp", "rx_times": times, "sent": 300,
            "received": len(times), "seen_sources": sources, "error": None}


def test_udp_survives_only_with_answers_to_the_end_and_one_nat_mapping() -> None:
    ok = udp_result(udp_record(WITH_OUTAGE, ["203.0.113.2:40000"]), T0, FAULT, END)
    assert ok.survived and ok.kind == "udp"
    remapped = udp_result(udp_record(WITH_OUTAGE, ["203.0.113.2:40000", "203.0.113.2:1024"]),
                          T0, FAULT, END)
    assert not remapped.survived and "NAT mapping changed" in remapped.reason
    dead = udp_result(udp_record([t for t in STEADY if t < FAULT], ["x:1"]), T0, FAULT, END)
    assert not dead.survived and "nothing received after the fault" in dead.reason


def test_icmp_flow() -> None:
    p = parse_ping("\n".join(f"[{t:.6f}] 64 bytes from 1.2.3.4: icmp_seq={i} ttl=1 time=1 ms"
                             for i, t in enumerate(ticks(T0, END, 0.05))))
    r = icmp_result("cmp1", p, T0, FAULT, END)
    assert r.survived and r.flow == "cmp1-icmp"
    short = parse_ping("\n".join(f"[{t:.6f}] 64 bytes from 1.2.3.4: icmp_seq={i} ttl=1 time=1 ms"
                                 for i, t in enumerate(ticks(T0, FAULT + 0.5, 0.05))))
    assert not icmp_result("cmp1", short, T0, FAULT, END).survived


def test_vip_problems() -> None:
    moved = {"vrouter": ["ctl2"], "vrouter_pub": ["ctl2"]}
    assert vip_problems(moved, "ctl1", expect_move=True) == []
    assert vip_problems(moved, "ctl2", expect_move=True) == ["the VIPs did not move off ctl2"]
    assert vip_problems(moved, "ctl2", expect_move=False) == []
    assert "should stay" in vip_problems(moved, "ctl1", expect_move=False)[0]
    split = {"vrouter": ["ctl1", "ctl2"], "vrouter_pub": ["ctl2"]}
    assert vip_problems(split, "ctl1", True) == ["split brain: vrouter held by ctl1, ctl2"]
    apart = {"vrouter": ["ctl2"], "vrouter_pub": ["ctl3"]}
    assert "apart" in vip_problems(apart, "ctl1", True)[0]
    gone = {"vrouter": [], "vrouter_pub": ["ctl3"]}
    assert vip_problems(gone, "ctl1", True) == ["vrouter held by no controller"]


def make_report(**kw) -> DrillReport:
    base = dict(drill="hard-kill", holder_before="ctl1",
                holders_after={"vrouter": ["ctl2"], "vrouter_pub": ["ctl2"]}, expect_move=True,
                t_fault=FAULT, t_end=END, vips_moved_after_ms=900.0, longest_gap_ms=1100.0,
                packets_lost=22, packets_sent=240,
                flows=[FlowResult("cmp1-tcp0", "tcp", True, 1400.0),
                       FlowResult("cmp1-udp0", "udp", True, 1120.0),
                       FlowResult("cmp1-icmp", "icmp", True, 1100.0)])
    base.update(kw)
    return DrillReport(**base)


def test_report_verdict_and_text() -> None:
    good = make_report()
    assert verdict(good) == []
    text = format_report(good)
    for needle in ("longest gap (ping every 50 ms): 1100 ms", "packets lost: 22 of 240",
                   "TCP connections surviving: 1/1", "UDP flows surviving: 1/1",
                   "VIPs ended up on: ctl2", "verdict: PASS"):
        assert needle in text, text
    lost = make_report(flows=[FlowResult("cmp1-tcp0", "tcp", False, 9e3, "client: reset")])
    assert verdict(lost) == ["tcp cmp1-tcp0 lost: client: reset"]
    assert "verdict: FAIL" in format_report(lost)
    stayed = make_report(holders_after={"vrouter": ["ctl1"], "vrouter_pub": ["ctl1"]})
    assert verdict(stayed) == ["the VIPs did not move off ctl1"]
    noted = make_report(notes=["conntrackd restarted on ctl1: not after 60 s"])
    assert verdict(noted) == ["conntrackd restarted on ctl1: not after 60 s"]
    d = good.to_dict()
    assert (d["tcp_surviving"], d["tcp_total"], d["holder_after"], d["failures"]) == (
        1, 1, "ctl2", [])


def test_analyse_builds_the_report_from_the_records() -> None:
    client_tcp = tcp_record("cmp1-tcp0", WITH_OUTAGE, closed_at=END)
    server = {"tcp": [tcp_record("cmp1-tcp0", WITH_OUTAGE, closed_at=END + 0.1)],
              "udp_seen": {}}
    clients = {"cmp1": {"name": "cmp1", "flows": [
        client_tcp, udp_record(WITH_OUTAGE, ["203.0.113.2:40000"])]}}
    ping_times = [t for t in ticks(T0, END, 0.05) if not FAULT < t < FAULT + 1.2]
    pings = {"cmp1": "\n".join(f"[{t:.6f}] 64 bytes from 1.2.3.4: icmp_seq={i} ttl=1 time=1 ms"
                               for i, t in enumerate(ping_times))
             + f"\n{len(ticks(T0, END, 0.05))} packets transmitted, {len(ping_times)} received"}
    r = analyse("standby", "ctl1", "ctl3", {"vrouter": ["ctl2"], "vrouter_pub": ["ctl2"]}, True,
                T0, FAULT, END, FAULT + 0.5, server, clients, pings, [])
    assert verdict(r) == []
    assert r.count("tcp") == (1, 1) and r.count("udp") == (1, 1) and r.count("icmp") == (1, 1)
    assert r.longest_gap_ms == pytest.approx(1200, abs=60)
    assert r.packets_lost == len(ticks(T0, END, 0.05)) - len(ping_times) > 0
    assert r.vips_moved_after_ms == pytest.approx(500)


def test_analyse_reports_the_ipv6_flows_beside_and_apart() -> None:
    """A dual-stack drill: the IPv6 client's records (`<node>-v6`) are judged like the IPv4
    ones; the outage covers both families and the IPv6 pings' alone is reported too."""
    server = {"tcp": [tcp_record("cmp1-tcp0", STEADY, closed_at=END + 0.1),
                      tcp_record("cmp1-v6-tcp0", WITH_OUTAGE, closed_at=END + 0.1)],
              "udp_seen": {}}
    clients = {"cmp1": {"name": "cmp1", "flows": [tcp_record("cmp1-tcp0", STEADY,
                                                             closed_at=END)]},
               "cmp1-v6": {"name": "cmp1-v6", "flows": [
                   tcp_record("cmp1-v6-tcp0", WITH_OUTAGE, closed_at=END),
                   {**udp_record(WITH_OUTAGE, ["[2001:db8:113::2]:40000"]),
                    "flow": "cmp1-v6-udp0"}]}}
    v4 = ticks(T0, END, 0.05)
    v6 = [t for t in v4 if not FAULT < t < FAULT + 1.2]
    pings = {"cmp1": "\n".join(f"[{t:.6f}] 64 bytes from 198.51.100.80: icmp_seq={i + 1} ttl=1 "
                               "time=1 ms" for i, t in enumerate(v4)),
             "cmp1-v6": "\n".join(f"[{t:.6f}] 64 bytes from 2001:db8:51::80: icmp_seq={i + 1} "
                                  "ttl=1 time=1 ms" for i, t in enumerate(v6))}
    r = analyse("hard-kill", "ctl1", "ctl3", {"vrouter": ["ctl2"], "vrouter6": ["ctl2"]}, True,
                T0, FAULT, END, FAULT + 0.5, server, clients, pings, [])
    assert verdict(r) == []
    assert r.count("tcp") == (2, 2) and r.count("udp") == (1, 1) and r.count("icmp") == (2, 2)
    assert r.longest_gap6_ms == pytest.approx(1200, abs=60)
    assert r.longest_gap_ms == r.longest_gap6_ms  # the IPv4 pings had no gap
    d = r.to_dict()
    assert (d["tcp6_surviving"], d["tcp6_total"], d["icmp6_total"], d["udp6_total"]) == (
        1, 1, 1, 1)
    assert d["tcp_total"] == 2
    ipv4_only = analyse("hard-kill", "ctl1", "ctl3", {"vrouter": ["ctl2"]}, True, T0, FAULT,
                        END, FAULT + 0.5, server, {"cmp1": clients["cmp1"]},
                        {"cmp1": pings["cmp1"]}, [])
    assert ipv4_only.longest_gap6_ms is None


def test_summarize() -> None:
    assert summarize([1.0, 3.0, 2.0]) == {"median": 2.0, "max": 3.0}
    assert summarize([]) == {"median": None, "max": None}


def test_memory_classification_and_summary() -> None:
    from envrouter.lab.drill_report import Proc, classify, memory_summary

    procs = [
        Proc(100, 1, "python3", "/usr/bin/python3 -m envrouter.lab.anchor /x ctl1", 13000, 900),
        Proc(101, 10, "corosync", "corosync -f", 100 * 1024, 900),
        Proc(102, 29, "pacemaker-contr", "/usr/lib/pacemaker/pacemaker-controld", 17 * 1024,
             900),
        Proc(103, 96, "conntrackd", "conntrackd -C /run/x.conf", 5 * 1024, 800),
        Proc(104, 97, "dnsmasq", "dnsmasq -k", 6 * 1024, 800),
        Proc(105, 300, "python", "/v/bin/python -c from envrouter.ha.ocf_dns import main", 30000,
             1.5),
        Proc(106, 301, "python3", "/v/bin/python3 -m envrouter.something", 20 * 1024, 500),
        Proc(107, 26, "pacemaker-execd", "/usr/lib/pacemaker/pacemaker-execd", 11 * 1024, 900),
        # an agent's monitor hanging for a minute is still an agent's run, not a resident
        Proc(108, 400, "sh", "/bin/sh /usr/lib/ocf/resource.d/envrouter/vip monitor", 1024, 60,
             ppid=107),
        Proc(109, 401, "ip", "ip -n vrouter addr show", 2048, 60, ppid=108),
    ]
    by_pid = {p.pid: p for p in procs}
    kinds = [classify(p, by_pid) for p in procs]
    assert kinds == ["init", "cluster", "cluster", "project", "project", "transient", "project",
                     "cluster", "transient", "transient"]
    m = memory_summary(procs)
    assert m["cluster_mb"] == 128.0
    assert m["project_mb"] == 31.0
    assert m["by_name"] == {"conntrackd": 5.0, "dnsmasq": 6.0, "python3": 20.0}
    assert m["resident_python"] == ["106: /v/bin/python3 -m envrouter.something"]
