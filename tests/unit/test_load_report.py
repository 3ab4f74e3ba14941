"""The connection load at scale (pure): how it is spread over processes, what its records say."""

from __future__ import annotations

import pytest

from envrouter.errors import ValidationError
from envrouter.lab.load import MAX_PER_PROCESS
from envrouter.lab.load_report import (
    PER_PROCESS,
    lag_summary,
    load_result,
    parse_events,
    percentile,
    plan_load,
    sync_lags,
)


def test_plan_spreads_100000_over_processes_below_the_open_files_limit():
    plan = plan_load(100_000, ["cmp1", "cmp2"])
    idle = [c for c in plan.clients if c.count]
    assert sum(c.count for c in idle) == 100_000
    assert all(c.count <= PER_PROCESS <= MAX_PER_PROCESS for c in idle)
    assert {c.node for c in idle} == {"cmp1", "cmp2"}
    assert sum(c.count for c in idle if c.node == "cmp1") == 50_000
    # each server port (one process) holds at most PER_PROCESS of them
    assert len(plan.server_ports) * PER_PROCESS >= 100_000
    assert len(set(plan.server_ports)) == len(plan.server_ports) == 8
    churn = [c for c in plan.clients if c.churn_rate]
    assert [c.node for c in churn] == ["cmp1", "cmp2"]
    assert sum(c.churn_rate for c in churn) == pytest.approx(200.0)
    assert all(c.churn_max > 0 and c.udp == 20 and not c.count for c in churn)


def test_plan_small_and_odd_counts():
    plan = plan_load(1001, ["a", "b", "c"])
    assert sorted(c.count for c in plan.clients if c.count) == [333, 334, 334]
    assert plan.server_ports == [5100]


@pytest.mark.parametrize("n", [-1, 10**7])
def test_plan_refuses_bad_counts_naming_the_field(n):
    with pytest.raises(ValidationError) as err:
        plan_load(n, ["cmp1"])
    assert err.value.field == "connections"


def test_plan_needs_a_compute_node():
    with pytest.raises(ValidationError):
        plan_load(10, [])


def _client(ok=10, total=10, reasons=None, new=(), udp=()):
    return {"idle": {"target": total, "total": total, "established": total, "ok": ok,
                     "reasons": reasons or {}}, "new": list(new), "udp": list(udp)}


def test_result_counts_idle_new_and_udp_separately():
    t_fault = 1000.0
    new = [
        {"started": 990.0, "established": 990.1, "ok": True, "reason": ""},
        {"started": 999.7, "established": 999.75, "ok": False, "reason": "recv: reset"},
        # established within 200 ms of the fault, or after it: counted apart
        {"started": 999.9, "established": 999.95, "ok": False, "reason": "recv: reset"},
        {"started": 1000.5, "established": 1001.0, "ok": True, "reason": ""},
    ]
    udp = [{"flow": "u0", "sent": 9, "received": 9, "last_rx": 1010.0,
            "sources": ["203.0.113.2:4000"]},
           {"flow": "u1", "sent": 9, "received": 9, "last_rx": 1010.0,
            "sources": ["203.0.113.2:4001", "203.0.113.2:1024"]}]
    r = load_result({"c1": _client(ok=9, total=10, reasons={"recv: reset": 1}, new=new,
                                   udp=udp)}, t_fault, 1010.5, [0.001, 0.002, 0.010])
    assert (r.idle_ok, r.idle_total) == (9, 10)
    assert (r.new_ok, r.new_total) == (1, 2)
    assert (r.new_after_ok, r.new_after_total) == (1, 2)
    assert (r.udp_ok, r.udp_total) == (1, 2)
    assert any("NAT mapping changed" in f for f in r.failures)
    assert any("idle TCP connections lost: 1 of 10" in f for f in r.failures)
    assert any("new TCP connections" in f and "1 of 2" in f for f in r.failures)
    assert r.reasons == {"idle: recv: reset": 1, "new: recv: reset": 1}
    assert r.sync_lag_ms["p50"] == 2.0 and r.sync_lag_ms["samples"] == 3


