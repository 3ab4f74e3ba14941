"""The agent's IPv6 side for real, in namespaces: a dual-stack compute node gets its IPv6
default route to the vrouter6 VIP (with the metric the kernel keeps, so a second apply has
nothing to do), a resolver asking both VIPs, no default router from RAs on that network, and
a teardown removes the IPv6 route with the IPv4 one. A dual-stack controller gets the ip6 twin
table and the namespace's IPv6 sysctls: the nodes' IPv6 traffic leaves NAT66'd to the public
IPv6 VIP, or routed, and nothing opens from the public side."""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys

import pytest
from agent_world import sh, wait_for
from pyroute2 import IPRoute

from agent_documents import (
    CMP6_ADDRESS,
    MGMT6_CIDR,
    MGMT6_VIP,
    MGMT_VIP,
    PUB6_VIP,
    PUBLIC_GW6,
    SERVER6,
    controller_document,
    dual_stack_compute_document,
    dual_stack_controller_document,
)

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]


def default_routes(ns: str) -> set[tuple[int, str, int]]:
    with IPRoute(netns=ns, flags=0) as ip:
        return {
            (m["family"], m.get_attr("RTA_GATEWAY"), m.get_attr("RTA_PRIORITY") or 0)
            for family in (socket.AF_INET, socket.AF_INET6)
            for m in ip.get_routes(family=family, table=254)
            if m["dst_len"] == 0 and m.get_attr("RTA_GATEWAY")
        }


def sysctl(ns: str, key: str) -> str:
    return sh("ip", "netns", "exec", ns, "sysctl", "-n", key).stdout.strip()


def test_compute_ipv6_default_route_resolver_and_teardown(world):
    world.build(controllers=0)
    node = world.add_ns("cmp6")
    world.bridge(node, "br-mgmt")
    world.plug(node, "eth-mgmt", "br-mgmt", master="br-mgmt")
    sh("ip", "-n", node, "addr", "add", "10.20.0.50/24", "dev", "br-mgmt")
    # the node's own IPv6 address is the deployment tool's, like its IPv4 one
    sh("ip", "-n", node, "addr", "add", f"{CMP6_ADDRESS}/64", "dev", "br-mgmt", "nodad")
    assert sysctl(node, "net.ipv6.conf.br-mgmt.accept_ra_defrtr") == "1"  # the kernel's default
    doc = world.write_doc(dual_stack_compute_document(), "cmp6.json")
    root = world.tmp / "cmp6root"
    common = ["--document", str(doc), "--root", str(root), "--state-dir",
              str(world.tmp / "cmp6state"), "--scope", "host"]
    args = [*common, "--chrony-restart", "true"]

    world.agent(node, "apply", *args)
    routes = default_routes(node)
    assert (socket.AF_INET, MGMT_VIP, 0) in routes
    assert (socket.AF_INET6, MGMT6_VIP, 1024) in routes
    assert sysctl(node, "net.ipv6.conf.br-mgmt.accept_ra_defrtr") == "0"
    resolv = (root / "etc/resolv.conf").read_text()
    assert f"nameserver {MGMT_VIP}\nnameserver {MGMT6_VIP}\n" in resolv
    # converged: the second apply and the status find nothing to do
    assert world.agent(node, "apply", *args).stdout.strip() == "nothing to do: converged"
    status = world.agent(node, "status", "--document", str(doc), "--root", str(root),
                         "--scope", "host")
    assert "converged" in status.stdout

    # a drifted IPv6 route (someone replaced it) is put back
    sh("ip", "-n", node, "-6", "route", "del", "default", "via", MGMT6_VIP)
    assert (socket.AF_INET6, MGMT6_VIP, 1024) not in default_routes(node)
    world.agent(node, "apply", *args)
    assert (socket.AF_INET6, MGMT6_VIP, 1024) in default_routes(node)

    world.agent(node, "teardown", *common)
    assert not {r for r in default_routes(node) if r[1] in (MGMT_VIP, MGMT6_VIP)}
    assert not (root / "etc/resolv.conf").exists()
    world.agent(node, "teardown", *common)  # idempotent


