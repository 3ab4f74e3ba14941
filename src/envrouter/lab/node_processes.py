"""The processes of a lab node (effects: reads /proc): every process in the node's PID
namespace, by name for the faults (conntrackd's pids) and with its RSS and age for the memory
accounting of the bench.
"""

from __future__ import annotations

import os

from envrouter.lab.drill_report import Proc
from envrouter.lab.nodes import Lab


def _pid_ns(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return None


def _pids_in_ns_of(pid: int) -> list[str]:
    """The /proc entries (machine PIDs) in the PID namespace of `pid`."""
    ns = _pid_ns(pid)
    return [e for e in os.listdir("/proc") if e.isdigit() and _pid_ns(int(e)) == ns]


def node_processes(lab: Lab, node: str) -> list[tuple[int, str]]:
    """(pid, comm) of every process in the node's PID namespace (machine PIDs)."""
    out = []
    for entry in _pids_in_ns_of(lab.anchor_pid(node)):
        try:
            with open(f"/proc/{entry}/comm") as f:
                out.append((int(entry), f.read().strip()))
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
    for entry in _pids_in_ns_of(lab.anchor_pid(node)):
        try:
            with open(f"/proc/{entry}/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
            with open(f"/proc/{entry}/stat") as f:
                start = int(f.read().rsplit(")", 1)[1].split()[19])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError, IndexError):
            continue
        rss = int(status.get("VmRSS", "0 kB").split()[0]) if "VmRSS" in status else 0
        ns_pid = int(status.get("NSpid", entry).split()[-1])
        out.append(Proc(int(entry), ns_pid, status.get("Name", "").strip(), cmd, rss,
                        uptime - start / clk, int(status.get("PPid", "0").strip() or 0)))
    return out
