"""Failover drills: analysis of the traffic records, the report and its verdict (pure).

The drill runner (`envrouter.lab.drills`) collects, for one drill:
- the ping output of every compute node (``ping -D -O``),
- the client-side and server-side records of every TCP and UDP flow
  (`envrouter.lab.traffic`), with wall-clock receive times,
- when the fault was injected and where the VIPs were before and after.

Everything here turns those into numbers and a verdict without touching anything.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from envrouter.lab.vip_samples import Timeline, describe_two_holders

# a flow must still deliver data this close to the end of the run to count as alive
ALIVE_TAIL = 1.5  # s
# how far the outage figures may be from the target and still print as "ok"
HARD_TARGET_MS = 1500
PLANNED_TARGET_MS = 200

# "from 198.51.100.80: icmp_seq" or "from 2001:db8:51::80: icmp_seq"
_REPLY_RE = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from \S+: icmp_seq=(\d+) .*time=")
_SEQ_RE = re.compile(r"icmp_seq=(\d+)")
_SUMMARY_RE = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")


@dataclass(frozen=True)
class Gap:
    seconds: float
    start: float | None  # wall-clock time the gap began (the last event before it)


def longest_gap(times: list[float], start: float, end: float) -> Gap:
    """Longest interval without an event in [start, end]: between consecutive events, from
    `start` to the first one and from the last one to `end` (a flow that died shows it)."""
    points = sorted(t for t in times if start <= t <= end)
    if not points:
        return Gap(end - start, start)
    best = Gap(points[0] - start, start)
    for a, b in zip(points, points[1:], strict=False):
        if b - a > best.seconds:
            best = Gap(b - a, a)
    if end - points[-1] > best.seconds:
        best = Gap(end - points[-1], points[-1])
    return best


@dataclass(frozen=True)
class Ping:
    times: list[float]  # reply times (wall clock, from ping -D)
    seqs: list[int]
    transmitted: int
    received: int

    @property
    def lost(self) -> int:
        return max(0, self.transmitted - self.received)


def parse_ping(text: str) -> Ping:
    times: list[float] = []
    seqs: list[int] = []
    seen: set[int] = set()
    transmitted = received = highest = 0
    for line in text.splitlines():
        q = _SEQ_RE.search(line)
        if q:
            highest = max(highest, int(q.group(1)))
        m = _REPLY_RE.match(line)
        if m and "DUP!" not in line:
            seq = int(m.group(2))
            if seq not in seen:
                seen.add(seq)
                times.append(float(m.group(1)))
                seqs.append(seq)
            continue
        s = _SUMMARY_RE.search(line)
        if s:
            transmitted, received = int(s.group(1)), int(s.group(2))
    if transmitted == 0 and highest:  # no summary (ping killed): iputils numbers from 1
        transmitted, received = highest, len(seqs)
    return Ping(times, seqs, transmitted, received)


@dataclass
class FlowResult:
    flow: str
    kind: str  # tcp | udp | icmp
    survived: bool
    longest_gap_ms: float
    reason: str = ""  # why it did not survive


def _alive_until_end(times: list[float], t_fault: float, t_end: float) -> str:
    """'' if the flow delivered after the fault and until the end, else why not."""
    after = [t for t in times if t > t_fault]
    if not after:
        return "nothing received after the fault"
    if t_end - after[-1] > ALIVE_TAIL:
        return f"stopped {t_end - after[-1]:.1f} s before the end"
    return ""


def tcp_result(client: dict[str, Any], server: dict[str, Any] | None, t_start: float,
               t_fault: float, t_end: float) -> FlowResult:
    """A TCP connection survived if neither side saw an error (reset, EOF, corrupt counters)
    and both directions delivered data after the fault and until the end."""
    flow = client["flow"]
    gap = longest_gap(client["rx_times"], t_start, t_end).seconds
    reasons = []
    if client.get("error"):
        reasons.append(f"client: {client['error']}")
    if server is None:
        reasons.append("the server never saw this connection")
    else:
        gap = max(gap, longest_gap(server["rx_times"], t_start, t_end).seconds)
        # the server sees the client's own closing at the end: only an error it met before
        # the client closed counts
        client_closed = client.get("closed_at")
        if server.get("error") and (client_closed is None or server.get("closed_at") is None
                                    or server["closed_at"] < client_closed):
            reasons.append(f"server: {server['error']}")
        why = _alive_until_end(server["rx_times"], t_fault, t_end)
        if why:
            reasons.append(f"upload {why}")
    why = _alive_until_end(client["rx_times"], t_fault, t_end)
    if why:
        reasons.append(f"download {why}")
    return FlowResult(flow, "tcp", not reasons, round(gap * 1000, 1), "; ".join(reasons))


def udp_result(rec: dict[str, Any], t_start: float, t_fault: float, t_end: float) -> FlowResult:
    """A UDP flow survived if answers resumed and went on until the end, and the server saw
    one source address:port the whole time (the NAT mapping was kept)."""
    reasons = []
    why = _alive_until_end(rec["rx_times"], t_fault, t_end)
    if why:
        reasons.append(why)
    sources = rec.get("seen_sources") or []
    if len(sources) > 1:
        reasons.append(f"NAT mapping changed: {' -> '.join(sources)}")
    gap = longest_gap(rec["rx_times"], t_start, t_end).seconds
    return FlowResult(rec["flow"], "udp", not reasons, round(gap * 1000, 1), "; ".join(reasons))


def icmp_result(name: str, ping: Ping, t_start: float, t_fault: float,
                t_end: float) -> FlowResult:
    why = _alive_until_end(ping.times, t_fault, t_end)
    gap = longest_gap(ping.times, t_start, t_end).seconds
    return FlowResult(f"{name}-icmp", "icmp", not why, round(gap * 1000, 1), why)


@dataclass
class DrillReport:
    drill: str
    holder_before: str
    holders_after: dict[str, list[str]]  # VIP name -> controllers whose namespace holds it
    expect_move: bool | None  # None: either (the end state must only be one holder)
    t_fault: float
    t_end: float
    # fault -> first 50 ms sample from which every VIP was on the final holder alone
    vips_moved_after_ms: float | None
    longest_gap_ms: float  # the longest ping gap over all compute nodes: the outage
    packets_lost: int
    packets_sent: int
    flows: list[FlowResult] = field(default_factory=list)
    dc_before: str | None = None
    notes: list[str] = field(default_factory=list)  # extra checks that failed (verdict)
    # the connection load at scale (envrouter.lab.load_report.LoadResult.to_dict), if any
    load: dict[str, Any] | None = None
    # from the VIP holders sampled every 50 ms (envrouter.lab.vip_samples)
    fencing: bool | None = None  # stonith-enabled when the drill ran
    vip_samples: int = 0  # samples from the fault to the end
    max_holders: int = 0  # the most namespaces holding one VIP at one sample (1 = never two)
    two_holders_ms: float = 0.0  # sampled time with some VIP held by two namespaces
    vacant_ms: float = 0.0  # sampled time with some VIP held by nobody
    # the longest ping gap over the IPv6 pings alone (None: an IPv4-only lab); longest_gap_ms
    # covers both families
    longest_gap6_ms: float | None = None

    def count(self, kind: str) -> tuple[int, int]:
        of_kind = [f for f in self.flows if f.kind == kind]
        return sum(f.survived for f in of_kind), len(of_kind)

    @property
    def holder_after(self) -> str | None:
        holders = {h for hs in self.holders_after.values() for h in hs}
        return holders.pop() if len(holders) == 1 else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["holder_after"] = self.holder_after
        for kind in ("tcp", "udp", "icmp"):
            ok, total = self.count(kind)
            out[f"{kind}_surviving"], out[f"{kind}_total"] = ok, total
            six = [f for f in self.flows if f.kind == kind and is_ipv6_flow(f.flow)]
            out[f"{kind}6_surviving"], out[f"{kind}6_total"] = (
                sum(f.survived for f in six), len(six))
        out["failures"] = verdict(self)
        return out


def vip_problems(holders_after: dict[str, list[str]], holder_before: str,
                 expect_move: bool | None) -> list[str]:
    """Each VIP on exactly one namespace, both on the same node, moved (or not) as expected."""
    problems = []
    for vip, holders in sorted(holders_after.items()):
        if len(holders) > 1:
            problems.append(f"split brain: {vip} held by {', '.join(holders)}")
        elif not holders:
            problems.append(f"{vip} held by no controller")
    nodes = {h for hs in holders_after.values() for h in hs}
    if len(nodes) > 1 and not any(len(h) > 1 for h in holders_after.values()):
        problems.append(f"the VIPs are apart: {holders_after}")
    if len(nodes) == 1:
        (node,) = nodes
        if expect_move and node == holder_before:
            problems.append(f"the VIPs did not move off {holder_before}")
        if expect_move is False and node != holder_before:
            problems.append(f"the VIPs moved from {holder_before} to {node} (they should stay)")
    return problems


def verdict(report: DrillReport) -> list[str]:
    """Why the drill failed ([] = it passed): a lost connection or flow, VIPs misplaced."""
    failures = [f"{f.kind} {f.flow} lost: {f.reason}" for f in report.flows if not f.survived]
    failures += vip_problems(report.holders_after, report.holder_before, report.expect_move)
    failures += report.notes
    if report.load:
        failures += report.load["failures"]
    return failures


def format_report(report: DrillReport) -> str:
    tcp, udp, icmp = report.count("tcp"), report.count("udp"), report.count("icmp")
    after = report.holder_after or ", ".join(
        f"{vip}: {' '.join(h) or 'nowhere'}" for vip, h in sorted(report.holders_after.items()))
    moved = ("not seen" if report.vips_moved_after_ms is None
             else f"first seen there {report.vips_moved_after_ms:.0f} ms after the fault")
    lines = [
        f"drill {report.drill}: VIP holder before {report.holder_before}"
        + (f" (DC {report.dc_before})" if report.dc_before else ""),
        f"  longest gap (ping every 50 ms): {report.longest_gap_ms:.0f} ms"
        + ("" if report.longest_gap6_ms is None
           else f" (IPv6 pings alone: {report.longest_gap6_ms:.0f} ms)"),
        f"  packets lost: {report.packets_lost} of {report.packets_sent}",
        f"  TCP connections surviving: {tcp[0]}/{tcp[1]}",
        f"  UDP flows surviving: {udp[0]}/{udp[1]}",
        f"  ICMP flows surviving: {icmp[0]}/{icmp[1]}",
        f"  VIPs ended up on: {after}"
        + (f" (moved, {moved})" if report.expect_move else
           " (expected to stay)" if report.expect_move is False else f" ({moved})"),
    ]
    if report.vip_samples:
        lines.append(f"  VIP holders sampled every 50 ms ({report.vip_samples} samples): "
                     + ("never two at once" if report.max_holders < 2 else
                        f"[two at once for {report.two_holders_ms:.0f} ms]")
                     + (f", none for {report.vacant_ms:.0f} ms" if report.vacant_ms else "")
                     + "; fencing " + ("on" if report.fencing else "off"))
    worst = sorted((f for f in report.flows if f.kind != "icmp"),
                   key=lambda f: -f.longest_gap_ms)[:1]
    if worst:
        lines.append(f"  longest TCP/UDP gap: {worst[0].longest_gap_ms:.0f} ms ({worst[0].flow})")
    if report.load:
        ld = report.load
        lag = ld["sync_lag_ms"]
        lines += [
            f"  idle TCP connections surviving: {ld['idle_ok']}/{ld['idle_total']}",
            f"  new TCP connections (established >= 200 ms before the fault) surviving: "
            f"{ld['new_ok']}/{ld['new_total']} (later: {ld['new_after_ok']}/"
            f"{ld['new_after_total']})",
            f"  load UDP flows keeping their NAT mapping: {ld['udp_ok']}/{ld['udp_total']}",
            "  sync lag (holder -> every peer): "
            + ("not measured" if lag.get("p50") is None else
               f"p50 {lag['p50']} ms, p99 {lag['p99']} ms ({lag['samples']:.0f} flows)"),
        ]
        lines += [f"    lost: {n} x {why}" for why, n in sorted(ld["reasons"].items())][:8]
    failures = verdict(report)
    lines.append("  verdict: " + ("PASS" if not failures else "FAIL"))
    lines += [f"    - {f}" for f in failures]
    return "\n".join(lines)


def summarize(values: list[float]) -> dict[str, float | None]:
    """Median and max of a series (bench)."""
    if not values:
        return {"median": None, "max": None}
    return {"median": round(statistics.median(values), 1), "max": round(max(values), 1)}


# --------------------------------------------------------------------------- controller memory

CLUSTER_STACK = frozenset({
    "corosync", "pacemakerd", "pacemaker-based", "pacemaker-fenced", "pacemaker-execd",
    "pacemaker-attrd", "pacemaker-schedulerd", "pacemaker-controld",
})


def _cluster_comm(comm: str) -> bool:
    # the kernel keeps 15 characters of a command name: pacemaker-controld -> pacemaker-contr
    return any(name[:15] == comm for name in CLUSTER_STACK)
RESIDENT_AFTER = 5.0  # s: younger (and not a daemon of ours yet) counts as passing


@dataclass(frozen=True)
class Proc:
    pid: int  # as seen from the machine
    ns_pid: int  # as seen inside the node (1 = the node's init)
    comm: str
    cmdline: str
    rss_kb: int
    age: float  # seconds since it started
    ppid: int = 0  # machine PID of the parent


def _under_execd(proc: Proc, by_pid: dict[int, Proc]) -> bool:
    seen = set()
    p = by_pid.get(proc.ppid)
    while p is not None and p.pid not in seen:
        if p.comm == "pacemaker-execd"[:15]:
            return True
        seen.add(p.pid)
        p = by_pid.get(p.ppid)
    return False


def classify(proc: Proc, by_pid: dict[int, Proc] | None = None) -> str:
    """cluster (Corosync/Pacemaker), init (the lab's stand-in for the machine's init: the
    anchor, PID 1), transient (an OCF action or probe — a descendant of pacemaker-execd — or
    younger than RESIDENT_AFTER, e.g. a detached arping) or project (everything else that
    stays: the daemons envrouter runs, and anything it leaves behind)."""
    if proc.ns_pid == 1:
        return "init"
    if _cluster_comm(proc.comm):
        return "cluster"
    if _under_execd(proc, by_pid or {}) or proc.age < RESIDENT_AFTER:
        return "transient"
    return "project"


def is_python(proc: Proc) -> bool:
    first = proc.cmdline.split(" ", 1)[0].rsplit("/", 1)[-1]
    return proc.comm.startswith("python") or first.startswith("python")


def memory_summary(procs: list[Proc]) -> dict[str, Any]:
    """RSS sums (MB) of the project's resident processes and of the cluster stack, the project
    processes by name, and the resident Python processes (the target: none)."""
    out: dict[str, Any] = {"project_mb": 0.0, "cluster_mb": 0.0, "by_name": {},
                           "resident_python": []}
    by_pid = {p.pid: p for p in procs}
    for p in procs:
        kind = classify(p, by_pid)
        if kind == "project":
            out["project_mb"] += p.rss_kb / 1024
            out["by_name"][p.comm] = round(out["by_name"].get(p.comm, 0) + p.rss_kb / 1024, 1)
            if is_python(p):
                out["resident_python"].append(f"{p.pid}: {p.cmdline[:100]}")
        elif kind == "cluster":
            out["cluster_mb"] += p.rss_kb / 1024
    out["project_mb"] = round(out["project_mb"], 1)
    out["cluster_mb"] = round(out["cluster_mb"], 1)
    return out


# ----------------------------------------------------------------------------- a drill's report

# the drill traffic's IPv6 clients are named `<node>-v6` (envrouter.lab.drill_traffic), their
# flows `<node>-v6-tcp0`, ..., `<node>-v6-icmp`
IPV6_SUFFIX = "-v6"


def is_ipv6_flow(flow: str) -> bool:
    return f"{IPV6_SUFFIX}-" in flow or flow.endswith(IPV6_SUFFIX)



def analyse(drill: str, holder: str, dc: str | None, holders_after: dict[str, list[str]],
            expect_move: bool | None, t_start: float, t_fault: float, t_end: float,
            moved_at: float | None, server: dict[str, Any], clients: dict[str, Any],
            pings: dict[str, str], notes: list[str]) -> DrillReport:
    """Pure: the report from the records."""
    flows: list[FlowResult] = []
    server_tcp = {rec["flow"]: rec for rec in server.get("tcp", [])}
    for rec in (r for c in clients.values() for r in c["flows"]):
        if rec["kind"] == "tcp":
            flows.append(tcp_result(rec, server_tcp.get(rec["flow"]), t_start, t_fault, t_end))
        else:
            flows.append(udp_result(rec, t_start, t_fault, t_end))
    gap_ms, lost, sent = 0.0, 0, 0
    gap6_ms: float | None = None
    for name, text in sorted(pings.items()):
        ping = parse_ping(text)
        flows.append(icmp_result(name, ping, t_start, t_fault, t_end))
        gap = longest_gap(ping.times, t_start, t_end).seconds * 1000
        gap_ms = max(gap_ms, gap)
        if is_ipv6_flow(name):
            gap6_ms = max(gap6_ms or 0.0, gap)
        lost += ping.lost
        sent += ping.transmitted
    return DrillReport(
        drill=drill, holder_before=holder, holders_after=holders_after,
        expect_move=expect_move, t_fault=t_fault, t_end=t_end,
        vips_moved_after_ms=None if moved_at is None else round((moved_at - t_fault) * 1000, 1),
        longest_gap_ms=round(gap_ms, 1), packets_lost=lost, packets_sent=sent, flows=flows,
        dc_before=dc, notes=notes,
        longest_gap6_ms=None if gap6_ms is None else round(gap6_ms, 1),
    )


def add_timeline(report: DrillReport, tl: Timeline, fencing: bool) -> None:
    """The sampled VIP holders into the report; a VIP held twice at any sample fails it."""
    report.fencing = fencing
    report.vip_samples = tl.samples
    report.max_holders = tl.max_holders
    report.two_holders_ms = round(tl.two_holders_s * 1000, 1)
    report.vacant_ms = round(tl.vacant_s * 1000, 1)
    if why := describe_two_holders(tl):
        report.notes.append(why)
