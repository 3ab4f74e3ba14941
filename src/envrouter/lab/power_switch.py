"""The lab's power switch (effects): one process in the machine's own namespaces that powers
lab nodes off and on, on request over a unix socket in the state dir.

Started by `lab up` (recorded like the control plane, killed by `lab down`):
``python -m envrouter.lab.power_switch STATE_DIR``. It is what the fence agent
(`envrouter.lab.fence_agent`, run by Pacemaker's fencer inside a controller) talks to, and what
the drills use to crash a node, so every power action of a lab goes through one place, one at a
time. A process inside a node cannot do this itself: its mount, PID and network namespaces hide
the other nodes' anchors and the lab's namespaces; the socket is a path, which crosses them.

- ``off``: what a power-off does to a lab node (`envrouter.lab.faults.hard_kill`): its cables
  down in the switch, SIGKILL of its anchor (every process of the node), its netns deleted.
  Answered once the node is off.
- ``on``: the node's netns, anchor and wiring again (the outlet has power: the node is "on"),
  answered then; its boot (daemons, agent) goes on in the background, as a machine boots
  after its power comes back.
- ``cycle``: off, answered once off, then on by itself after ``--boot-delay`` (5 s; an IPMI
  "power cycle").
- ``status``: on | off; ``list``: every node with its status.

The long-lived processes a boot starts (nsenter of corosync, pacemakerd) are children of this
process, which outlives them and reaps them (the machine's PID 1 does not).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import traceback
from typing import Any

from envrouter.errors import EnvrouterError
from envrouter.lab.fence_agent import request
from envrouter.lab.nodes import Lab

SOCKET_NAME = "power.sock"
EVENTS_NAME = "power-events.jsonl"
PROCESS_NAME = "power-switch"  # its record in the state file's processes
ACTIONS = ("on", "off", "cycle", "status", "list")
BOOT_DELAY = 5.0  # s between the off and the on of a cycle
MAX_SOCKET_PATH = 107  # sun_path


def socket_path(state_dir: str) -> str:
    return os.path.join(state_dir, SOCKET_NAME)


def events_path(state_dir: str) -> str:
    return os.path.join(state_dir, EVENTS_NAME)


def power_events(state_dir: str) -> list[dict[str, Any]]:
    """The switch's record of power actions, oldest first."""
    out = []
    try:
        with open(events_path(state_dir)) as f:
            for line in f:
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
    except OSError:
        pass
    return out


def running(lab: Lab) -> bool:
    """Whether this lab has a power switch that answers."""
    path = socket_path(lab.plan.state_dir)
    if PROCESS_NAME not in lab.state.get("processes", {}) or not os.path.exists(path):
        return False
    try:
        return bool(request(path, "list", None, timeout=10).get("ok"))
    except (OSError, ValueError):
        return False


def ask(lab: Lab, action: str, plug: str | None = None, timeout: float = 120) -> dict[str, Any]:
    """A request to the lab's power switch; raises EnvrouterError when it fails."""
    from envrouter.errors import InfraError

    try:
        answer = request(socket_path(lab.plan.state_dir), action, plug, timeout)
    except (OSError, ValueError) as exc:
        raise InfraError(f"the lab power switch: {action} {plug or ''}: {exc}") from exc
    if not answer.get("ok"):
        raise InfraError(f"the lab power switch: {action} {plug or ''}: {answer.get('error')}")
    return answer


def start(lab: Lab) -> None:
    """Start the switch for this lab (a recorded host process) and wait until it answers."""
    from envrouter.errors import InfraError
    from envrouter.lab.waiting import wait_for

    path = socket_path(lab.plan.state_dir)
    if len(path) > MAX_SOCKET_PATH:
        raise InfraError(f"the power switch socket path is too long for a unix socket: {path}"
                         " (use a shorter --state-dir)")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    proc = lab.spawn_host(PROCESS_NAME, [sys.executable, "-m", "envrouter.lab.power_switch",
                                         lab.plan.state_dir])
    wait_for("the lab power switch answering", lambda: running(lab), timeout=30, interval=0.1,
             proc=proc, log=os.path.join(lab.plan.state_dir, f"{PROCESS_NAME}.log"))


