"""Connection load for the drills at scale (pure): how the load is spread over processes, and
what its records say — idle, new and UDP flows surviving, and the sync lag.

The effects (starting the processes in the nodes, collecting their files) are in
`envrouter.lab.scale`; the processes themselves in `envrouter.lab.load`.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from envrouter.errors import ValidationError

PER_PROCESS = 12_500  # connections per client or server process (the hard limit is 20,000 files)
IDLE_BASE_PORT = 5100  # idle connections' server ports: 5100, 5101, ...
CHURN_PORT = 5090  # new connections (and the churn server's UDP port: CHURN_PORT + 1)
UDP_PORT = CHURN_PORT + 1
MAX_CONNECTIONS = 200_000
DEFAULT_CHURN_RATE = 200.0  # new connections a second, over all compute nodes
DEFAULT_UDP_PER_NODE = 20
DEFAULT_OPEN_RATE = 4000.0  # idle connections opened a second, over all client processes
CHURN_SECONDS_MAX = 60.0  # the churn stops after this long (bounded in count and time)
NEW_MARGIN = 0.2  # s: a new connection established this long before the fault must survive


@dataclass(frozen=True)
class ClientSpec:
    node: str
    name: str
    count: int  # idle connections
    open_rate: float
    churn_rate: float = 0.0  # the node's churn process only
    churn_max: int = 0
    udp: int = 0


@dataclass(frozen=True)
class LoadPlan:
    connections: int
    server_ports: list[int]
    clients: list[ClientSpec]
    churn_rate: float
    udp_per_node: int


def plan_load(connections: int, computes: list[str], *, churn_rate: float = DEFAULT_CHURN_RATE,
              udp_per_node: int = DEFAULT_UDP_PER_NODE,
              open_rate: float = DEFAULT_OPEN_RATE) -> LoadPlan:
    """Spread `connections` idle connections evenly over the compute nodes, at most
    PER_PROCESS per client process and per server port; one churn/UDP process per node."""
    if not 0 <= connections <= MAX_CONNECTIONS:
        raise ValidationError("drill", "connections", f"{connections}: between 0 and "
                              f"{MAX_CONNECTIONS}")
    if churn_rate < 0 or churn_rate > 2000:
        raise ValidationError("drill", "churn", f"{churn_rate}: between 0 and 2000 a second")
    if not 0 <= udp_per_node <= 1000:
        raise ValidationError("drill", "udp_flows", f"{udp_per_node}: between 0 and 1000")
    if not computes:
        raise ValidationError("drill", "connections", "no running compute node")
    n_ports = max(1, math.ceil(connections / PER_PROCESS))
    ports = [IDLE_BASE_PORT + i for i in range(n_ports)] if connections else []
    clients: list[ClientSpec] = []
    per_node = _split(connections, len(computes))
    n_procs = sum(max(1, math.ceil(n / PER_PROCESS)) for n in per_node if n)
    for node, n in zip(computes, per_node, strict=True):
        if n:
            parts = _split(n, math.ceil(n / PER_PROCESS))
            for i, count in enumerate(parts):
                clients.append(ClientSpec(node, f"{node}-idle{i}", count,
                                          round(open_rate / max(n_procs, 1), 1)))
        rate = churn_rate / len(computes)
        clients.append(ClientSpec(node, f"{node}-churn", 0, 0.0, rate,
                                  int(rate * CHURN_SECONDS_MAX), udp_per_node))
    return LoadPlan(connections, ports, clients, churn_rate, udp_per_node)


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


# ----------------------------------------------------------------------------- results


@dataclass
class LoadResult:
    idle_ok: int = 0
    idle_total: int = 0
    new_ok: int = 0  # established at least NEW_MARGIN before the fault
    new_total: int = 0
    new_after_ok: int = 0  # established later (during or after the outage): not a target
    new_after_total: int = 0
    udp_ok: int = 0
    udp_total: int = 0
    sync_lag_ms: dict[str, float | None] = field(default_factory=dict)  # p50, p99, samples
    failures: list[str] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)  # why connections were lost

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _alive_udp(rec: dict[str, Any], t_fault: float, t_end: float) -> str:
    sources = rec.get("sources") or []
    if len(sources) > 1:
        return f"NAT mapping changed: {' -> '.join(sources)}"
    last = rec.get("last_rx")
    if last is None or last <= t_fault:
        return "no answer after the fault"
    if t_end - last > 2.0:
        return f"answers stopped {t_end - last:.1f} s before the end"
    return ""


def load_result(clients: dict[str, dict[str, Any]], t_fault: float, t_check: float,
                lags: list[float] | None = None, expected_idle: int | None = None
                ) -> LoadResult:
    """From the client records (`envrouter.lab.load` Client.record): idle connections that
    completed the check round trip, new ones established at least NEW_MARGIN before the fault
    likewise (the later ones are counted apart), UDP flows that kept one NAT mapping and were
    answered after the fault until the check; the sync lags (s) as p50/p99 in ms."""
    r = LoadResult()
    for name, rec in sorted(clients.items()):
        idle = rec["idle"]
        r.idle_total += idle["total"]
        r.idle_ok += idle["ok"]
        if idle["total"] < idle["target"]:
            r.failures.append(f"{name}: {idle['target'] - idle['total']} idle connections "
                              "never opened")
            r.idle_total += idle["target"] - idle["total"]
        for why, n in idle["reasons"].items():
            r.reasons[f"idle: {why}"] = r.reasons.get(f"idle: {why}", 0) + n
        for c in rec["new"]:
            est = c.get("established")
            if est is not None and est <= t_fault - NEW_MARGIN:
                r.new_total += 1
                r.new_ok += bool(c["ok"])
                if not c["ok"]:
                    key = f"new: {c['reason']}"
                    r.reasons[key] = r.reasons.get(key, 0) + 1
            else:
                r.new_after_total += 1
                r.new_after_ok += bool(c["ok"])
        for u in rec["udp"]:
            r.udp_total += 1
            why = _alive_udp(u, t_fault, t_check)
            if why:
                r.failures.append(f"udp {u['flow']} lost: {why}")
            else:
                r.udp_ok += 1
    if expected_idle is not None and r.idle_total < expected_idle:
        r.failures.append(f"{expected_idle - r.idle_total} idle connections have no record")
        r.idle_total = expected_idle
    if r.idle_ok < r.idle_total:
        r.failures.append(f"idle TCP connections lost: {r.idle_total - r.idle_ok} of "
                          f"{r.idle_total}")
    if r.new_ok < r.new_total:
        r.failures.append(f"new TCP connections (established >= {NEW_MARGIN * 1000:.0f} ms "
                          f"before the fault) lost: {r.new_total - r.new_ok} of {r.new_total}")
    r.sync_lag_ms = lag_summary(lags or [])
    return r


# ----------------------------------------------------------------------------- sync lag

_EVENT_RE = re.compile(r"^\[(\d+\.\d+)\]")
_FIELD_RE = re.compile(r"\b(src|dst|sport|dport)=(\S+)")

Tuple = tuple[str, str, str, str]


def parse_events(text: str) -> dict[Tuple, float]:
    """`conntrack -E -o timestamp` lines -> {original tuple: time of the first event}."""
    out: dict[Tuple, float] = {}
    for line in text.splitlines():
        m = _EVENT_RE.match(line.strip())
        if not m:
            continue
        fields: dict[str, str] = {}
        for key, value in _FIELD_RE.findall(line):
            fields.setdefault(key, value)  # the first of each: the original direction
        if len(fields) != 4:
            continue
        key = (fields["src"], fields["sport"], fields["dst"], fields["dport"])
        out.setdefault(key, float(m.group(1)))
    return out


def sync_lags(holder: dict[Tuple, float], peers: list[dict[Tuple, float]],
              until: float) -> tuple[list[float], int]:
    """For every flow created on the holder before `until`: the time until it was present on
    every peer (s). Returns (lags, flows never seen on some peer)."""
    lags: list[float] = []
    missing = 0
    for key, t in holder.items():
        if t > until:
            continue
        seen = [p.get(key) for p in peers]
        if not peers or any(s is None for s in seen):
            missing += 1
            continue
        lags.append(max(0.0, max(s for s in seen if s is not None) - t))
    return lags, missing


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def lag_summary(lags: list[float]) -> dict[str, float | None]:
    p50, p99 = percentile(lags, 0.5), percentile(lags, 0.99)
    return {"p50": None if p50 is None else round(p50 * 1000, 1),
            "p99": None if p99 is None else round(p99 * 1000, 1),
            "max": None if not lags else round(max(lags) * 1000, 1),
            "samples": float(len(lags))}
