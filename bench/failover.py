"""Benchmark: failover of the vrouter's VIPs in the lab, repeated.

Run as root:  .venv/bin/python bench/failover.py [--runs 3] [--state-dir DIR] [--json FILE]

Uses the lab in --state-dir if one is up there (ENVROUTER_LAB_STATE_DIR, default the lab's
default), otherwise brings one up (`envrouter lab up`, its own prefix) and removes it at the end
(--keep leaves it). Then, --runs times each: the hard-kill drill (power-off of the VIP holder)
and the standby drill (a planned switchover), each with TCP, UDP and ICMP traffic from the
compute nodes through the NAT (`envrouter.lab.drills`). Prints per drill the median and max
outage (the longest gap between ping replies, one every 50 ms) and the survival of the TCP
connections, UDP flows and ICMP flows; and, on every controller between drills, the resident
memory of the project's processes and of the cluster stack, and whether any Python process is
resident there (the target: none).
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
TARGET_MS = {"hard-kill": 1500, "standby": 200}


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
    from envrouter.lab.drills import controller_processes

    # daemons restarted by the drill's restore are younger than RESIDENT_AFTER (counted as
    # passing processes): let them age past it before sampling
    time.sleep(RESIDENT_AFTER + 1)

    return {n.name: memory_summary(controller_processes(lab, n.name))
            for n in lab.plan.controllers if lab.node_running(n.name)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--state-dir", default=os.environ.get("ENVROUTER_LAB_STATE_DIR"))
    p.add_argument("--keep", action="store_true", help="keep a lab this run brought up")
    p.add_argument("--json", help="also write every report and figure to this file")
    p.add_argument("--plot", metavar="FILE", help="draw the outages (SVG) into FILE, the "
                   "records drawn beside it (FILE.json; bench/plot_failover.py)")
    a = p.parse_args()

    from envrouter.lab.drill_report import format_report, summarize
    from envrouter.lab.drills import DrillOptions, run_drill, wait_settled
    from envrouter.lab.nodes import Lab
    from envrouter.lab.topology import DEFAULT_STATE_DIR

    state_dir = a.state_dir or DEFAULT_STATE_DIR
    created = None
    if not os.path.exists(os.path.join(state_dir, "state.json")):
        prefix = "erbench-"
        print(f"no lab in {state_dir}: bringing one up (prefix {prefix})", flush=True)
        up = subprocess.run([*ENVROUTER, "lab", "up", "--state-dir", state_dir, "--prefix",
                             prefix], text=True, timeout=900)
        if up.returncode != 0:
            return 1
        created = prefix
    lab = Lab.load(state_dir)
    results: dict[str, list[dict]] = {"hard-kill": [], "standby": []}
    memory: list[dict] = []
    try:
        print(f"machine: {machine()}", flush=True)
        print(f"corosync: {corosync_timers(lab)}", flush=True)
        wait_settled(lab)
        memory.append({"when": "before the drills", "controllers": memory_all(lab)})
        for i in range(a.runs):
            for drill in ("hard-kill", "standby"):
                t0 = time.monotonic()
                report = run_drill(lab, drill, DrillOptions(),
                                   log=lambda s: print(f"  {s}", flush=True))
                print(format_report(report), flush=True)
                print(f"  ({time.monotonic() - t0:.0f} s with the restore)", flush=True)
                results[drill].append(report.to_dict())
                lab = Lab.load(state_dir)  # a power-on recorded a new anchor
                memory.append({"when": f"after {drill} #{i + 1}",
                               "controllers": memory_all(lab)})
    finally:
        if created and not a.keep:
            subprocess.run([*ENVROUTER, "lab", "down", "--state-dir", state_dir, "--prefix",
                            created], timeout=300)

    print("\n== summary ==")
    print(f"machine: {machine()}")
    failed = False
    for drill, reps in results.items():
        gaps = [r["longest_gap_ms"] for r in reps]
        s = summarize(gaps)
        surv = {k: (sum(r[f"{k}_surviving"] for r in reps), sum(r[f"{k}_total"] for r in reps))
                for k in ("tcp", "udp", "icmp")}
        bad = [f for r in reps for f in r["failures"]]
        failed |= bool(bad)
        print(f"{drill}: {len(reps)} runs, outage median {s['median']} ms, max {s['max']} ms "
              f"(target <= {TARGET_MS[drill]} ms); surviving TCP {surv['tcp'][0]}/"
              f"{surv['tcp'][1]}, UDP {surv['udp'][0]}/{surv['udp'][1]}, ICMP "
              f"{surv['icmp'][0]}/{surv['icmp'][1]}"
              + (f"; FAILURES: {bad}" if bad else ""))
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

        plot_results(results, a.plot, TARGET_MS, f"bench/failover.py, {machine()}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": machine(), "results": results, "memory": memory}, f, indent=2)
    return 1 if failed or resident_python else 0


if __name__ == "__main__":
    sys.exit(main())