class Switch:
    def __init__(self, state_dir: str, boot_delay: float = BOOT_DELAY) -> None:
        self.lab = Lab.load(state_dir)
        self.boot_delay = boot_delay
        self.lock = threading.Lock()  # one power action at a time
        self.generation: dict[str, int] = {}  # per node: bumped by every off and on

    def log(self, text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d} {text}",
              flush=True)

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        action, plug = req.get("action"), req.get("plug")
        if action not in ACTIONS:
            return {"ok": False, "error": f"unknown action {action!r} (one of {ACTIONS})"}
        names = self.lab.plan.node_names
        if action == "list":
            return {"ok": True, "plugs": {n: self.status(n) for n in names}}
        if plug not in names:
            return {"ok": False, "error": f"no lab node {plug!r} (nodes: {', '.join(names)})"}
        if action == "status":
            return {"ok": True, "status": self.status(plug)}
        with self.lock:
            self.lab.refresh()  # the deployment written since (a boot runs the agent)
            if action in ("off", "cycle"):
                self.off(plug)
            if action == "on":
                self.on(plug)
            self.record(action, plug, req.get("by"))
        if action == "cycle":
            threading.Thread(target=self._on_later, args=(plug,), daemon=True).start()
        return {"ok": True, "status": self.status(plug)}

    def record(self, action: str, plug: str, by: Any) -> None:
        """One line per power action (who asked, when it was done): what the drills read to
        tell that a node was fenced. `lab down` removes the file."""
        line = json.dumps({"t": time.time(), "action": action, "plug": plug,
                           "by": by if isinstance(by, str) else None})
        with open(events_path(self.lab.plan.state_dir), "a") as f:
            f.write(line + "\n")

    def status(self, name: str) -> str:
        return "on" if self.lab.node_running(name) else "off"

    def off(self, name: str) -> None:
        from envrouter.lab.faults import hard_kill

        self.generation[name] = self.generation.get(name, 0) + 1
        t0 = time.monotonic()
        if self.lab.node_running(name) or self.lab.plan.node(name).netns in _netns_names():
            hard_kill(self.lab, name)
        self.log(f"{name}: off ({(time.monotonic() - t0) * 1000:.0f} ms)")

    def on(self, name: str) -> None:
        if self.lab.node_running(name):
            return
        self.generation[name] = gen = self.generation.get(name, 0) + 1
        t0 = time.monotonic()
        self.lab.power_on(name)
        self.log(f"{name}: on ({(time.monotonic() - t0) * 1000:.0f} ms), booting")
        threading.Thread(target=self._boot, args=(name, gen), daemon=True).start()

    def _on_later(self, name: str) -> None:
        # the power comes back after a pause, as a cycled machine's firmware takes a while:
        # a node that rejoined at once would interrupt the survivors' failover (a membership
        # change aborts the DC's transition in flight)
        time.sleep(self.boot_delay)
        with self.lock:
            try:
                self.on(name)
            except Exception:
                self.log(f"{name}: power on after the cycle failed:\n{traceback.format_exc()}")

    def _boot(self, name: str, gen: int) -> None:
        """What a machine does once its power is back: its daemons, then its agent. Given up
        when the node is powered off (or on again) meanwhile."""
        from envrouter.lab import deploy
        from envrouter.lab.build import start_node_services

        def current() -> bool:
            return self.generation.get(name) == gen and self.lab.node_running(name)

        try:
            start_node_services(self.lab, name)
            dep = self.lab.state.get("deployment") or {}
            if current() and name in dep.get("agents", {}):
                deploy.apply_agent(self.lab, name)
            self.log(f"{name}: booted")
        except (EnvrouterError, OSError) as exc:
            self.log(f"{name}: boot " + ("failed" if current() else "cut short by a power "
                                         "action") + f": {exc}")

    def reap(self) -> None:
        """Collect the children that exited (a node powered off by someone else)."""
        for key, proc in list(self.lab._popen.items()):
            if proc.poll() is not None:
                self.lab._popen.pop(key, None)

    def serve(self) -> None:
        path = socket_path(self.lab.plan.state_dir)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o077)  # root only: it powers nodes off
        try:
            srv.bind(path)
        finally:
            os.umask(old)
        srv.listen(16)
        srv.settimeout(1.0)
        self.log(f"power switch for {self.lab.plan.state_dir} listening on {path}")
        while True:
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                self.reap()
                continue
            threading.Thread(target=self._serve_one, args=(conn,), daemon=True).start()

    def _serve_one(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            data = b""
            try:
                while chunk := conn.recv(65536):
                    data += chunk
                    if b"\n" in data:
                        break
                req = json.loads(data.decode() or "{}")
                t0 = time.monotonic()
                answer = self.handle(req if isinstance(req, dict) else {})
                if req.get("action") not in ("status", "list"):
                    self.log(f"{req.get('action')} {req.get('plug')}: {answer} "
                             f"({(time.monotonic() - t0) * 1000:.0f} ms)")
            except Exception as exc:  # one bad request never stops the switch
                self.log(f"request {data[:200]!r} failed:\n{traceback.format_exc()}")
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(answer).encode() + b"\n")


def _netns_names() -> list[str]:
    from pyroute2 import netns

    return list(netns.listnetns())


def main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m envrouter.lab.power_switch",
                                description="The lab's power switch (see the module's doc).")
    p.add_argument("state_dir")
    p.add_argument("--boot-delay", type=float, default=BOOT_DELAY,
                   help="seconds between the off and the on of a power cycle")
    a = p.parse_args(argv)
    Switch(a.state_dir, a.boot_delay).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


# ------------------------------------------------------------------ for drills and tests


def crash(lab: Lab, name: str) -> None:
    """Power a node off the way a crash does, through the switch when the lab has one (so it
    never races a fencing of the same node), else here (`envrouter.lab.faults.hard_kill`)."""
    if running(lab):
        ask(lab, "off", name)
    else:
        from envrouter.lab.faults import hard_kill

        hard_kill(lab, name)


def ensure_on(lab: Lab, name: str) -> None:
    """Power a node on unless it is (a fencing may have rebooted it already, or be doing it:
    the switch serialises its own power-on after a cycle with this one). Does not wait for the
    node's boot; `envrouter.lab.build.wait_converged` does."""
    if running(lab):
        ask(lab, "on", name)
        return
    if not lab.node_running(name):
        from envrouter.lab.build import power_on

        power_on(lab, name, wait=False)
