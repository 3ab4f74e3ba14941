"""Benchmark: failover of the vrouter's VIPs in the lab, repeated.

Run as root:  .venv/bin/python bench/failover.py [--runs 3] [--fencing on|off|both]
                 [--connections 1000,10000,100000] [--drills hard-kill,standby,hang]
                 [--bridge linux|ovs] [--state-dir DIR] [--json FILE] [--plot FILE]

Uses the lab in --state-dir if one is up there (ENVROUTER_LAB_STATE_DIR, default the lab's
default; it must be of the --bridge kind), otherwise brings one up (`envrouter lab up --bridge
KIND`, its own prefix) and removes it at the end (--keep leaves it). The table is the same for
both bridge kinds; its header says which one ran. Then, --runs times each: the hard-kill drill
(power-off of the VIP holder) and the standby drill (a planned switchover), each with TCP, UDP
and ICMP traffic from the compute nodes through the NAT (`envrouter.lab.drills`). Prints per
drill the median and max outage (the longest gap between ping replies, one every 50 ms) and the
survival of the TCP connections, UDP flows and ICMP flows; and, on every controller between
drills, the resident memory of the project's processes and of the cluster stack, and whether any
Python process is resident there (the target: none).

With ``--connections N1,N2,...`` every drill runs at each table size: N idle TCP connections
through the NAT, a churn of new ones (200/s) and UDP flows (`envrouter.lab.scale`). Printed
per size and drill: outage median/max, idle / active / new TCP connections and UDP flows
surviving, the sync lag (a new flow's creation on the holder to its presence in every peer's
kernel table) p50/p99, and each controller's conntrackd: resident memory and kernel table size
once the load is up, CPU seconds while the connections were opened and CPU share during the
drill.

--fencing both (default) runs every drill with fencing on and with it off on the same lab
(stonith-enabled toggled; the lab's fence devices stay configured) and prints the figures side
by side; the lab is left with fencing as it found it. With fencing off, a hang leaves the VIPs
on two namespaces for as long as it lasts: the summary shows that time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENVROUTER = [sys.executable, "-m", "envrouter.cli.main"]
TARGET_MS = {"hard-kill": 1500, "standby": 200, "hang": 2000, "partition": 1500,
             "upstream-link": 1500}


def machine() -> str:
    cpus = os.cpu_count()
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                         "")
    except OSError:
        pass
    load = os.getloadavg()
    return (f"{platform.node()}: {model or platform.machine()}, {cpus} CPUs, {mem} MB, kernel "
            f"{platform.release()}, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


def corosync_timers(lab) -> str:
    node = next(n.name for n in lab.plan.controllers if lab.node_running(n.name))
    vals = []
    for key in ("token", "consensus"):
        out = lab.exec_in(node, ["corosync-cmapctl", "-g", f"runtime.config.totem.{key}"],
                          check=False).stdout
        vals.append(f"{key} {out.strip().rsplit(' ', 1)[-1]} ms" if out.strip() else f"{key} ?")
    return ", ".join(vals)


def memory_all(lab) -> dict[str, dict]:
    from envrouter.lab.drill_report import RESIDENT_AFTER, memory_summary
    from envrouter.lab.node_processes import controller_processes

    # daemons restarted by the drill's restore are younger than RESIDENT_AFTER (counted as
    # passing processes): let them age past it before sampling
    time.sleep(RESIDENT_AFTER + 1)

    return {n.name: memory_summary(controller_processes(lab, n.name))
            for n in lab.plan.controllers if lab.node_running(n.name)}


class ConntrackdSampler:
    """conntrackd's RSS, CPU time and the kernel table's size on every running controller, at
    the drill's phases (DrillOptions.on_phase)."""

    def __init__(self, lab) -> None:
        self.lab = lab
        self.samples: dict[str, dict[str, dict]] = {}

    def __call__(self, phase: str) -> None:
        from envrouter.lab.node_processes import conntrackd_pids

        clk = os.sysconf("SC_CLK_TCK")
        out = {}
        for n in self.lab.plan.controllers:
            if not self.lab.node_running(n.name):
                continue
            rec: dict = {"time": time.time()}
            for pid in conntrackd_pids(self.lab, n.name)[:1]:
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    with open(f"/proc/{pid}/status") as f:
                        rss = next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS"))
                except (OSError, StopIteration, ValueError):
                    continue
                rec.update(pid=pid, cpu_s=(int(fields[11]) + int(fields[12])) / clk,
                           rss_mb=round(rss / 1024, 1))
            if phase == "loaded":
                ct = self.lab.exec_in(n.name, ["ip", "netns", "exec", "vrouter", "conntrack",
                                               "-C"], check=False).stdout.strip()
                rec["kernel_entries"] = int(ct) if ct.isdigit() else None
            out[n.name] = rec
        self.samples[phase] = out

    def figures(self) -> dict[str, dict]:
        """Per controller: RSS and kernel entries once loaded, CPU s while opening, CPU %
        from loaded to checked."""
        start, loaded, checked = (self.samples.get(k, {}) for k in ("start", "loaded",
                                                                    "checked"))
        out = {}
        for name, rec in loaded.items():
            f = {"rss_mb": rec.get("rss_mb"), "kernel_entries": rec.get("kernel_entries")}
            s0, s2 = start.get(name, {}), checked.get(name, {})
            if s0.get("pid") == rec.get("pid") and "cpu_s" in rec:
                f["cpu_s_opening"] = round(rec["cpu_s"] - s0["cpu_s"], 2)
            if s2.get("pid") == rec.get("pid") and "cpu_s" in rec:
                dt = s2["time"] - rec["time"]
                f["cpu_pct_drill"] = round(100 * (s2["cpu_s"] - rec["cpu_s"]) / dt, 1)
            out[name] = f
        return out


