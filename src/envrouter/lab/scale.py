"""Connection load for the drills at scale (effects): start the load processes
(`envrouter.lab.load`) in the lab's nodes, wait for the idle connections, start the churn and
the sync-lag watchers, run the check after the fault, collect the records.

Everything is bounded: the counts by `envrouter.lab.load_report.plan_load`, every wait by a
timeout, every process stops on a file in the drill's directory (and dies with its node).
Traffic stays inside the lab: compute nodes -> the vrouter's NAT -> the upstream node.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from typing import Any

from envrouter.errors import InfraError
from envrouter.lab.load_report import (
    CHURN_PORT,
    UDP_PORT,
    LoadPlan,
    LoadResult,
    load_result,
    parse_events,
    plan_load,
    sync_lags,
)
from envrouter.lab.nodes import Lab
from envrouter.lab.waiting import wait_for
from envrouter.waiting import end_process

# the compute nodes open many connections to a few server ports: a wide ephemeral range (a
# sysctl of the lab's compute namespaces only)
PORT_RANGE = "1024 65000"


def _py(*args: str) -> list[str]:
    return [sys.executable, "-m", "envrouter.lab.load", *args]


def _touch(path: str) -> None:
    with contextlib.suppress(OSError), open(path, "w") as f:
        f.write("1\n")


def _read_json(path: str) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class ConnectionLoad:
    """Idle connections, churn and UDP flows for one drill, plus sync-lag watchers on the
    controllers."""

    def __init__(self, lab: Lab, directory: str, connections: int, *,
                 churn_rate: float | None = None, udp_per_node: int | None = None,
                 log: Any = lambda s: None) -> None:
        self.lab = lab
        self.dir = directory
        computes = [n.name for n in lab.plan.computes if lab.node_running(n.name)]
        kw: dict[str, Any] = {}
        if churn_rate is not None:
            kw["churn_rate"] = churn_rate
        if udp_per_node is not None:
            kw["udp_per_node"] = udp_per_node
        self.plan: LoadPlan = plan_load(connections, computes, **kw)
        self.procs: list[subprocess.Popen] = []
        self.watchers: list[str] = []
        self.log = log
        self.t_check: float | None = None

    # --- start ---------------------------------------------------------------------------
    def start(self, holder: str) -> float:
        """Servers, then clients; returns once every idle connection is established (the
        seconds it took)."""
        os.makedirs(self.dir, exist_ok=True)
        server = self.lab.plan.upstream_http
        names = []
        for port in self.plan.server_ports:
            names.append(f"srv{port}")
            self._spawn("up", f"load-srv{port}", "server", "--name", f"srv{port}", "--bind",
                        server, "--port", str(port))
        names.append("srvchurn")
        self._spawn("up", "load-srvchurn", "server", "--name", "srvchurn", "--bind", server,
                    "--port", str(CHURN_PORT), "--udp-port", str(UDP_PORT))
        wait_for("load servers ready", lambda: all(
            os.path.exists(f"{self.dir}/{n}.ready") for n in names), timeout=30, interval=0.2)
        for node in {c.node for c in self.plan.clients}:
            self.lab.exec_in(node, ["sysctl", "-q", "-w",
                                    f"net.ipv4.ip_local_port_range={PORT_RANGE}"])
        # the watchers first: they must see the churn's first flows on every controller
        for ctl in self.lab.plan.controllers:
            if self.lab.node_running(ctl.name):
                self._spawn(ctl.name, f"load-watch-{ctl.name}", "watch", "--name",
                            f"watch-{ctl.name}", "--port", str(CHURN_PORT))
                self.watchers.append(ctl.name)
        wait_for("sync-lag watchers running", lambda: all(
            os.path.exists(f"{self.dir}/watch-{n}.watching") for n in self.watchers),
            timeout=30, interval=0.2)
        ports = ",".join(str(p) for p in self.plan.server_ports)
        t0 = time.monotonic()
        for c in self.plan.clients:
            argv = ["client", "--name", c.name, "--server", server]
            if c.count:
                argv += ["--ports", ports, "--count", str(c.count), "--open-rate",
                         str(c.open_rate)]
            if c.churn_rate:
                argv += ["--churn-port", str(CHURN_PORT), "--churn-rate", str(c.churn_rate),
                         "--churn-max", str(c.churn_max)]
            if c.udp:
                argv += ["--udp", str(c.udp), "--udp-port", str(UDP_PORT)]
            self._spawn(c.node, f"load-{c.name}", *argv, "--dir", self.dir)
        total = self.plan.connections
        bound = 60 + total / 500

        def established() -> bool:
            states = [_read_json(f"{self.dir}/{c.name}.state") for c in self.plan.clients]
            if any(s is None for s in states):
                return False
            failed = sum(s["connect_failures"] for s in states)
            if failed:
                raise InfraError(f"{failed} idle connections could not be opened (see "
                                 f"{self.dir}/*.state)")
            return sum(s["idle_established"] for s in states) >= total

        wait_for(f"{total} idle connections established", established, timeout=bound,
                 interval=0.5)
        took = time.monotonic() - t0
        self.log(f"{total} idle connections established in {took:.1f} s (VIPs on {holder})")
        return took

    def _spawn(self, node: str, name: str, *argv: str) -> None:
        args = list(argv)
        if "--dir" not in args:
            args += ["--dir", self.dir]
        self.procs.append(self.lab.spawn_in(node, name, _py(*args)))

    def start_churn(self) -> None:
        _touch(f"{self.dir}/churn")

    # --- after the fault -----------------------------------------------------------------
    def check(self, t_fault: float, holder: str, timeout: float = 120) -> LoadResult:
        """The check round trip on every connection, then the records; sync lags from the
        watchers (flows created before the fault, holder -> every running peer)."""
        self.t_check = time.time()
        _touch(f"{self.dir}/check")
        files = [f"{self.dir}/{c.name}.json" for c in self.plan.clients]
        try:
            wait_for("load check records", lambda: all(os.path.exists(p) for p in files),
                     timeout=timeout, interval=0.5)
        finally:
            self.stop()
        clients = {c.name: _read_json(f"{self.dir}/{c.name}.json") or
                   {"idle": {"target": c.count, "total": 0, "established": 0, "ok": 0,
                             "reasons": {"no record": c.count}}, "new": [], "udp": []}
                   for c in self.plan.clients}
        lags, missing = self.lags(t_fault, holder)
        res = load_result(clients, t_fault, self.t_check, lags)
        if missing and lags:
            res.reasons["sync: flows created before the fault never seen on a peer"] = missing
        return res

    def lags(self, t_fault: float, holder: str) -> tuple[list[float], int]:
        def events(node: str) -> dict:
            try:
                with open(f"{self.dir}/watch-{node}.events", errors="replace") as f:
                    return parse_events(f.read())
            except OSError:
                return {}

        if holder not in self.watchers:
            return [], 0
        peers = [events(n) for n in self.watchers if n != holder]
        # a flow created in the last 0.5 s before the fault may legitimately not have reached
        # a peer that died or restarted: only older flows count
        return sync_lags(events(holder), peers, t_fault - 0.5)

    def stop(self) -> None:
        _touch(f"{self.dir}/check")
        _touch(f"{self.dir}/stop-load")
        deadline = time.monotonic() + 30
        for proc in self.procs:
            end_process(proc, max(0.1, deadline - time.monotonic()))
        self.procs = []
