"""envrouter.lab.timeline: the picture-model of a drill checked against its report (pure), and
the SVG it is drawn into (parsed, not looked at)."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from envrouter.lab.drill_report import analyse
from envrouter.lab.timeline import (
    GAP_SHOWN,
    delivering,
    drill_timeline,
    pacemaker_events,
    plot_path,
    render_svg,
    silences,
    vip_rows,
    write_drill_timeline,
)

T0 = 1_700_000_000.0
FAULT = T0 + 1.5
END = T0 + 6


def ticks(start: float, end: float, step: float) -> list[float]:
    out, t = [], start
    while t <= end + 1e-9:
        out.append(round(t, 6))
        t += step
    return out


def outage(times: list[float], seconds: float) -> list[float]:
    return [t for t in times if not FAULT < t < FAULT + seconds]


def tcp(flow: str, times: list[float], **kw) -> dict:
    return {"flow": flow, "kind": "tcp", "rx_times": times, "rx_bytes": 0, "tx_bytes": 0,
            "error": None, "closed_at": END + 0.1, **kw}


def udp(flow: str, times: list[float]) -> dict:
    return {"flow": flow, "kind": "udp", "rx_times": times, "sent": 0, "received": len(times),
            "seen_sources": ["203.0.113.2:40000"], "error": None}


def ping(times: list[float]) -> str:
    return "\n".join(f"[{t:.6f}] 64 bytes from 1.2.3.4: icmp_seq={i + 1} ttl=1 time=1 ms"
                     for i, t in enumerate(times))


def records() -> tuple[dict, dict, dict]:
    """cmp1: every flow out for ~1.2 s at the fault (its upload 1.4 s); cmp2: its TCP stream
    reset 1 s after the fault, its UDP flow never out."""
    tcp_ticks, udp_ticks, ping_ticks = (ticks(T0, END, s) for s in (0.01, 0.02, 0.05))
    server = {"tcp": [tcp("cmp1-tcp0", outage(tcp_ticks, 1.4)),
                      tcp("cmp2-tcp0", [t for t in tcp_ticks if t < FAULT])], "udp_seen": {}}
    clients = {
        "cmp1": {"name": "cmp1", "flows": [tcp("cmp1-tcp0", outage(tcp_ticks, 1.2)),
                                           udp("cmp1-udp0", outage(udp_ticks, 1.2))]},
        "cmp2": {"name": "cmp2", "flows": [
            tcp("cmp2-tcp0", [t for t in tcp_ticks if t < FAULT + 1], closed_at=FAULT + 1,
                error="recv: [Errno 104] Connection reset by peer"),
            udp("cmp2-udp0", udp_ticks)]},
    }
    pings = {"cmp1": ping(outage(ping_ticks, 1.2)), "cmp2": ping(outage(ping_ticks, 1.1))}
    return server, clients, pings


def report_and_records(moved_after: float | None = 0.9) -> tuple[dict, dict, dict, dict]:
    server, clients, pings = records()
    report = analyse("hard-kill", "ctl1", "ctl3", {"vrouter": ["ctl2"], "vrouter_pub": ["ctl2"]},
                     True, T0, FAULT, END, None if moved_after is None else FAULT + moved_after,
                     server, clients, pings, [])
    return report.to_dict(), server, clients, pings


def test_one_lane_per_flow_of_the_report_with_its_gap_and_verdict() -> None:
    report, server, clients, pings = report_and_records()
    tl = drill_timeline(report, server, clients, pings, T0)
    assert [lane.flow for lane in tl.lanes] == ["cmp1-icmp", "cmp1-tcp0", "cmp1-udp0",
                                                "cmp2-icmp", "cmp2-tcp0", "cmp2-udp0"]
    flows = {f["flow"]: f for f in report["flows"]}
    assert {lane.flow for lane in tl.lanes} == set(flows)
    for lane in tl.lanes:
        assert lane.longest_gap_ms == flows[lane.flow]["longest_gap_ms"], lane.flow
        assert lane.survived == flows[lane.flow]["survived"]
        assert lane.kind == flows[lane.flow]["kind"]
    by_flow = {lane.flow: lane for lane in tl.lanes}
    # the outage of the report (the longest ping gap) is the ICMP lane's gap, at the fault
    assert max(by_flow[f].longest_gap_ms for f in ("cmp1-icmp", "cmp2-icmp")) == \
        report["longest_gap_ms"]
    assert by_flow["cmp1-icmp"].longest_gap_at == pytest.approx(0, abs=0.06)
    assert (tl.start, tl.end) == (pytest.approx(-1.5), pytest.approx(4.5))


def test_gaps_and_segments_of_each_track() -> None:
    report, server, clients, pings = report_and_records()
    lanes = {lane.flow: lane for lane in drill_timeline(report, server, clients, pings,
                                                        T0).lanes}
    down, up = lanes["cmp1-tcp0"].tracks
    assert (down.name, up.name) == ("download", "upload")
    ((a, b),) = down.gaps
    assert a == pytest.approx(0, abs=0.011) and b == pytest.approx(1.2, abs=0.011)
    ((a, b),) = up.gaps
    assert b - a == pytest.approx(1.4, abs=0.011)
    # TCP: the lane's gap is the worse direction, as in the report
    assert lanes["cmp1-tcp0"].longest_gap_ms == pytest.approx(1400, abs=11)
    assert len(down.segments) == 2 and down.segments[0][0] == pytest.approx(-1.5)
    # the reset stream: silent from 1 s after the fault to the end, lost
    reset = lanes["cmp2-tcp0"]
    assert reset.survived is False and "reset" in reset.reason
    assert reset.tracks[0].gaps[-1] == (pytest.approx(1.0, abs=0.011), pytest.approx(4.5))
    assert reset.tracks[1].gaps == [(pytest.approx(0, abs=0.011), pytest.approx(4.5))]
    # a flow never out: one segment over the whole window, no gap
    steady = lanes["cmp2-udp0"].tracks[0]
    assert steady.gaps == [] and steady.segments == [(pytest.approx(-1.5), pytest.approx(4.5))]


@given(st.lists(st.floats(min_value=0, max_value=10, allow_nan=False), max_size=40))
def test_segments_and_gaps_tile_the_window(offsets: list[float]) -> None:
    gaps = silences([T0 + o for o in offsets], T0, T0 + 10)
    spans = sorted(gaps + delivering(gaps, T0, T0 + 10))
    assert spans[0][0] == T0 and spans[-1][1] == T0 + 10
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert all(b - a > GAP_SHOWN for a, b in gaps)


def test_bands_from_before_and_after_when_nothing_was_sampled() -> None:
    report, server, clients, pings = report_and_records(moved_after=0.9)
    tl = drill_timeline(report, server, clients, pings, T0)
    assert [b.vip for b in tl.bands] == ["vrouter", "vrouter_pub"]
    before, unseen, after = tl.bands[0].segments
    assert (before.holders, before.start, before.end) == (("ctl1",), pytest.approx(-1.5), 0.0)
    assert not unseen.known and unseen.end == pytest.approx(0.9)
    assert after.holders == ("ctl2",) and after.end == pytest.approx(4.5)
    assert not tl.bands[0].sampled
    # never seen moving: unknown after the fault, the end state as a note
    report, *_ = report_and_records(moved_after=None)
    tl = drill_timeline(report, server, clients, pings, T0)
    _, unseen = tl.bands[0].segments
    assert not unseen.known and unseen.note == "at the end: ctl2"


def test_bands_from_holder_samples_show_two_holders_as_a_conflict() -> None:
    report, server, clients, pings = report_and_records()
    samples = [(FAULT - 0.1, {"vrouter": ["ctl1"]}), (FAULT + 0.5, {"vrouter": []}),
               (FAULT + 0.8, {"vrouter": ["ctl2", "ctl1"]}), (FAULT + 0.9, {"vrouter": ["ctl2"]}),
               (FAULT + 1.0, {"vrouter": ["ctl2"]})]
    rows = vip_rows(samples, FAULT)
    assert rows[2] == [pytest.approx(0.8), "vrouter", "ctl1"]
    assert rows[3] == [pytest.approx(0.8), "vrouter", "ctl2"]
    assert rows[1] == [pytest.approx(0.5), "vrouter", None]
    report["vip_holder_samples"] = rows
    (band,) = drill_timeline(report, server, clients, pings, T0).bands
    assert band.sampled
    assert [(s.holders, round(s.start, 2), round(s.end, 2)) for s in band.segments] == [
        (("ctl1",), -0.1, 0.5), ((), 0.5, 0.8), (("ctl1", "ctl2"), 0.8, 0.9),
        (("ctl2",), 0.9, 4.5)]
    assert [s.conflict for s in band.segments] == [False, False, True, False]


def test_events_the_fault_the_move_and_given_ones() -> None:
    report, server, clients, pings = report_and_records(moved_after=0.9)
    tl = drill_timeline(report, server, clients, pings, T0,
                        events=[[0.45, "token lost"], [0.8, "vips start on ctl2"]])
    assert [(round(e.t, 2), e.kind) for e in tl.events] == [
        (0.0, "fault"), (0.45, "event"), (0.8, "event"), (0.9, "vip")]
    assert tl.events[0].label == "fault: hard-kill on ctl1"
    assert tl.events[-1].label == "VIPs seen on ctl2"
    assert "FAIL" in tl.title and "outage" in tl.title  # cmp2-tcp0 was reset


def test_plot_path() -> None:
    assert plot_path("/x/t.svg", "standby", several=False) == "/x/t.svg"
    assert plot_path("/x/t.svg", "standby", several=True) == "/x/t-standby.svg"
    assert plot_path("t", "standby", several=True) == "t-standby.svg"


def groups(path: str) -> dict[str, list[str]]:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    ids = [el.get("id", "") for el in root.iter("{http://www.w3.org/2000/svg}g")]
    out: dict[str, list[str]] = {}
    for kind in ("lane", "band", "conflict", "event"):
        out[kind] = [i for i in ids if i.startswith(f"{kind}-")]
    return out


def test_the_svg_has_one_group_per_lane_band_and_event(tmp_path) -> None:
    report, server, clients, pings = report_and_records()
    report["vip_holder_samples"] = vip_rows(
        [(FAULT, {"vrouter": ["ctl1"], "vrouter_pub": ["ctl1"]}),
         (FAULT + 0.8, {"vrouter": ["ctl1", "ctl2"], "vrouter_pub": ["ctl2"]}),
         (FAULT + 1, {"vrouter": ["ctl2"], "vrouter_pub": ["ctl2"]})], FAULT)
    tl = write_drill_timeline(str(tmp_path), report, server, clients, pings, T0,
                              also=str(tmp_path / "elsewhere" / "plot.svg"))
    for path in (tmp_path / "timeline.svg", tmp_path / "elsewhere" / "plot.svg"):
        g = groups(str(path))
        assert g["lane"] == [f"lane-{lane.flow}" for lane in tl.lanes]
        assert g["band"] == ["band-vrouter", "band-vrouter_pub"]
        assert g["conflict"] == ["conflict-vrouter"]
        assert len(g["event"]) == len(tl.events) == 2
    assert (tmp_path / "timeline.json").read_text().count('"flow"') == len(tl.lanes)
    # the same timeline gives the same file (it is committed in docs/)
    render_svg(tl, str(tmp_path / "again.svg"))
    assert (tmp_path / "again.svg").read_bytes() == (tmp_path / "timeline.svg").read_bytes()


def test_the_cli_and_the_drill_modules_do_not_import_matplotlib() -> None:
    code = ("import sys, envrouter.cli.main, envrouter.cli.drill, envrouter.lab.drills, "
            "envrouter.lab.timeline; print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def pcmk(stamp: str, daemon: str, message: str) -> str:
    """A line of pacemaker.log as Pacemaker 2.1 writes it."""
    return f"Dec 01 {stamp} ctl1 {daemon:<19} [28] (some_function) \tnotice: {message}"


PCMK_LOG = "\n".join([
    pcmk("20:16:45.100", "pacemaker-controld", "State transition S_IDLE -> S_POLICY_ENGINE"),
    pcmk("20:16:46.284", "pacemaker-attrd", "Node ctl3 state is now lost | nodeid=3"),
    pcmk("20:16:46.288", "pacemaker-controld", "Node ctl3 state is now lost | nodeid=3"),
    pcmk("20:16:46.402", "pacemaker-controld", "Result of start operation for vip__vrouter on "
         "ctl1: ok | CIB update 53, graph action confirmed; call=45 key=vip__vrouter_start_0"),
    pcmk("20:16:46.410", "pacemaker-controld", "Requesting fencing (reboot) targeting node ctl3 "
         "| action=1 timeout=60"),
    pcmk("20:16:47.950", "pacemaker-controld", "Peer ctl3 was terminated (reboot) by ctl2 on "
         "behalf of pacemaker-controld.28@ctl1: OK"),
    pcmk("20:17:30.000", "pacemaker-controld", "Result of stop operation for vip__vrouter on "
         "ctl1: ok | after the window"),
])


def test_events_from_the_pacemaker_logs() -> None:
    import time

    fault = time.mktime(time.strptime("2026 Dec 01 20:16:45", "%Y %b %d %H:%M:%S"))
    events = pacemaker_events([PCMK_LOG, "not a log line"], fault, fault - 1.5, fault + 6)
    assert events == [[pytest.approx(1.284), "ctl3 lost (membership)"],
                      [pytest.approx(1.402), "vip__vrouter start on ctl1"],
                      [pytest.approx(1.41), "fencing (reboot) of ctl3 requested"],
                      [pytest.approx(2.95), "ctl3 fenced (reboot) by ctl2"]]


def test_events_from_the_pacemaker_logs_of_the_one_vip_primitive() -> None:
    """The layout's one primitive `vips` carries every VIP: its start is the event (the logs
    of the layouts before, one `vip__<name>` each, still read as above); another resource's
    operation is none."""
    import time

    fault = time.mktime(time.strptime("2026 Dec 01 20:16:45", "%Y %b %d %H:%M:%S"))
    log = "\n".join([
        pcmk("20:16:46.402", "pacemaker-controld", "Result of start operation for vips on ctl2: "
             "ok | CIB update 53, graph action confirmed; call=45 key=vips_start_0"),
        pcmk("20:16:46.510", "pacemaker-controld", "Result of start operation for dns on ctl2: "
             "ok | CIB update 54, graph action confirmed; call=46 key=dns_start_0"),
    ])
    events = pacemaker_events([log], fault, fault - 1.5, fault + 6)
    assert events == [[pytest.approx(1.402), "vips start on ctl2"]]


def test_the_drill_writes_the_log_events_into_its_timeline(tmp_path) -> None:
    import time

    report, server, clients, pings = report_and_records()
    log = tmp_path / "pacemaker.log"
    second = int(FAULT) + 1
    stamp = time.strftime("%b %d %H:%M:%S", time.localtime(second))
    log.write_text(f"{stamp}.250 ctl2 pacemaker-controld  [28] (log_executor_event) \tnotice: "
                   "Result of start operation for vip__vrouter_pub on ctl2: ok | x\n")
    tl = write_drill_timeline(str(tmp_path), report, server, clients, pings, T0,
                              pacemaker_logs=[str(log), str(tmp_path / "missing.log")])
    assert [(round(e.t, 3), e.label) for e in tl.events if e.kind == "event"] == [
        (round(second + 0.25 - FAULT, 3), "vip__vrouter_pub start on ctl2")]


def test_malformed_samples_and_events_name_the_field() -> None:
    from envrouter.errors import ValidationError

    report, server, clients, pings = report_and_records()
    with pytest.raises(ValidationError, match=r"vip_holder_samples\[1\]"):
        drill_timeline(report, server, clients, pings, T0,
                       vip_samples=[[0.0, "vrouter", "ctl1"], [0.1, "vrouter"]])
    with pytest.raises(ValidationError, match=r"events\[0\]"):
        drill_timeline(report, server, clients, pings, T0, events=[["soon", "token lost"]])