def key(drill: str, fencing: bool, size: int = 0) -> str:
    at = f" at {size} connections" if size else ""
    return f"{drill}{at} (fencing {'on' if fencing else 'off'})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--connections", default="",
                   help="table sizes, comma-separated (e.g. 1000,10000,100000); default: the "
                        "small traffic only")
    p.add_argument("--state-dir", default=os.environ.get("ENVROUTER_LAB_STATE_DIR"))
    p.add_argument("--keep", action="store_true", help="keep a lab this run brought up")
    p.add_argument("--bridge", choices=("linux", "ovs"), default="linux",
                   help="the controllers' bridges: Linux bridge or Open vSwitch (userspace "
                        "datapath here)")
    p.add_argument("--json", help="also write every report and figure to this file")
    p.add_argument("--fencing", choices=("on", "off", "both"), default="both",
                   help="drills with stonith-enabled true, false, or each in turn")
    p.add_argument("--drills", default="hard-kill,standby,hang",
                   help="comma-separated drills to repeat")
    p.add_argument("--plot", metavar="FILE", help="draw the outages (SVG) into FILE, the "
                   "records drawn beside it (FILE.json; bench/plot_failover.py)")
    a = p.parse_args()
    drills = [d.strip() for d in a.drills.split(",") if d.strip()]
    modes = {"on": [True], "off": [False], "both": [True, False]}[a.fencing]

    from envrouter.errors import InfraError
    from envrouter.lab import fence
    from envrouter.lab.cluster import best_view
    from envrouter.lab.drill_report import format_report, summarize
    from envrouter.lab.drills import DRILLS, DrillOptions, run_drill
    from envrouter.lab.nodes import Lab
    from envrouter.lab.settle import wait_settled
    from envrouter.lab.topology import DEFAULT_STATE_DIR

    state_dir = a.state_dir or DEFAULT_STATE_DIR
    created = None
    if not os.path.exists(os.path.join(state_dir, "state.json")):
        prefix = "erbench-"
        print(f"no lab in {state_dir}: bringing one up (prefix {prefix})", flush=True)
        up = subprocess.run([*ENVROUTER, "lab", "up", "--state-dir", state_dir, "--prefix",
                             prefix, "--bridge", a.bridge], text=True, timeout=900)
        if up.returncode != 0:
            return 1
        created = prefix
    unknown = [d for d in drills if d not in DRILLS]
    if unknown:
        p.error(f"--drills: unknown {', '.join(unknown)} (one of {', '.join(DRILLS)})")
    lab = Lab.load(state_dir)
    if lab.plan.bridge_kind != a.bridge:
        p.error(f"--bridge {a.bridge}: the lab in {state_dir} has {lab.plan.bridge_kind} bridges")
    try:
        sizes = [int(x) for x in a.connections.split(",") if x] or [0]
    except ValueError:
        p.error(f"--connections: comma-separated counts, got {a.connections!r}")
    # the small traffic alone is size 0
    not_measured: list[str] = []  # drills that raised before their fault (InfraError)
    results: dict[str, list[dict]] = {key(d, f, n): [] for f in modes for n in sizes
                                      for d in drills}
    memory: list[dict] = []
    was_fencing = bool(best_view(lab).stonith_enabled)
    try:
        print(f"machine: {machine()}", flush=True)
        print(f"bridges: {a.bridge}", flush=True)
        print(f"corosync: {corosync_timers(lab)}", flush=True)
        wait_settled(lab)
        memory.append({"when": "before the drills", "controllers": memory_all(lab)})
        for fencing in modes:
            if fencing and not (lab.state.get("fencing") or {}).get("devices"):
                print("this lab has no fence devices (`lab up --no-fencing`): skipping the "
                      "runs with fencing on", flush=True)
                continue
            fence.set_enabled(lab, fencing)
            for size in sizes:
                for i in range(a.runs):
                    for drill in drills:
                        t0 = time.monotonic()
                        sampler = ConntrackdSampler(lab)
                        try:
                            report = run_drill(lab, drill, DrillOptions(connections=size,
                                                                        on_phase=sampler),
                                               log=lambda s: print(f"  {s}", flush=True))
                        except InfraError as exc:  # e.g. the VIPs moved before the fault
                            print(f"  {drill}: not measured: {exc}", flush=True)
                            not_measured.append(f"{key(drill, fencing, size)} #{i + 1}: {exc}")
                            lab = Lab.load(state_dir)
                            wait_settled(lab)
                            continue
                        print(format_report(report), flush=True)
                        print(f"  ({time.monotonic() - t0:.0f} s with the restore, load "
                              f"average {os.getloadavg()[0]:.1f})", flush=True)
                        rec = report.to_dict()
                        rec["conntrackd"] = sampler.figures()
                        rec["loadavg"] = os.getloadavg()[0]
                        rec["bridge"] = a.bridge  # bench/plot_failover.py groups by it
                        if rec["conntrackd"]:
                            print(f"  conntrackd: {rec['conntrackd']}", flush=True)
                        results[key(drill, fencing, size)].append(rec)
                        lab = Lab.load(state_dir)  # a power-on recorded a new anchor
                        memory.append({"when": f"after {key(drill, fencing, size)} #{i + 1}",
                                       "controllers": memory_all(lab)})
    finally:
        if not created or a.keep:
            fence.set_enabled(lab, was_fencing)
        if created and not a.keep:
            subprocess.run([*ENVROUTER, "lab", "down", "--state-dir", state_dir, "--prefix",
                            created], timeout=300)

    print("\n== summary ==")
    print(f"machine: {machine()}; bridges: {a.bridge}")
    failed = bool(not_measured)
    for line in not_measured:
        print(f"NOT MEASURED: {line}")
    for name, reps in results.items():
        if not reps:
            continue
        drill = name.split(" ", 1)[0]
        gaps = [r["longest_gap_ms"] for r in reps]
        s = summarize(gaps)
        seen = summarize([r["vips_moved_after_ms"] for r in reps
                          if r["vips_moved_after_ms"] is not None])
        two = summarize([r["two_holders_ms"] for r in reps])
        surv = {k: (sum(r[f"{k}_surviving"] for r in reps), sum(r[f"{k}_total"] for r in reps))
                for k in ("tcp", "udp", "icmp")}
        bad = [f for r in reps for f in r["failures"]]
        # without fencing a hang is expected to leave two holders: a figure, not a failure
        failed |= bool(bad) and not (drill == "hang" and "fencing off" in name)
        target = TARGET_MS.get(drill)
        line = (f"{name}: {len(reps)} runs, outage median {s['median']} ms, max {s['max']} ms"
                + (f" (target <= {target} ms)" if target else "")
                + f"; VIPs first seen on the new holder median {seen['median']} ms; two "
                f"holders at once median {two['median']} ms, max {two['max']} ms; active TCP "
                f"{surv['tcp'][0]}/{surv['tcp'][1]}, UDP {surv['udp'][0]}/{surv['udp'][1]}, "
                f"ICMP {surv['icmp'][0]}/{surv['icmp'][1]}")
        loads = [r["load"] for r in reps if r.get("load")]
        if loads:
            tot = {k: sum(ld[k] for ld in loads) for k in (
                "idle_ok", "idle_total", "new_ok", "new_total", "udp_ok", "udp_total")}
            p50 = [ld["sync_lag_ms"]["p50"] for ld in loads if ld["sync_lag_ms"]["p50"]]
            p99 = [ld["sync_lag_ms"]["p99"] for ld in loads if ld["sync_lag_ms"]["p99"]]
            line += (f"; idle TCP {tot['idle_ok']}/{tot['idle_total']}, new TCP "
                     f"{tot['new_ok']}/{tot['new_total']}, load UDP {tot['udp_ok']}/"
                     f"{tot['udp_total']}; sync lag p50 "
                     f"{summarize(p50)['median'] if p50 else '-'} ms, p99 "
                     f"{max(p99) if p99 else '-'} ms")
            ctd = [c for r in reps for c in (r.get("conntrackd") or {}).values()]
            rss = [c["rss_mb"] for c in ctd if c.get("rss_mb") is not None]
            cpu_open = [c["cpu_s_opening"] for c in ctd if "cpu_s_opening" in c]
            cpu = [c["cpu_pct_drill"] for c in ctd if "cpu_pct_drill" in c]
            ents = [c["kernel_entries"] for c in ctd if c.get("kernel_entries") is not None]
            line += (f"; conntrackd per controller: RSS max {max(rss) if rss else '-'} MB, "
                     f"CPU {max(cpu_open) if cpu_open else '-'} s to sync the opening, "
                     f"{max(cpu) if cpu else '-'} % during the drill; kernel table "
                     f"{min(ents) if ents else '-'}..{max(ents) if ents else '-'} entries")
        six = [r["longest_gap6_ms"] for r in reps if r.get("longest_gap6_ms") is not None]
        if six:  # a dual-stack lab: the IPv6 flows by themselves
            s6 = summarize(six)
            surv6 = {k: (sum(r[f"{k}6_surviving"] for r in reps),
                         sum(r[f"{k}6_total"] for r in reps)) for k in ("tcp", "udp", "icmp")}
            line += (f"; IPv6 alone: outage median {s6['median']} ms, max {s6['max']} ms, "
                     f"TCP {surv6['tcp'][0]}/{surv6['tcp'][1]}, UDP {surv6['udp'][0]}/"
                     f"{surv6['udp'][1]}, ICMP {surv6['icmp'][0]}/{surv6['icmp'][1]}")
        print(line + (f"; FAILURES: {bad[:10]}" if bad else ""))
    resident_python = sorted({p for m in memory for c in m["controllers"].values()
                              for p in c["resident_python"]})
    last = memory[-1]["controllers"] if memory else {}
    for name, m in sorted(last.items()):
        print(f"memory on {name} ({memory[-1]['when']}): project processes {m['project_mb']} MB "
              f"{m['by_name']}, cluster stack {m['cluster_mb']} MB")
    proj = [c["project_mb"] for m in memory for c in m["controllers"].values()]
    clus = [c["cluster_mb"] for m in memory for c in m["controllers"].values()]
    print(f"memory per controller over {len(memory)} samples: project {summarize(proj)} MB, "
          f"cluster stack {summarize(clus)} MB")
    print("resident Python processes on the controllers: "
          + ("none" if not resident_python else "; ".join(resident_python)))
    if a.plot:
        from plot_failover import plot_results

        # by drill: each report says whether fencing was on (the picture groups by it)
        by_drill = {d: [r for name, reps in results.items() if name.split(" ", 1)[0] == d
                        for r in reps] for d in drills}
        plot_results(by_drill, a.plot, TARGET_MS, f"bench/failover.py, {machine()}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": machine(), "results": results, "memory": memory}, f, indent=2)
    return 1 if failed or resident_python else 0


if __name__ == "__main__":
    sys.exit(main())
