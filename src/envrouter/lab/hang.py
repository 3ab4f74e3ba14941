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

from envrouter.lab.nodes import Lab, pid_namespace_members, pid_ns_inode, pid_ns_pids, stat_field

DEFAULT_SECONDS = 6.0


START_TIME = 19  # the field of /proc/PID/stat: with the PID, it names one process


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
        ns = pid_ns_inode(self.lab.anchor_pid(self.node))
        seen: set[int] = set()
        # again until no new process shows up: one may fork between the listing and its stop
        for _ in range(5):
            fresh = [p for p in pid_ns_pids(ns) if p not in seen]
            if not fresh:
                break
            for pid in fresh:
                start = stat_field(pid, START_TIME)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
                    if start is not None:
                        self.stopped.append((pid, start))
                seen.add(pid)
        _, parents = pid_namespace_members(self.lab.anchor_pid(self.node))
        self.parents = [(p, st) for p in parents if (st := stat_field(p, START_TIME)) is not None]
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
                if stat_field(pid, START_TIME) == start:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGCONT)
                        done += 1
            self.stopped, self.parents = [], []
            return done
