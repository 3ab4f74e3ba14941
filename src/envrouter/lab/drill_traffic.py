"""The drills' traffic (effects): the stream/echo server (`envrouter.lab.traffic`) in the
upstream node and one client per running compute node, started and stopped through their
anchors; every process stops on a file in the drill's directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from typing import Any

from envrouter.errors import InfraError
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

    def _py(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "envrouter.lab.traffic", *args]

    def start(self) -> None:
        if not self.clients:
            raise InfraError("the drills need at least one running compute node")
        os.makedirs(self.dir, exist_ok=True)
        server = self.lab.plan.upstream_http
        ports = ["--tcp-port", str(TCP_PORT), "--udp-port", str(UDP_PORT), "--dir", self.dir]
        self.procs.append(self.lab.spawn_in("up", "drill-traffic-server",
                                            self._py("server", "--bind", server, *ports)))
        wait_for("drill traffic server", lambda: os.path.exists(f"{self.dir}/server.ready"),
                 timeout=20, proc=self.procs[0])
        for name in self.clients:
            self.procs.append(self.lab.spawn_in(name, "drill-traffic-client", self._py(
                "client", "--name", name, "--server", server, "--ping", server,
                "--tcp", str(self.tcp_per_node), "--udp", str(self.udp_per_node),
                *ports)))

    def progress(self) -> dict[str, Any]:
        out: dict[str, Any] = {"last_rx": {}, "errors": {}}
        for name in self.clients:
            try:
                with open(f"{self.dir}/{name}.progress") as f:
                    p = json.load(f)
            except (OSError, ValueError):
                continue
            out["last_rx"].update(p["last_rx"])
            out["errors"].update(p["errors"])
        return out

    def flowing(self, since: float) -> bool:
        """Every flow of every client received something after `since`."""
        p = self.progress()
        expected = len(self.clients) * (self.tcp_per_node + self.udp_per_node)
        last = p["last_rx"]
        return len(last) == expected and all(t is not None and t > since for t in last.values())

    def signal_stop(self) -> None:
        """Tell every client and the server to stop (without waiting for their records)."""
        touch(f"{self.dir}/stop")
        touch(f"{self.dir}/stop-server")

    def stop(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
        """(server record, client records by node, ping output by node)."""
        files = [f"{self.dir}/{n}.json" for n in self.clients]
        try:
            touch(f"{self.dir}/stop")  # the clients first: the server's closing is no reset
            wait_for("drill traffic client records",
                     lambda: all(os.path.exists(p) for p in files), timeout=30)
            touch(f"{self.dir}/stop-server")
            wait_for("drill traffic server records",
                     lambda: os.path.exists(f"{self.dir}/server.json"), timeout=30)
        finally:
            self.signal_stop()
            for proc in self.procs:
                end_process(proc, 10)
        with open(f"{self.dir}/server.json") as f:
            server = json.load(f)
        clients, pings = {}, {}
        for name in self.clients:
            with open(f"{self.dir}/{name}.json") as f:
                clients[name] = json.load(f)
            with open(f"{self.dir}/{name}.ping", errors="replace") as f:
                pings[name] = f.read()
        return server, clients, pings
