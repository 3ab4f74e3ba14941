"""The layout on a real single-node Corosync + Pacemaker cluster in a test namespace.

The node is a network namespace with an "anchor" process (private mount/UTS/PID namespaces,
private /run, /var/log, /var/lib/pacemaker, /var/lib/corosync, /etc/corosync, /dev/shm), as in
LAB.md. Inside, the envrouter agents are mounted over <ocf root>/resource.d/envrouter (private
mount namespace: the machine's OCF root is not touched). `envrouter ha apply` twice: the second
changes nothing and the CIB's epoch does not move; then Pacemaker runs every agent for real:
the vrouter namespace, both VIPs, conntrackd promoted, dns and ntp, ping against the gateway.
Teardown: kill -9 the anchor by PID (its PID namespace dies with it), delete the namespaces.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cleanup import remove_namespaces

from agent_documents import services_document
from envrouter.ha.corosync import render_corosync_conf
from envrouter.ha.install import install_agents
from envrouter.lab.waiting import wait_for

pytestmark = [pytest.mark.root, pytest.mark.timeout(300)]

ENVROUTER = str(Path(sys.executable).with_name("envrouter"))
OCF_RA = "/usr/lib/ocf/resource.d"
GW = "10.30.0.1"


def _sh(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=120, **kw)


def _wait(cond, timeout: float, what: str):
    return wait_for(what, cond, timeout=timeout, interval=0.2)


class Node:
    def __init__(self, base: Path, ns: str) -> None:
        self.base, self.ns, self.anchor = base, ns, 0
        self.up = ""

    def nx(self, *argv: str, **kw) -> subprocess.CompletedProcess:
        return _sh("nsenter", "-t", str(self.anchor), "-m", "-n", "-u", "-p", *argv, **kw)

    def start_anchor(self) -> None:
        b = self.base
        for d in ("run/netns", "log/pacemaker/bundles", "log/corosync", "log/crmsh",
                  "lib-pcmk", "lib-coro", "etc-coro", "orig-ra"):
            (b / d).mkdir(parents=True, exist_ok=True)
        shutil.copytree("/var/lib/pacemaker", b / "lib-pcmk", dirs_exist_ok=True,
                        symlinks=True)
        _sh("chown", "-R", "hacluster:haclient", str(b / "lib-pcmk"), str(b / "log/pacemaker"))
        os.chmod(b / "log/pacemaker", 0o770)
        script = f"""
            set -e
            mount --bind {b}/run /run
            mount -t tmpfs -o mode=1777 tmpfs /dev/shm
            mount --bind {b}/log /var/log
            mount --bind {b}/lib-pcmk /var/lib/pacemaker
            mount --bind {b}/lib-coro /var/lib/corosync
            mount --bind {b}/etc-coro /etc/corosync
            mount --bind {OCF_RA} {b}/orig-ra
            mount -t tmpfs -o mode=755 tmpfs {OCF_RA}
            mkdir {OCF_RA}/pacemaker {OCF_RA}/heartbeat {OCF_RA}/envrouter
            mount --bind {b}/orig-ra/pacemaker {OCF_RA}/pacemaker
            mount --bind {b}/orig-ra/heartbeat {OCF_RA}/heartbeat
            mount --bind {b}/ocf/resource.d/envrouter {OCF_RA}/envrouter
            hostname node1
            exec sh -c 'trap exit TERM; while :; do sleep 3600 & wait; done'
        """
        log = open(b / "anchor.log", "ab")  # noqa: SIM115 - kept by the child
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "unshare", "--mount", "--uts", "--pid", "--fork",
             "--mount-proc", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        self.launcher = proc

        def anchored() -> bool:
            kids = _sh("ps", "-o", "pid=", "--ppid", str(proc.pid)).stdout.split()
            if not kids:
                return False
            self.anchor = int(kids[0])
            return self.nx("hostname").stdout.strip() == "node1"

        _wait(anchored, 20, "the node's anchor")

    def stop(self) -> None:
        if self.anchor:
            try:
                os.kill(self.anchor, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.launcher.wait(20)
        except (AttributeError, subprocess.TimeoutExpired):
            pass


@pytest.fixture
def node():
    from pyroute2 import NetNS, netns

    prefix = f"ert-{secrets.token_hex(3)}"
    base = Path(f"/tmp/{prefix}")  # outside /run: the node's /run is private
    base.mkdir(mode=0o755)
    ns_node, ns_up = f"{prefix}-node", f"{prefix}-up"
    n = Node(base, ns_node)
    n.up = ns_up
    try:
        for ns in (ns_node, ns_up):
            netns.create(ns)
        with NetNS(ns_node) as ip:
            ip.link("set", index=ip.link_lookup(ifname="lo")[0], state="up")
            for br, addr in (("br-mgmt", "10.20.0.11"), ("br-ex", "10.30.0.11")):
                ip.link("add", ifname=br, kind="bridge", br_stp_state=0, br_forward_delay=0)
                idx = ip.link_lookup(ifname=br)[0]
                ip.addr("add", index=idx, address=addr, prefixlen=24)
                ip.link("set", index=idx, state="up")
            ip.link("add", ifname="eth-pub", kind="veth",
                    peer={"ifname": "eth0", "net_ns_fd": ns_up})
            idx = ip.link_lookup(ifname="eth-pub")[0]
            ip.link("set", index=idx, master=ip.link_lookup(ifname="br-ex")[0], state="up")
            ip.route("add", dst="0.0.0.0/0", gateway=GW)
        with NetNS(ns_up) as ip:
            ip.link("set", index=ip.link_lookup(ifname="lo")[0], state="up")
            idx = ip.link_lookup(ifname="eth0")[0]
            ip.addr("add", index=idx, address=GW, prefixlen=24)
            ip.link("set", index=idx, state="up")
        install_agents(str(base / "ocf"))
        (base / "document.json").write_text(
            services_document("vrouter", peer=None, hostname="node1", domain="example.lab")
            .model_dump_json())
        (base / "etc-coro").mkdir()
        (base / "etc-coro" / "corosync.conf").write_text(render_corosync_conf(
            "t", [("node1", 1, "10.20.0.11")], crypto_cipher="none", crypto_hash="none"))
        n.start_anchor()
        yield n
    finally:
        n.stop()
        remove_namespaces((ns_node, ns_up))
        shutil.rmtree(base, ignore_errors=True)


def _epoch(node: Node) -> tuple[str, str]:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(node.nx("cibadmin", "--query").stdout)
    return root.get("admin_epoch", ""), root.get("epoch", "")


def test_layout_applied_twice_and_run_by_pacemaker(node):
    n = node
    n.nx("sh", "-c", "corosync -f >/var/log/corosync/stdout.log 2>&1 &")
    _wait(lambda: n.nx("corosync-cfgtool", "-s").returncode == 0, 30, "corosync")
    n.nx("sh", "-c", "PCMK_logfile=/var/log/pacemaker/pacemaker.log setsid pacemakerd -f "
         ">/var/log/pacemaker/stdout.log 2>&1 </dev/null &")
    _wait(lambda: "Current DC: node1" in n.nx("crm_mon", "-1").stdout, 90, "a DC")

    doc = str(n.base / "document.json")
    args = ["--document", doc, "--agent-document", doc, "--no-stonith"]
    first = n.nx(ENVROUTER, "ha", "apply", *args)
    assert first.returncode == 0, first.stderr
    # one primitive carries every VIP; no one-VIP primitive of the layouts before
    assert "create resource vips" in first.stdout and "vip__" not in first.stdout
    epoch = _epoch(n)
    second = n.nx(ENVROUTER, "ha", "apply", *args)
    assert second.returncode == 0, second.stderr
    assert "CIB already matches the layout" in second.stdout
    assert _epoch(n) == epoch

    def where(rsc: str) -> str:
        return n.nx("crm_resource", "--locate", "--resource", rsc).stdout.strip()

    def all_up() -> bool:
        return (all(where(r).endswith("running on: node1") for r in (
                    "vips", "vrouter-clone", "dns-clone", "ntp-clone",
                    "ping_upstream-clone", "uplink-clone"))
                and where("conntrackd-clone").endswith("node1 Promoted"))

    try:
        _wait(all_up, 120, "every resource started and conntrackd promoted")
    except AssertionError:
        print(n.nx("crm_mon", "-1", "-r", "--failcounts").stdout)
        raise
    def vips() -> bool:
        addrs = n.nx("ip", "-n", "vrouter", "-o", "addr", "show").stdout
        return "10.20.0.2/24" in addrs and "10.30.0.2/24" in addrs

    _wait(vips, 30, "both VIPs in the node's vrouter namespace")
    # the forwarder answers on the management VIP (a plain name is answered locally:
    # domain-needed), and nothing on the public VIP
    def answers(server: str, ns: str | None = None) -> bool:
        argv = ["dig", "+time=1", "+tries=1", f"@{server}", "plainname", "A"]
        if ns:
            return _sh("ip", "netns", "exec", ns, *argv).returncode == 0
        return n.nx(*argv).returncode == 0

    assert _wait(lambda: answers("10.20.0.2"), 20, "DNS on the management VIP")
    assert not answers("10.30.0.2", n.up)

    # kill -9 of the forwarder: Pacemaker's monitor notices and restarts it
    pid_file = "/run/envrouter/vrouter/dnsmasq/daemon.pid"
    old = n.nx("cat", pid_file).stdout.strip()
    assert old.isdigit()
    assert n.nx("kill", "-9", old).returncode == 0

    def restarted() -> bool:
        new = n.nx("cat", pid_file).stdout.strip()
        return new.isdigit() and new != old and answers("10.20.0.2")

    _wait(restarted, 60, "dnsmasq restarted by Pacemaker")

    # the public uplink loses carrier (the far end of eth-pub goes down): the uplink agent's
    # watcher sets envrouter_uplink=0 at once and the VIPs stop (this node is the only one);
    # carrier back: 1, and they start again
    def uplink() -> str:
        out = n.nx("attrd_updater", "-Q", "-n", "envrouter_uplink").stdout
        return out.rsplit("value=", 1)[-1].strip().strip('"') if "value=" in out else ""

    assert _wait(lambda: uplink() == "1", 20, "envrouter_uplink=1")
    assert vips()
    _sh("ip", "-n", n.up, "link", "set", "eth0", "down")
    try:
        _wait(lambda: uplink() == "0", 10, "envrouter_uplink=0 after the carrier loss")
        _wait(lambda: not vips(), 30, "the VIPs stopped: no uplink")
    finally:
        _sh("ip", "-n", n.up, "link", "set", "eth0", "up")
    _wait(lambda: uplink() == "1", 10, "envrouter_uplink=1 with the carrier back")
    _wait(vips, 60, "the VIPs started again")
