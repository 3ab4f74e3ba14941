"""Benchmark: failover of the vrouter's VIPs in the lab, repeated.

Run as root:  .venv/bin/python bench/failover.py [--runs 3] [--fencing on|off|both]
                 [--drills hard-kill,standby,hang] [--state-dir DIR] [--json FILE]

Uses the lab in --state-dir if one is up there (ENVROUTER_LAB_STATE_DIR, default the lab's
default), otherwise brings one up (`envrouter lab up`, its own prefix) and removes it at the end
(--keep leaves it). Then, --runs times each: the hard-kill drill (power-off of the VIP holder)
and the standby drill (a planned switchover), each with TCP, UDP and ICMP traffic from the
compute nodes through the NAT (`envrouter.lab.drills`). Prints per drill the median and max
outage (the longest gap between ping replies, one every 50 ms) and the survival of the TCP
connections, UDP flows and ICMP flows; and, on every controller between drills, the resident
memory of the project's processes and of the cluster stack, and whether any Python process is
resident there (the target: none).

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
    from envrouter.lab.drills import controller_processes

    # daemons restarted by the drill's restore are younger than RESIDENT_AFTER (counted as
    # passing processes): let them age past it before sampling
    time.sleep(RESIDENT_AFTER + 1)

    return {n.name: memory_summary(controller_processes(lab, n.name))
            for n in lab.plan.controllers if lab.node_running(n.name)}


def key(drill: str, fencing: bool) -> str:
    return f"{drill} (fencing {'on' if fencing else 'off'})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--state-dir", default=os.environ.get("ENVROUTER_LAB_STATE_DIR"))
    p.add_argument("--keep", action="store_true", help="keep a lab this run brought up")
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

    from envrouter.lab import fence
    from envrouter.lab.cluster import best_view
    from envrouter.lab.drill_report import format_report, summarize
    from envrouter.lab.drills import DRILLS, DrillOptions, run_drill, wait_settled
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
    unknown = [d for d in drills if d not in DRILLS]
    if unknown:
        p.error(f"--drills: unknown {', '.join(unknown)} (one of {', '.join(DRILLS)})")
    lab = Lab.load(state_dir)
    results: dict[str, list[dict]] = {key(d, f): [] for f in modes for d in drills}
    memory: list[dict] = []
    was_fencing = bool(best_view(lab).stonith_enabled)
    try:
        print(f"machine: {machine()}", flush=True)
        print(f"corosync: {corosync_timers(lab)}", flush=True)
        wait_settled(lab)
        memory.append({"when": "before the drills", "controllers": memory_all(lab)})
        for fencing in modes:
            if fencing and not (lab.state.get("fencing") or {}).get("devices"):
                print("this lab has no fence devices (`lab up --no-fencing`): skipping the "
                      "runs with fencing on", flush=True)
                continue
            fence.set_enabled(lab, fencing)
            for i in range(a.runs):
                for drill in drills:
                    t0 = time.monotonic()
                    report = run_drill(lab, drill, DrillOptions(),
                                       log=lambda s: print(f"  {s}", flush=True))
                    print(format_report(report), flush=True)
                    print(f"  ({time.monotonic() - t0:.0f} s with the restore)", flush=True)
                    results[key(drill, fencing)].append(report.to_dict())
                    lab = Lab.load(state_dir)  # a power-on recorded a new anchor
                    memory.append({"when": f"after {key(drill, fencing)} #{i + 1}",
                                   "controllers": memory_all(lab)})
    finally:
        if not created or a.keep:
            fence.set_enabled(lab, was_fencing)
        if created and not a.keep:
            subprocess.run([*ENVROUTER, "lab", "down", "--state-dir", state_dir, "--prefix",
                            created], timeout=300)

    print("\n== summary ==")
    print(f"machine: {machine()}")
    failed = False
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
        print(f"{name}: {len(reps)} runs, outage median {s['median']} ms, max {s['max']} ms"
              + (f" (target <= {target} ms)" if target else "")
              + f"; VIPs first seen on the new holder median {seen['median']} ms; two holders "
              f"at once median {two['median']} ms, max {two['max']} ms; surviving TCP "
              f"{surv['tcp'][0]}/{surv['tcp'][1]}, UDP {surv['udp'][0]}/{surv['udp'][1]}, ICMP "
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
