"""Benchmark: what the envrouter OCF agents cost in CPU, per action and in steady state.

Run as root:  .venv/bin/python bench/agents_cpu.py local [--reps 15]
              .venv/bin/python bench/agents_cpu.py lab [--state-dir DIR] [--seconds 60]

CPU is the user + system time of the agent's whole process tree as the kernel accounts it
(wait4's rusage of the process, which includes every child it waited for: ip, conntrackd -s,
the interpreter), so it is far less sensitive to the machine's load than a wall time.

local: in namespaces made here (a "node" with the bridges br-mgmt and br-ex, removed at the
  end), the agents installed as `envrouter ha install` writes them: the vrouter agent builds
  the namespace, then dns, ntp and conntrackd start in it; per action the median CPU over
  --reps runs of: each agent's probe and recurring monitor, conntrackd's promoted monitor, the
  VIP start, monitor and stop (the one resource with every VIP, the public one with its route),
  and the daemons' start and stop. Targets: every monitor <= 20 ms, a VIP start or stop
  <= 30 ms. Then the steady state those monitors make at the layout's intervals, on the VIP
  holder and on another controller (target <= 1 % of a core).
lab: on the lab in --state-dir (up, with the layout applied): per controller, the CPU time of
  pacemaker-execd's children (every resource agent Pacemaker ran, ours and ocf:pacemaker:ping)
  over --seconds, as a share of one core; then each envrouter primitive's recurring monitor run
  by hand on every controller with the CIB's parameters, and the steady state it makes at the
  CIB's intervals (target: <= 1 % of a core per controller for all envrouter agents).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))
from _common import cpu_model  # noqa: E402
from agent import make_node  # noqa: E402

MONITOR_MS, VIP_MS, STEADY_PCT = 20.0, 30.0, 1.0


def cpu_ms(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """(user + system ms of argv's whole process tree, exit status)."""
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return (ru.ru_utime + ru.ru_stime) * 1000, proc.returncode


def load() -> str:
    a, b, c = os.getloadavg()
    return f"load average {a:.1f} {b:.1f} {c:.1f}"


# ---------------------------------------------------------------------------------- local
class Agents:
    def __init__(self, root: Path, base: dict[str, str]) -> None:
        self.dir = root / "resource.d" / "envrouter"
        self.base = base

    def env(self, params: dict[str, str], interval_ms: int = 0) -> dict[str, str]:
        env = {**self.base, **{f"OCF_RESKEY_{k}": v for k, v in params.items()}}
        env["OCF_RESKEY_CRM_meta_interval"] = str(interval_ms)
        return env

    def run(self, name: str, action: str, params: dict[str, str], interval_ms: int = 0,
            expect: tuple[int, ...] = (0,)) -> float:
        ms, rc = cpu_ms([str(self.dir / name), action], self.env(params, interval_ms))
        if rc not in expect:
            out = subprocess.run([str(self.dir / name), action], capture_output=True, text=True,
                                 env=self.env(params, interval_ms))
            raise SystemExit(f"{name} {action}: exit {rc}, expected {expect}: {out.stderr}")
        return ms

    def median(self, reps: int, name: str, action: str, params: dict[str, str],
               interval_ms: int = 0, expect: tuple[int, ...] = (0,)) -> float:
        return statistics.median(self.run(name, action, params, interval_ms, expect)
                                 for _ in range(reps))


def settle_vrouter(a: Agents, params: dict[str, str], tmp: Path) -> None:
    """Recurring monitors until one answers from the kernel's stamp (it leaves the recorded
    stamp as it was): links just made change by themselves for a second or two (IPv6
    duplicate address detection), and every monitor meanwhile runs the full check, as it
    must. Polled, bounded."""
    for _ in range(60):
        before = {p: p.stat().st_mtime_ns for p in (tmp / ".ocf").glob("vrouter-*.kernel")}
        a.run("vrouter", "monitor", params, 10000)
        after = {p: p.stat().st_mtime_ns for p in (tmp / ".ocf").glob("vrouter-*.kernel")}
        if before and before == after:
            return
        time.sleep(0.25)
    raise SystemExit("the vrouter monitor never answered from the kernel's stamp")


def local(reps: int) -> int:
    from agent_documents import controller_document
    from envrouter.ha import ocf_conntrackd
    from envrouter.ha.install import install_agents
    from envrouter.ha.layout import VIPS, build_layout
    from envrouter.waiting import wait_until

    if os.geteuid() != 0:
        raise SystemExit("bench/agents_cpu.py needs root (it creates network namespaces)")
    prefix = f"erc{secrets.token_hex(3)}"
    node, vr = f"{prefix}-node", f"{prefix}-vr"
    tmp = Path(tempfile.mkdtemp(prefix="erc-", dir="/run"))
    os.chmod(tmp, 0o755)
    rows: list[tuple[str, float, float | None]] = []
    try:
        make_node(prefix, "node")
        doc = tmp / "document.json"
        document = controller_document(vr)
        doc.write_text(document.model_dump_json())
        install_agents(str(tmp / "ocf"))
        a = Agents(tmp / "ocf", {"PATH": os.environ["PATH"], "OCF_ROOT": "/usr/lib/ocf",
                                 "ENVROUTER_AGENT_LOCK": str(tmp / "agent.lock")})
        vrouter = {"document": str(doc), "host_netns": node, "root": str(tmp / "root")}
        daemon = {"document": str(doc), "run_root": str(tmp / "run"),
                  "log_root": str(tmp / "log")}
        conf = tmp / "run" / vr / "conntrackd" / "conntrackd.conf"
        # the VIP resource as the layout lays it out for this document: every VIP, the public
        # one with its route
        (prim,) = [r for r in build_layout(document).resources if r.get("id") == VIPS]
        vips = {**{nv.get("name"): nv.get("value") for nv in prim.iter("nvpair")},
                "arp_count": "1", "conntrackd_conf": str(conf)}

        rows.append(("vrouter start (builds the namespace)", a.run("vrouter", "start", vrouter),
                     None))
        settle_vrouter(a, vrouter, tmp)
        rows.append(("vrouter probe", a.median(reps, "vrouter", "monitor", vrouter),
                     MONITOR_MS))
        rows.append(("vrouter monitor (10 s)",
                     a.median(reps, "vrouter", "monitor", vrouter, 10000), MONITOR_MS))
        for name in ("dns", "ntp", "conntrackd"):
            rows.append((f"{name} probe (stopped)",
                         a.median(reps, name, "monitor", daemon, 0, (7,)), MONITOR_MS))
            rows.append((f"{name} start", a.run(name, "start", daemon), None))
            rows.append((f"{name} probe", a.median(reps, name, "monitor", daemon), MONITOR_MS))
            rows.append((f"{name} monitor (10 s)",
                         a.median(reps, name, "monitor", daemon, 10000), MONITOR_MS))
        a.run("conntrackd", "promote", daemon)
        # the steady state: the first recurring monitor RESYNC_AFTER s after promote resyncs
        marker = conf.with_name(ocf_conntrackd.PROMOTED_FILE)
        wait_until(lambda: a.run("conntrackd", "monitor", daemon, 5000, (8,)) >= 0
                   and ocf_conntrackd.RESYNCED in marker.read_text(),
                   timeout=ocf_conntrackd.RESYNC_AFTER + 30, interval=0.5)
        rows.append(("conntrackd monitor promoted (5 s)",
                     a.median(reps, "conntrackd", "monitor", daemon, 5000, (8,)), MONITOR_MS))
        starts, stops = [], []
        for _ in range(reps):
            starts.append(a.run("vip", "start", vips))
            stops.append(a.run("vip", "stop", vips))
        rows.append(("vips start (every VIP)", statistics.median(starts), VIP_MS))
        rows.append(("vips stop", statistics.median(stops), VIP_MS))
        a.run("vip", "start", vips)
        rows.append(("vips monitor (2 s)", a.median(reps, "vip", "monitor", vips, 2000),
                     MONITOR_MS))
        rows.append(("uplink probe (stopped)",
                     a.median(reps, "uplink", "monitor", {"bridge": "br-ex",
                                                          "run_root": str(tmp / "run")}, 0, (7,)),
                     MONITOR_MS))
        for name in ("conntrackd", "ntp", "dns"):
            if name == "conntrackd":
                a.run(name, "demote", daemon)
            rows.append((f"{name} stop", a.run(name, "stop", daemon), None))
        a.run("vip", "stop", vips)
        rows.append(("vrouter stop", a.run("vrouter", "stop", vrouter), None))
    finally:
        subprocess.run(["ip", "netns", "del", vr], capture_output=True)
        subprocess.run(["ip", "netns", "del", node], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, {load()}")
    print(f"CPU per action (user + system of the whole process tree, median of {reps}):")
    failed = 0
    for label, ms, target in rows:
        verdict = ""
        if target is not None:
            verdict = f"target <= {target:.0f} ms: " + ("met" if ms <= target else "NOT MET")
            failed += ms > target
        print(f"  {label:<40} {ms:7.1f} ms  {verdict}")
    # the steady state these make at the layout's intervals (the lab mode measures it there)
    ms_of = {label: ms for label, ms, _ in rows}
    shared = {"vrouter monitor (10 s)": 10, "dns monitor (10 s)": 10, "ntp monitor (10 s)": 10,
              "uplink probe (stopped)": 10}
    roles = {
        "the VIP holder": {**shared, "conntrackd monitor promoted (5 s)": 5,
                           "vips monitor (2 s)": 2},
        "another controller": {**shared, "conntrackd monitor (10 s)": 10},
    }
    print("steady state at the layout's monitor intervals (uplink: its probe's cost):")
    for role, every in roles.items():
        pct = sum(ms_of[label] / 1000 / s * 100 for label, s in every.items())
        failed += pct > STEADY_PCT
        print(f"  {role:<40} {pct:7.2f} % of a core  target <= {STEADY_PCT:.0f} %: "
              + ("met" if pct <= STEADY_PCT else "NOT MET"))
    return 1 if failed else 0


# ------------------------------------------------------------------------------------ lab
def _execd_children_ticks(lab, node: str) -> int | None:
    pid = lab.exec_in(node, ["pidof", "pacemaker-execd"], check=False).stdout.split()
    if not pid:
        return None
    stat = lab.exec_in(node, ["cat", f"/proc/{pid[0]}/stat"], check=False).stdout
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[13]) + int(fields[14])  # cutime + cstime


def _primitives(lab, node: str) -> list[dict]:
    xml = lab.exec_in(node, ["cibadmin", "-Q", "-o", "resources"]).stdout
    out = []
    for prim in ET.fromstring(xml).iter("primitive"):
        if prim.get("provider") != "envrouter":
            continue
        params = {nv.get("name"): nv.get("value") for ia in prim.iter("instance_attributes")
                  for nv in ia.iter("nvpair")}
        monitors = {op.get("role") or "": op.get("interval") for op in prim.iter("op")
                    if op.get("name") == "monitor"}
        out.append({"id": prim.get("id"), "type": prim.get("type"), "params": params,
                    "monitors": monitors})
    return out


def _seconds(interval: str) -> float:
    for unit, mult in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if interval.endswith(unit) and interval[: -len(unit)].isdigit():
            return int(interval[: -len(unit)]) * mult
    return float(interval)


def lab_mode(state_dir: str | None, seconds: float, reps: int) -> int:
    from envrouter.lab.nodes import Lab
    from envrouter.lab.topology import DEFAULT_STATE_DIR

    lab = Lab.load(state_dir or DEFAULT_STATE_DIR)
    nodes = [n.name for n in lab.plan.controllers if lab.node_running(n.name)]
    clk = os.sysconf("SC_CLK_TCK")
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, {load()}")
    before = {n: _execd_children_ticks(lab, n) for n in nodes}
    t0 = time.monotonic()
    time.sleep(seconds)
    after = {n: _execd_children_ticks(lab, n) for n in nodes}
    dt = time.monotonic() - t0
    print(f"pacemaker-execd's children (every resource agent, ocf:pacemaker:ping included) "
          f"over {dt:.0f} s, {load()}:")
    for n in nodes:
        if before[n] is None or after[n] is None:
            print(f"  {n}: no pacemaker-execd")
            continue
        pct = 100 * (after[n] - before[n]) / clk / dt
        print(f"  {n}: {pct:5.2f} % of a core")
    prims = _primitives(lab, nodes[0])
    base_env = {"OCF_ROOT": "/usr/lib/ocf", "PATH": os.environ["PATH"]}
    nsenter_ms = statistics.median(cpu_ms(lab.nsenter_argv(nodes[0], ["true"]), base_env)[0]
                                   for _ in range(reps))
    print(f"each envrouter monitor run by hand in the node ({reps} runs, median, less "
          f"nsenter's own {nsenter_ms:.1f} ms); steady state at the CIB's intervals:")
    worst = 0.0
    report: dict[str, dict] = {}
    for n in nodes:
        total = 0.0
        for p in prims:
            agent = f"/usr/lib/ocf/resource.d/envrouter/{p['type']}"
            env = {**base_env, "OCF_RESOURCE_INSTANCE": p["id"],
                   **{f"OCF_RESKEY_{k}": v for k, v in p["params"].items()}}
            # the role this node has decides which recurring monitor it runs
            probe_env = {**env, "OCF_RESKEY_CRM_meta_interval": "0"}
            _, rc = cpu_ms(lab.nsenter_argv(n, [agent, "monitor"]), probe_env)
            if rc not in (0, 8):
                continue
            role = "Promoted" if rc == 8 else "Unpromoted"
            interval = p["monitors"].get(role) or p["monitors"].get("") or "10s"
            env["OCF_RESKEY_CRM_meta_interval"] = str(int(_seconds(interval) * 1000))
            runs = [cpu_ms(lab.nsenter_argv(n, [agent, "monitor"]), env)[0] - nsenter_ms
                    for _ in range(reps)]
            ms = statistics.median(runs)
            share = ms / 1000 / _seconds(interval) * 100
            total += share
            report.setdefault(n, {})[p["id"]] = {"interval": interval, "cpu_ms": round(ms, 1),
                                                 "pct": round(share, 3)}
            flag = "" if ms <= MONITOR_MS else f"  (over {MONITOR_MS:.0f} ms)"
            print(f"  {n} {p['id']:<20} every {interval:>4}: {ms:6.1f} ms = {share:5.2f} %"
                  f"{flag}")
        worst = max(worst, total)
        print(f"  {n}: all envrouter agents {total:5.2f} % of a core (target <= "
              f"{STEADY_PCT:.0f} %)")
    print(json.dumps(report))
    return 0 if worst <= STEADY_PCT else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    lo = sub.add_parser("local", help="per-action CPU in namespaces made here")
    lo.add_argument("--reps", type=int, default=15)
    la = sub.add_parser("lab", help="steady state and monitors on the lab")
    la.add_argument("--state-dir")
    la.add_argument("--seconds", type=float, default=60)
    la.add_argument("--reps", type=int, default=7)
    a = ap.parse_args()
    if a.mode == "local":
        return local(a.reps)
    return lab_mode(a.state_dir, a.seconds, a.reps)


if __name__ == "__main__":
    sys.exit(main())
