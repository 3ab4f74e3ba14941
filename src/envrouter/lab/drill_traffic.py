"""The drills' traffic (effects): the stream/echo server (`envrouter.lab.traffic`) in the
upstream node and one client per running compute node, started and stopped through their
anchors; every process stops on a file in the drill's directory.

In a dual-stack lab the same again over IPv6, beside it: a second server on the upstream's IPv6
address and a second client per compute node (ping, TCP and UDP through the IPv6 VIPs), in the
drill's `ipv6/` subdirectory, their flows named `<node>-v6-...` (`IPV6_SUFFIX`). The records
come back merged: every drill judges the IPv6 flows like the IPv4 ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from typing import Any

from envrouter.errors import InfraError
from envrouter.lab.drill_report import IPV6_SUFFIX
from envrouter.lab.nodes import Lab
from envrouter.lab.waiting import wait_for
from envrouter.waiting import end_process

TCP_PORT = 5001
UDP_PORT = 5002


def touch(path: str) -> None:
    """A stop file for the lab's processes (best effort: its directory may be gone)."""
    with contextlib.suppress(OSError), open(path, "w") as f:
        f.write("stop\n")


class Traffic:
    """The traffic server in `up` and one client per compute node, for one drill."""

    def __init__(self, lab: Lab, directory: str, tcp_per_node: int, udp_per_node: int) -> None:
        self.lab = lab
        self.dir = directory
        self.tcp_per_node = tcp_per_node
        self.udp_per_node = udp_per_node
        self.clients = [n.name for n in lab.plan.computes if lab.node_running(n.name)]
        self.procs: list[subprocess.Popen] = []
        # (directory, server address, client name suffix) of each family's instance
        self.families = [(directory, lab.plan.upstream_http, "")]
        if lab.plan.upstream_http6:
            self.families.append((os.path.join(directory, "ipv6"), lab.plan.upstream_http6,
                                  IPV6_SUFFIX))

    def _py(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "envrouter.lab.traffic", *args]

    def start(self) -> None:
        if not self.clients:
            raise InfraError("the drills need at least one running compute node")
        for directory, server, suffix in self.families:
            os.makedirs(directory, exist_ok=True)
            ports = ["--tcp-port", str(TCP_PORT), "--udp-port", str(UDP_PORT), "--dir", directory]
            proc = self.lab.spawn_in("up", f"drill-traffic-server{suffix}",
                                     self._py("server", "--bind", server, *ports))
            self.procs.append(proc)
            wait_for(f"drill traffic server {server}",
                     lambda d=directory: os.path.exists(f"{d}/server.ready"), timeout=20,
                     proc=proc)
        for directory, server, suffix in self.families:
            ports = ["--tcp-port", str(TCP_PORT), "--udp-port", str(UDP_PORT), "--dir", directory]
            for name in self.clients:
                self.procs.append(self.lab.spawn_in(name, f"drill-traffic-client{suffix}", self._py(
                    "client", "--name", name + suffix, "--server", server, "--ping", server,
                    "--tcp", str(self.tcp_per_node), "--udp", str(self.udp_per_node),
                    *ports)))

    def progress(self) -> dict[str, Any]:
        out: dict[str, Any] = {"last_rx": {}, "errors": {}}
        for directory, _, suffix in self.families:
            for name in self.clients:
                try:
                    with open(f"{directory}/{name}{suffix}.progress") as f:
                        p = json.load(f)
                except (OSError, ValueError):
                    continue
                out["last_rx"].update(p["last_rx"])
                out["errors"].update(p["errors"])
        return out

    def flowing(self, since: float) -> bool:
        """Every flow of every client received something after `since`."""
        p = self.progress()
        expected = (len(self.families) * len(self.clients)
                    * (self.tcp_per_node + self.udp_per_node))
        last = p["last_rx"]
        return len(last) == expected and all(t is not None and t > since for t in last.values())

    def signal_stop(self) -> None:
        """Tell every client and the server to stop (without waiting for their records)."""
        for directory, _, _ in self.families:
            touch(f"{directory}/stop")
            touch(f"{directory}/stop-server")

    def stop(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
        """(server record, client records by node, ping output by node), both families' merged
        (an IPv6 client's records under `<node>-v6`)."""
        files = [f"{d}/{n}{suffix}.json" for d, _, suffix in self.families for n in self.clients]
        servers = [f"{d}/server.json" for d, _, _ in self.families]
        try:
            for directory, _, _ in self.families:
                touch(f"{directory}/stop")  # the clients first: the server's closing is no reset
            wait_for("drill traffic client records",
                     lambda: all(os.path.exists(p) for p in files), timeout=30)
            for directory, _, _ in self.families:
                touch(f"{directory}/stop-server")
            wait_for("drill traffic server records",
                     lambda: all(os.path.exists(p) for p in servers), timeout=30)
        finally:
            self.signal_stop()
            for proc in self.procs:
                end_process(proc, 10)
        server: dict[str, Any] = {}
        for path in servers:
            with open(path) as f:
                record = json.load(f)
            # the TCP streams (a list) and the UDP sources (by flow) of both families
            server["tcp"] = server.get("tcp", []) + record.get("tcp", [])
            server["udp_seen"] = {**server.get("udp_seen", {}), **record.get("udp_seen", {})}
        clients, pings = {}, {}
        for directory, _, suffix in self.families:
            for name in self.clients:
                with open(f"{directory}/{name}{suffix}.json") as f:
                    clients[name + suffix] = json.load(f)
                with open(f"{directory}/{name}{suffix}.ping", errors="replace") as f:
                    pings[name + suffix] = f.read()
        return server, clients, pings
