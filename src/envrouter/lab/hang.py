"""A hung controller (effects): every process of a lab node stopped with SIGSTOP for a while,
then continued with SIGCONT — a machine that hangs rather than crashes. Its links stay up and
its kernel goes on forwarding, answering ARP and holding its addresses (the VIPs): only its
processes (corosync, Pacemaker, conntrackd ...) stop.

Processes are identified by PID and start time, so a SIGCONT never reaches a process that was
not stopped here (after a fencing, the node's processes are new ones).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

from envrouter.lab.nodes import Lab, pid_namespace_members

DEFAULT_SECONDS = 6.0


def _pid_ns(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return None


def _start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _node_pids(ns: int | None) -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and _pid_ns(int(e)) == ns]


class Hang:
    """SIGSTOP every process of `node` now; SIGCONT them after `seconds` (or at `resume`)."""

    def __init__(self, lab: Lab, node: str, seconds: float = DEFAULT_SECONDS) -> None:
        self.lab = lab
        self.node = node
        self.seconds = seconds
        self.stopped: list[tuple[int, int]] = []  # (pid, start time)
        # the nsenter processes outside the node that started its daemons: they stop
        # themselves when their child stops (job control) and must be continued too
        self.parents: list[tuple[int, int]] = []
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def inject(self) -> None:
        ns = _pid_ns(self.lab.anchor_pid(self.node))
        seen: set[int] = set()
        # again until no new process shows up: one may fork between the listing and its stop
        for _ in range(5):
            fresh = [p for p in _node_pids(ns) if p not in seen]
            if not fresh:
                break
            for pid in fresh:
                start = _start_time(pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
                    if start is not None:
                        self.stopped.append((pid, start))
                seen.add(pid)
        _, parents = pid_namespace_members(self.lab.anchor_pid(self.node))
        self.parents = [(p, st) for p in parents if (st := _start_time(p)) is not None]
        self._timer = threading.Timer(self.seconds, self.resume)
        self._timer.daemon = True
        self._timer.start()

    def resume(self) -> int:
        """SIGCONT what was stopped and still exists (a fenced node's processes are gone).
        Returns how many were continued."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            done = 0
            for pid, start in self.stopped + self.parents:
                if _start_time(pid) == start:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGCONT)
                        done += 1
            self.stopped, self.parents = [], []
            return done
