"""A small namespace world for the agent's tests: switch, upstream, controller node(s), compute.

Every namespace name starts with a unique per-test prefix; `World.destroy` removes them all
(and kills the processes it started, by PID) even when the test failed.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from agent_documents import (  # noqa: F401  (re-exported for the netns tests)
    MGMT_VIP,
    PUB_VIP,
    PUBLIC_GW,
    SERVER,
    compute_document,
    controller_document,
)
from envrouter.document import DeploymentDocument
from envrouter.lab.waiting import wait_for as lab_wait_for

REPO = Path(__file__).resolve().parents[2]
ENVROUTER = str(REPO / ".venv" / "bin" / "envrouter")


def sh(*argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(list(argv), capture_output=True, text=True, **kw)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {res.stderr.strip() or res.stdout.strip()}")
    return res


def wait_for(cond, timeout: float = 10.0, what: str = "condition"):
    return lab_wait_for(what, cond, timeout=timeout, interval=0.05)


@dataclass
class World:
    tmp: Path
    prefix: str = field(default_factory=lambda: f"ert{secrets.token_hex(3)}")
    namespaces: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)

    def ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    @property
    def vr(self) -> str:
        return f"{self.prefix}vr"

    def add_ns(self, name: str) -> str:
        full = self.ns(name)
        sh("ip", "netns", "add", full)
        self.namespaces.append(full)
        sh("ip", "-n", full, "link", "set", "lo", "up")
        return full

    def bridge(self, ns: str, name: str) -> None:
        sh(
            "ip",
            "-n",
            ns,
            "link",
            "add",
            name,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        )
        sh("ip", "-n", ns, "link", "set", name, "up")

    def plug(self, ns: str, ifname: str, sw_bridge: str, master: str | None = None) -> str:
        """veth from ns (ifname) to the switch bridge; returns the switch end's name."""
        sw = self.ns("sw")
        sw_end = f"{self.prefix[-4:]}{secrets.token_hex(3)}"
        tmp = f"t{secrets.token_hex(5)}"
        sh("ip", "-n", sw, "link", "add", sw_end, "type", "veth", "peer", "name", tmp, "netns", ns)
        sh("ip", "-n", sw, "link", "set", sw_end, "master", sw_bridge, "up")
        sh("ip", "-n", ns, "link", "set", tmp, "name", ifname)
        if master:
            sh("ip", "-n", ns, "link", "set", ifname, "master", master)
        sh("ip", "-n", ns, "link", "set", ifname, "up")
        return sw_end

    def build(self, controllers: int = 1, *, linux_bridges: bool = True) -> None:
        sw = self.add_ns("sw")
        self.bridge(sw, "br-mgmt")
        self.bridge(sw, "br-pub")
        up = self.add_ns("up")
        self.plug(up, "eth0", "br-pub")
        sh("ip", "-n", up, "addr", "add", f"{PUBLIC_GW}/24", "dev", "eth0")
        sh("ip", "-n", up, "addr", "add", f"{SERVER}/32", "dev", "lo")
        cmp = self.add_ns("cmp")
        self.plug(cmp, "eth0", "br-mgmt")
        sh("ip", "-n", cmp, "addr", "add", "10.20.0.50/24", "dev", "eth0")
        for i in range(1, controllers + 1):
            ctl = self.add_ns(f"ctl{i}")
            if linux_bridges:
                self.bridge(ctl, "br-mgmt")
                self.bridge(ctl, "br-ex")
                self.plug(ctl, "eth-mgmt", "br-mgmt", master="br-mgmt")
                self.plug(ctl, "eth-pub", "br-pub", master="br-ex")
                self.host_addresses(ctl, i)

    def start_ovs(self, ns: str) -> dict[str, str]:
        """ovsdb-server + ovs-vswitchd inside node namespace `ns`, with private run/log/db
        paths (OVS_RUNDIR); returns the environment that points ovs-vsctl at them."""
        d = self.tmp / "ovs"
        d.mkdir()
        env = {**os.environ, "OVS_RUNDIR": str(d), "OVS_LOGDIR": str(d), "OVS_DBDIR": str(d)}
        sh("ovsdb-tool", "create", str(d / "conf.db"), "/usr/share/openvswitch/vswitch.ovsschema")
        self.start(
            ns,
            [
                "ovsdb-server",
                str(d / "conf.db"),
                f"--remote=punix:{d}/db.sock",
                f"--pidfile={d}/ovsdb-server.pid",
                f"--log-file={d}/ovsdb-server.log",
                f"--unixctl={d}/ovsdb-server.ctl",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: (d / "db.sock").exists(), 10, "ovsdb-server socket")
        sh("ovs-vsctl", "--no-wait", "init", env=env)
        self.start(
            ns,
            [
                "ovs-vswitchd",
                f"unix:{d}/db.sock",
                f"--pidfile={d}/vswitchd.pid",
                f"--log-file={d}/vswitchd.log",
                f"--unixctl={d}/vswitchd.ctl",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: (d / "vswitchd.ctl").exists(), 10, "ovs-vswitchd control socket")
        return {k: env[k] for k in ("OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR")}

    def ovs_controller(self, i: int, env: dict[str, str]) -> str:
        """Controller node i with OVS bridges (userspace datapath) instead of Linux ones. Its
        uplinks are veths from the switch; the switch ends get TX checksumming off (with the
        agent's own mechanism), as a physical network delivers finished checksums: packets
        from the other nodes' stacks would otherwise reach OVS's userspace datapath with
        partial checksums (envrouter.agent.ovs)."""
        from envrouter.agent.netlink import in_netns
        from envrouter.agent.ovs import set_tx_checksum

        ctl = self.ns(f"ctl{i}")
        full = {**os.environ, **env}
        for br, uplink, sw in (("br-mgmt", "eth-mgmt", "br-mgmt"), ("br-ex", "eth-pub", "br-pub")):
            sh(
                "ovs-vsctl",
                "add-br",
                br,
                "--",
                "set",
                "bridge",
                br,
                "datapath_type=netdev",
                env=full,
            )
            sw_end = self.plug(ctl, uplink, sw)
            in_netns(self.ns("sw"), lambda sw_end=sw_end: set_tx_checksum(sw_end, False))
            sh("ovs-vsctl", "add-port", br, uplink, env=full)
            sh("ip", "-n", ctl, "link", "set", br, "up")
        self.host_addresses(ctl, i)
        return ctl

    def host_addresses(self, ctl: str, i: int) -> None:
        sh("ip", "-n", ctl, "addr", "add", f"10.20.0.1{i}/24", "dev", "br-mgmt")
        sh("ip", "-n", ctl, "addr", "add", f"10.30.0.1{i}/24", "dev", "br-ex")
        sh("ip", "-n", ctl, "route", "add", "default", "via", PUBLIC_GW)

    def write_doc(self, doc: DeploymentDocument, name: str = "doc.json") -> Path:
        path = self.tmp / name
        path.write_text(doc.model_dump_json())
        return path

    def agent(
        self,
        node_ns: str,
        *args: str,
        check: bool = True,
        env: dict | None = None,
    ) -> subprocess.CompletedProcess:
        # --host-netns, not `ip netns exec`: the latter gives the agent a private mount
        # namespace, so a namespace it creates (a bind mount under /run/netns) would not be
        # visible to anyone else.
        cmd, rest = args[0], args[1:]
        argv = [ENVROUTER, "agent", cmd, "--host-netns", node_ns, *rest]
        res = subprocess.run(
            argv, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} -> {res.returncode}\n{res.stdout}\n{res.stderr}"
            )
        return res

    def start(self, ns: str, argv: list[str], **kw) -> subprocess.Popen:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kw)
        self.pids.append(proc.pid)
        return proc

    def listener(self) -> tuple[subprocess.Popen, int]:
        """A TCP server in upstream that tells each client the address it sees."""
        port = 8000 + secrets.randbelow(1000)
        code = (
            "import socket,sys\n"
            "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            f"s.bind(('{SERVER}', {port})); s.listen(8); print('ready', flush=True)\n"
            "while True:\n"
            "    c,a=s.accept(); c.sendall(a[0].encode()); c.close()\n"
        )
        proc = self.start(
            self.ns("up"), [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        return proc, port

    def seen_by_upstream(self, ns: str, port: int, timeout: float = 5.0) -> str:
        code = (
            "import socket\n"
            f"c=socket.create_connection(('{SERVER}', {port}), timeout={timeout})\n"
            "print(c.recv(100).decode())\n"
        )
        res = sh("ip", "netns", "exec", ns, sys.executable, "-c", code, check=False)
        if res.returncode != 0:
            return "unreachable: " + res.stderr.strip().splitlines()[-1]
        return res.stdout.strip()

    def nft_ruleset(self, ns: str) -> dict:
        return json.loads(sh("ip", "netns", "exec", ns, "nft", "-j", "list", "ruleset").stdout)

    def destroy(self) -> None:
        for pid in reversed(self.pids):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        for ns in [self.vr, *reversed(self.namespaces)]:
            if os.path.exists(f"/run/netns/{ns}"):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