def _listener6(world, port: int):
    """A TCP server on the upstream's IPv6 address that tells each client its address."""
    code = (
        "import socket\n"
        "s=socket.socket(socket.AF_INET6)\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('{SERVER6}', {port})); s.listen(8); print('ready', flush=True)\n"
        "while True:\n"
        "    c,a=s.accept(); c.sendall(a[0].encode()); c.close()\n"
    )
    proc = world.start(world.ns("up"), [sys.executable, "-c", code],
                       stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _seen6(ns: str, address: str, port: int) -> str:
    code = (
        "import socket\n"
        f"c=socket.create_connection(('{address}', {port}), timeout=2)\n"
        "print(c.recv(100).decode())\n"
    )
    res = sh("ip", "netns", "exec", ns, sys.executable, "-c", code, check=False)
    return res.stdout.strip() if res.returncode == 0 else "unreachable"


@pytest.mark.parametrize("egress", ["nat66", "routed"])
def test_controller_ipv6_egress_nat66_or_routed_and_closed_from_public(world, egress):
    world.build(controllers=1)
    ctl, vr, up = world.ns("ctl1"), world.vr, world.ns("up")
    sh("ip", "-n", up, "addr", "add", f"{PUBLIC_GW6}/64", "dev", "eth0", "nodad")
    sh("ip", "-n", up, "addr", "add", f"{SERVER6}/128", "dev", "lo")
    node = world.add_ns("cmp6")
    world.plug(node, "eth0", "br-mgmt")
    sh("ip", "-n", node, "addr", "add", f"{CMP6_ADDRESS}/64", "dev", "eth0", "nodad")
    sh("ip", "-n", node, "-6", "route", "add", "default", "via", MGMT6_VIP)
    doc = world.write_doc(dual_stack_controller_document(vr, egress=egress), "ctl6.json")
    args = ["--document", str(doc), "--root", str(world.tmp / "root"), "--state-dir",
            str(world.tmp / "state"), "--scope", "all"]
    world.agent(ctl, "apply", *args)
    assert sysctl(vr, "net.ipv6.conf.all.forwarding") == "1"
    assert sysctl(vr, "net.ipv6.conf.vr-pub.accept_ra") == "0"
    families = {i["table"]["family"] for i in world.nft_ruleset(vr)["nftables"]
                if "table" in i and i["table"]["name"] == "envrouter"}
    assert families == {"ip", "ip6"}
    assert world.agent(ctl, "apply", *args).stdout.strip() == "nothing to do: converged"

    # the test plays the VIP agent's part (its IPv6 side is not built yet)
    sh("ip", "-n", vr, "addr", "add", f"{MGMT6_VIP}/64", "dev", "vr-mgmt", "nodad")
    sh("ip", "-n", vr, "addr", "add", f"{PUB6_VIP}/64", "dev", "vr-pub", "nodad")
    sh("ip", "-n", vr, "-6", "route", "add", "default", "via", PUBLIC_GW6, "dev", "vr-pub")
    if egress == "routed":  # the upstream routes the management prefix to the public VIP
        sh("ip", "-n", up, "-6", "route", "add", MGMT6_CIDR, "via", PUB6_VIP)
    port = 9000 + secrets.randbelow(500)
    _listener6(world, port)
    want = PUB6_VIP if egress == "nat66" else CMP6_ADDRESS
    assert wait_for(lambda: _seen6(node, SERVER6, port) == want, 15,
                    f"the node's IPv6 traffic leaves as {want}")

    # nothing opens from the public side: the upstream cannot reach the node, even routed
    inbound = 9600 + secrets.randbelow(300)
    code = (
        "import socket\n"
        "s=socket.socket(socket.AF_INET6)\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('::', {inbound})); s.listen(8); print('ready', flush=True)\n"
        "while True:\n"
        "    c,a=s.accept(); c.sendall(b'in'); c.close()\n"
    )
    proc = world.start(node, [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    assert _seen6(node, CMP6_ADDRESS, inbound) == "in"  # the listener itself answers
    if egress == "nat66":
        sh("ip", "-n", up, "-6", "route", "add", MGMT6_CIDR, "via", PUB6_VIP)
    assert _seen6(up, CMP6_ADDRESS, inbound) == "unreachable"

    # IPv6 dropped from the document: the twin table goes
    plain = world.write_doc(controller_document(vr), "ctl4.json")
    world.agent(ctl, "apply", *[a if a != str(doc) else str(plain) for a in args])
    assert "ip6" not in {i["table"]["family"] for i in world.nft_ruleset(vr)["nftables"]
                         if "table" in i}