def test_result_all_survived_has_no_failures():
    udp = [{"flow": "u0", "sent": 9, "received": 9, "last_rx": 1010.0, "sources": ["x:1"]}]
    r = load_result({"c1": _client(udp=udp)}, 1000.0, 1010.5)
    assert r.failures == [] and r.idle_ok == r.idle_total == 10
    assert r.sync_lag_ms["p50"] is None


def test_result_missing_records_and_silent_udp_are_losses():
    silent = [{"flow": "u0", "sent": 9, "received": 3, "last_rx": 999.0, "sources": ["x:1"]}]
    r = load_result({"c1": _client(udp=silent)}, 1000.0, 1010.0, expected_idle=25)
    assert r.idle_total == 25 and r.udp_ok == 0
    assert any("no record" in f for f in r.failures)
    assert any("no answer after the fault" in f for f in r.failures)


EVENTS_HOLDER = """\
[1700000000.100000]	    [NEW] tcp      6 120 SYN_SENT src=192.168.0.101 dst=198.51.100.80 \
sport=40000 dport=5090 [UNREPLIED] src=198.51.100.80 dst=203.0.113.2 sport=5090 dport=40000
[1700000000.200000]	    [NEW] tcp      6 120 SYN_SENT src=192.168.0.102 dst=198.51.100.80 \
sport=40001 dport=5090 [UNREPLIED] src=198.51.100.80 dst=203.0.113.2 sport=5090 dport=40001
[1700000005.000000]	    [NEW] tcp      6 120 SYN_SENT src=192.168.0.102 dst=198.51.100.80 \
sport=40002 dport=5090 [UNREPLIED] src=198.51.100.80 dst=203.0.113.2 sport=5090 dport=40002
garbage line
"""
EVENTS_PEER = """\
[1700000000.102000]	    [NEW] tcp      6 431999 ESTABLISHED src=192.168.0.101 \
dst=198.51.100.80 sport=40000 dport=5090 src=198.51.100.80 dst=203.0.113.2 sport=5090 dport=40000
[1700000000.100000]	    [NEW] tcp      6 431999 ESTABLISHED src=192.168.0.101 \
dst=198.51.100.80 sport=40000 dport=5090 src=198.51.100.80 dst=203.0.113.2 sport=5090 dport=40000
[1700000000.210000]	    [NEW] tcp      6 120 SYN_SENT src=192.168.0.102 dst=198.51.100.80 \
sport=40001 dport=5090 [UNREPLIED] src=198.51.100.80 dst=203.0.113.2 sport=5090 dport=40001
"""


def test_sync_lag_from_conntrack_events():
    holder = parse_events(EVENTS_HOLDER)
    assert len(holder) == 3
    assert holder[("192.168.0.101", "40000", "198.51.100.80", "5090")] == 1700000000.1
    peer_a = parse_events(EVENTS_PEER)
    # the first event of a flow counts (a re-injection later is not its arrival)
    assert peer_a[("192.168.0.101", "40000", "198.51.100.80", "5090")] == 1700000000.102
    peer_b = dict(peer_a)
    peer_b[("192.168.0.102", "40001", "198.51.100.80", "5090")] = 1700000000.25
    lags, missing = sync_lags(holder, [peer_a, peer_b], until=1700000001.0)
    # the slowest peer decides; the flow created after `until` is not counted
    assert sorted(round(x, 3) for x in lags) == [0.002, 0.05]
    assert missing == 0
    lags, missing = sync_lags(holder, [peer_a, {}], until=1700000001.0)
    assert lags == [] and missing == 2


def test_percentiles():
    assert percentile([], 0.5) is None
    assert percentile([1.0, 2.0, 3.0], 0.5) == 2.0
    assert percentile(list(range(101)), 0.99) == pytest.approx(99.0)
    assert lag_summary([0.001, 0.003])["p50"] == 2.0
