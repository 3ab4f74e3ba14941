"""Where the VIPs are during a drill, sampled from the kernel (effects; the analysis of the
samples is pure: `envrouter.lab.vip_samples`).

A thread in the drill's own process (the machine's namespaces) reads, every 50 ms, the IPv4
addresses of every running controller's ``vrouter`` namespace over netlink, reached by path
through the controller's anchor (``/proc/<anchor>/root/run/netns/vrouter``). It never runs
inside a node, so it keeps sampling a node whose processes are all stopped (the ``hang``
drill): what the hung kernel still holds is what the neighbours see.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any

from pyroute2 import IPRoute

from envrouter.errors import InfraError
from envrouter.lab.nodes import Lab
from envrouter.lab.vip_samples import Sample, confirmed_holders
from envrouter.lab.waiting import wait_for

VROUTER_NS = "vrouter"
INTERVAL = 0.05  # s


class VipWatch:
    """Samples {vip name: controllers holding it} every `interval` until stopped."""

    def __init__(self, lab: Lab, vips: dict[str, str], interval: float = INTERVAL) -> None:
        # its own view of the state file: the thread looks up anchors (and adopts the ones the
        # power switch records) while the drill's thread saves its own
        self.lab = Lab.load(lab.plan.state_dir)
        self.vips = dict(vips)  # name -> address
        self.interval = interval
        self.samples: list[Sample] = []
        self._sockets: dict[str, tuple[tuple[int, int], Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vip-watch", daemon=True)
        self._lock = threading.Lock()

    def __enter__(self) -> VipWatch:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()
        # the first sample before anything else happens: the state before the fault
        with contextlib.suppress(InfraError):  # the drill notes a watch without samples
            wait_for("the first VIP sample",
                     lambda: self.samples or not self._thread.is_alive(), timeout=10,
                     interval=0.01)

    def stop(self) -> list[Sample]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        for _, sock in self._sockets.values():
            with contextlib.suppress(Exception):
                sock.close()
        self._sockets.clear()
        return list(self.samples)

    def latest(self) -> Sample | None:
        with self._lock:
            return self.samples[-1] if self.samples else None

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            sample = self.sample()
            with self._lock:
                self.samples.append(sample)
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind (a loaded machine): no burst to catch up
                next_at = time.monotonic()
                delay = 0
            self._stop.wait(delay)

    def sample(self) -> Sample:
        t = time.time()
        held: dict[str, list[str]] = {name: [] for name in self.vips}
        by_address = {addr: name for name, addr in self.vips.items()}
        for node in self.lab.plan.controllers:
            for address in self._addresses(node.name):
                name = by_address.get(address)
                if name is not None:
                    held[name].append(node.name)
        several = sorted({n for nodes in held.values() if len(nodes) > 1 for n in nodes})
        reread = {node: self._addresses(node) for node in several}
        return Sample(t, confirmed_holders(held, self.vips, reread))

    def _addresses(self, node: str) -> set[str]:
        """The addresses (both families) of the node's vrouter namespace (empty: off, or none
        yet)."""
        sock = self._socket(node)
        if sock is None:
            return set()
        try:
            return {a.get("address") for a in sock.get_addr()}
        except Exception:  # the namespace went away under us (a power-off)
            self._drop(node)
            return set()

    def _socket(self, node: str) -> Any:
        # one netlink socket per namespace instance: a rebooted node has a new anchor and a
        # new vrouter namespace (another inode), and the old socket would show the old one
        if not self.lab.node_running(node):
            self._drop(node)
            return None
        try:
            path = f"/proc/{self.lab.anchor_pid(node)}/root/run/netns/{VROUTER_NS}"
            key = (self.lab.anchor_pid(node), os.stat(path).st_ino)
        except Exception:  # InfraError: powered off since; OSError: no namespace (yet)
            self._drop(node)
            return None
        cached = self._sockets.get(node)
        if cached is not None and cached[0] == key:
            return cached[1]
        self._drop(node)
        try:
            sock = IPRoute(netns=path)
        except OSError:
            return None
        self._sockets[node] = (key, sock)
        return sock

    def _drop(self, node: str) -> None:
        cached = self._sockets.pop(node, None)
        if cached is not None:
            with contextlib.suppress(Exception):
                cached[1].close()
