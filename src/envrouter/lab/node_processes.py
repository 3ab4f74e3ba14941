"""The processes of a lab node (effects: reads /proc): every process in the node's PID
namespace, by name for the faults (conntrackd's pids) and with its RSS and age for the memory
accounting of the bench.
"""

from __future__ import annotations

import os

from envrouter.lab.drill_report import Proc
from envrouter.lab.hang import START_TIME
from envrouter.lab.nodes import Lab, pid_ns_inode, pid_ns_pids, stat_field


def _node_pids(lab: Lab, node: str) -> list[int]:
    return pid_ns_pids(pid_ns_inode(lab.anchor_pid(node)))


def node_processes(lab: Lab, node: str) -> list[tuple[int, str]]:
    """(pid, comm) of every process in the node's PID namespace (machine PIDs)."""
    out = []
    for pid in _node_pids(lab, node):
        try:
            with open(f"/proc/{pid}/comm") as f:
                out.append((pid, f.read().strip()))
        except OSError:
            continue
    return out


def conntrackd_pids(lab: Lab, node: str) -> list[int]:
    return [pid for pid, comm in node_processes(lab, node) if comm == "conntrackd"]


def controller_processes(lab: Lab, node: str) -> list[Proc]:
    """Every process of the node (its PID namespace) with its RSS and age."""
    clk = os.sysconf("SC_CLK_TCK")
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    out = []
    for pid in _node_pids(lab, node):
        try:
            with open(f"/proc/{pid}/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError):
            continue
        if (start := stat_field(pid, START_TIME)) is None:
            continue
        rss = int(status.get("VmRSS", "0 kB").split()[0]) if "VmRSS" in status else 0
        ns_pid = int(status.get("NSpid", str(pid)).split()[-1])
        out.append(Proc(pid, ns_pid, status.get("Name", "").strip(), cmd, rss,
                        uptime - start / clk, int(status.get("PPid", "0").strip() or 0)))
    return out
