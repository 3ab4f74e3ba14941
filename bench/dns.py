#!/usr/bin/env python3
"""DNS benchmark: cached queries through the management VIP from a compute node (prints figures;
not a test).

The lab: an existing one (``--state-dir``, default ``$ENVROUTER_LAB_STATE_DIR`` or
/var/lib/envrouter-lab) if it is up, else one brought up here with ``envrouter lab up`` (a
random ``erb<hex>-`` prefix, a temporary state dir) and taken down at the end, also on failure.

The load tool is dnsperf (Debian package, C) run inside the compute node (``Lab.exec_in``), so
the traffic stays inside the lab: compute node -> management VIP -> the holder's dnsmasq. The
query file has the lab zone's names (A records), all answered once before the runs, so every
measured query is a cache hit. Three bounded runs (time limit each, ``-t 2`` query timeout):

1. throughput: ``-l SECONDS -c 4 -q 100`` (4 clients, up to 100 queries in flight) -> queries
   per second, lost queries, average latency (dnsperf's own summary);
2. latency at a paced rate: ``-Q RATE -v`` (one line per answer with its latency) -> p50, p99;
3. latency at saturation: as 1 with ``-v`` for a shorter time -> p50, p99 (queueing included).

Client and server share the machine's CPUs (and, on a shared machine, with everything else
running: the load average is printed with the figures).

Usage (root): .venv/bin/python bench/dns.py [--state-dir DIR] [--client cmp1] [--seconds 10]
              [--rate 2000]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import cpu_model

from envrouter.lab.topology import DEFAULT_STATE_DIR

ENVROUTER = [sys.executable, "-m", "envrouter.cli.main"]
STATE_ENV = "ENVROUTER_LAB_STATE_DIR"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def existing_lab(state_dir: str) -> Any | None:
    from envrouter.errors import InfraError
    from envrouter.lab.nodes import Lab

    try:
        lab = Lab.load(state_dir)
    except (InfraError, ValueError, KeyError, OSError):
        return None
    if lab.state.get("phase") != "up" or not all(
            lab.node_running(n.name) for n in lab.plan.deployed_nodes):
        return None
    return lab


def summary(text: str) -> dict[str, float]:
    out = {}
    for key, rx in (("sent", r"Queries sent:\s+(\d+)"),
                    ("completed", r"Queries completed:\s+(\d+)"),
                    ("lost", r"Queries lost:\s+(\d+)"),
                    ("qps", r"Queries per second:\s+([0-9.]+)"),
                    ("avg", r"Average Latency \(s\):\s+([0-9.]+)"),
                    ("run_time", r"Run time \(s\):\s+([0-9.]+)")):
        m = re.search(rx, text)
        if m:
            out[key] = float(m.group(1))
    return out


def latencies(text: str) -> list[float]:
    """Per-answer latencies of dnsperf -v ("> NOERROR name A 0.000123")."""
    out = []
    for line in text.splitlines():
        if line.startswith("> NOERROR "):
            out.append(float(line.rsplit(None, 1)[1]))
    return out


def dnsperf(lab: Any, client: str, argv: list[str], timeout: float) -> str:
    res = lab.exec_in(client, ["dnsperf", *argv], check=False, timeout=timeout)
    if res.returncode != 0:
        raise SystemExit(f"dnsperf failed ({res.returncode}): {res.stderr.strip()[-800:]}")
    return res.stdout + res.stderr


def run(lab: Any, client: str, seconds: int, rate: int) -> None:
    from envrouter.lab.status import vip_holders

    plan = lab.plan
    vip = (lab.state.get("deployment") or {}).get("vips", {}).get(
        "vrouter", plan.vip_management)
    names = [f"{n}.{plan.zone}" for n, _ in plan.dns_records]
    # warm the cache: every name answered once (and the answers checked)
    for name in names:
        res = lab.exec_in(client, ["dig", "+short", "+time=2", "+tries=3", f"@{vip}", name],
                          check=False)
        if not res.stdout.split():
            raise SystemExit(f"{name} does not resolve through {vip}: {res.stdout}{res.stderr}")
    work = tempfile.mkdtemp(prefix="envrouter-bench-dns-")
    try:
        qfile = os.path.join(work, "queries.txt")  # the node sees the machine's /tmp
        Path(qfile).write_text("".join(f"{n} A\n" for n in names))
        base = ["-s", vip, "-d", qfile, "-t", "2"]
        thr = summary(dnsperf(lab, client, [*base, "-l", str(seconds), "-c", "4", "-q", "100"],
                              timeout=seconds + 60))
        paced_text = dnsperf(lab, client, [*base, "-l", str(max(seconds // 2, 2)),
                                           "-Q", str(rate), "-v"], timeout=seconds + 60)
        paced, paced_lat = summary(paced_text), latencies(paced_text)
        sat_text = dnsperf(lab, client, [*base, "-l", str(max(seconds // 2, 2)), "-c", "4",
                                         "-q", "100", "-v"], timeout=seconds + 60)
        sat, sat_lat = summary(sat_text), latencies(sat_text)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not paced_lat or not sat_lat or not thr.get("qps"):
        raise SystemExit("dnsperf reported no answers")
    holder = ",".join(vip_holders(lab, vip)) or "nobody"
    vres = subprocess.run(["dnsperf", "-h"], capture_output=True, text=True)
    version = vres.stdout + vres.stderr
    m = re.search(r"Version (\S+)", version)
    load = os.getloadavg()

    def ms(v: float) -> str:
        return f"{v * 1000:.3f} ms"

    print(f"machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), "
          f"{cpu_model()}, kernel {platform.release()}, load average "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (shared machine)")
    print(f"tool: dnsperf {m.group(1) if m else '?'} in {client}, UDP, {len(names)} names "
          f"(all cached), server {vip} (dnsmasq in the vrouter namespace of {holder})")
    print(f"1. throughput ({seconds} s, 4 clients, 100 in flight): "
          f"{thr['qps']:.0f} queries/s, {thr.get('completed', 0):.0f} answered, "
          f"{thr.get('lost', 0):.0f} lost, average latency {ms(thr.get('avg', 0))}")
    print(f"2. latency at {rate} queries/s ({len(paced_lat)} answers, "
          f"{paced.get('lost', 0):.0f} lost): p50 {ms(percentile(paced_lat, 50))}, "
          f"p99 {ms(percentile(paced_lat, 99))}, max {ms(max(paced_lat))}, "
          f"mean {ms(statistics.fmean(paced_lat))}")
    print(f"3. latency at saturation ({sat.get('qps', 0):.0f} queries/s with -v, "
          f"{len(sat_lat)} answers, {sat.get('lost', 0):.0f} lost): "
          f"p50 {ms(percentile(sat_lat, 50))}, p99 {ms(percentile(sat_lat, 99))}, "
          f"max {ms(max(sat_lat))}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state-dir", default=os.environ.get(STATE_ENV, DEFAULT_STATE_DIR))
    ap.add_argument("--client", default="cmp1")
    ap.add_argument("--seconds", type=int, default=10, help="throughput run time limit (1..60)")
    ap.add_argument("--rate", type=int, default=2000, help="paced run, queries/s (1..50000)")
    args = ap.parse_args()
    if not 1 <= args.seconds <= 60 or not 1 <= args.rate <= 50000:
        ap.error("--seconds 1..60, --rate 1..50000")
    if os.geteuid() != 0:
        print("bench/dns.py needs root (it enters the lab's namespaces)", file=sys.stderr)
        return 2
    lab = existing_lab(args.state_dir)
    own: tuple[str, str] | None = None
    if lab is None:
        from envrouter.lab.nodes import Lab

        prefix = f"erb{secrets.token_hex(2)}-"
        state_dir = tempfile.mkdtemp(prefix="envrouter-lab-bench-")
        os.rmdir(state_dir)
        own = (state_dir, prefix)
        print(f"no lab up in {args.state_dir}: bringing one up ({prefix}, {state_dir}) ...",
              flush=True)
    try:
        if own is not None:
            up = subprocess.run([*ENVROUTER, "lab", "up", "--state-dir", own[0], "--prefix",
                                 own[1]], capture_output=True, text=True, timeout=900)
            if up.returncode != 0:
                print(up.stdout[-3000:], up.stderr[-3000:], file=sys.stderr)
                return 1
            lab = Lab.load(own[0])
        else:
            print(f"using the lab in {args.state_dir}")
        run(lab, args.client, args.seconds, args.rate)
    finally:
        if own is not None:
            down = subprocess.run([*ENVROUTER, "lab", "down", "--state-dir", own[0],
                                   "--prefix", own[1]], capture_output=True, text=True,
                                  timeout=300)
            print(f"lab down: exit {down.returncode}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
