"""A VIP holder that gives up its VIPs goes on forwarding the flows whose packets still reach it,
for real: the agent's controller namespace (dual stack, NAT and NAT66), the VIP agent, a compute
and an upstream (World from agent_world). After the VIP stop, and before any new holder has
announced itself, the compute's and the upstream's neighbour entries still point at this
namespace: a UDP flow of each family that was open before the stop keeps getting its answers,
still NATed to the public VIP of its family. IPv4 takes the namespace's fallback route (the host
link, the node forwards) and needs the public port's reverse-path filter off (the port has no
IPv4 address once the VIP has gone, and the kernel drops such a port's packets under any
rp_filter); IPv6 keeps the public route and the management prefix for `arp_count` + 1 s, then
the VIP agent's detached process removes them. docs/ha.md, "The old holder forwards until the
neighbours follow"."""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys

import pytest
from agent_world import MGMT_VIP, PUB_VIP, SERVER, sh
from pyroute2 import IPRoute
from vip_helpers import ocf_env, run_agent

from agent_documents import (
    CMP6_ADDRESS,
    MGMT6_CIDR,
    MGMT6_VIP,
    PUB6_CIDR,
    PUB6_VIP,
    PUBLIC_GW6,
    SERVER6,
    dual_stack_controller_document,
)
from envrouter.agent.netlink import RTPROT_ENVROUTER_VIP
from envrouter.ha.layout import vip_addresses
from envrouter.waiting import poll

pytestmark = [pytest.mark.root, pytest.mark.timeout(180)]

ARP_COUNT = 3  # the IPv6 routes stay arp_count + 1 = 4 s after the stop

# The upstream's UDP echo: each datagram comes back as the source address it came from.
ECHO = (
    "import socket, sys, threading\n"
    "def serve(family, address, port):\n"
    "    s = socket.socket(family, socket.SOCK_DGRAM); s.bind((address, port))\n"
    "    while True:\n"
    "        data, peer = s.recvfrom(100); s.sendto(peer[0].encode(), peer)\n"
    "port = int(sys.argv[1])\n"
    "for f, a in ((socket.AF_INET, sys.argv[2]), (socket.AF_INET6, sys.argv[3])):\n"
    "    threading.Thread(target=serve, args=(f, a, port), daemon=True).start()\n"
    "print('ready', flush=True); sys.stdin.read()\n"
)

# The compute's two flows, one UDP socket (one source port) per family, kept open: each line
# on stdin names a family ("4", "6"); the answer (what the upstream saw) or "timeout" comes back.
FLOWS = (
    "import socket, sys\n"
    "port = int(sys.argv[1])\n"
    "socks = {'4': (socket.socket(socket.AF_INET, socket.SOCK_DGRAM), sys.argv[2]),\n"
    "         '6': (socket.socket(socket.AF_INET6, socket.SOCK_DGRAM), sys.argv[3])}\n"
    "for s, _ in socks.values(): s.settimeout(1.0)\n"
    "for line in sys.stdin:\n"
    "    s, server = socks[line.strip()]\n"
    "    s.sendto(b'x', (server, port))\n"
    "    try: print(s.recvfrom(100)[0].decode(), flush=True)\n"
    "    except OSError: print('timeout', flush=True)\n"
)


class Flows:
    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc

    def ask(self, family: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(family + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def answered(self, family: str, want: str, tries: int = 5) -> bool:
        """True once a datagram of the flow is answered as coming from `want` (a lost datagram
        is tried again: the first of a flow may wait for neighbour discovery)."""
        return any(self.ask(family) == want for _ in range(tries))


def _vip_routes6(ns: str) -> set[tuple[str, str | None]]:
    """The VIP agent's IPv6 routes in the namespace: (destination, gateway)."""
    with IPRoute(netns=ns, flags=0) as ip:
        return {(f"{m.get_attr('RTA_DST') or '::'}/{m['dst_len']}", m.get_attr("RTA_GATEWAY"))
                for m in ip.get_routes(family=socket.AF_INET6, table=254)
                if m["proto"] == RTPROT_ENVROUTER_VIP}


def test_the_old_holder_forwards_its_flows_until_the_neighbours_follow(world, vip_agent):
    world.build(controllers=1)
    ctl, vr, up, cmp = world.ns("ctl1"), world.vr, world.ns("up"), world.ns("cmp")
    sh("ip", "-n", up, "addr", "add", f"{PUBLIC_GW6}/64", "dev", "eth0", "nodad")
    sh("ip", "-n", up, "addr", "add", f"{SERVER6}/128", "dev", "lo")
    sh("ip", "-n", cmp, "addr", "add", f"{CMP6_ADDRESS}/64", "dev", "eth0", "nodad")
    sh("ip", "-n", cmp, "route", "add", "default", "via", MGMT_VIP)
    sh("ip", "-n", cmp, "-6", "route", "add", "default", "via", MGMT6_VIP)
    # the node forwards the namespace's fallback traffic, with the reverse-path filter a Debian
    # host has by default (loose)
    sh("ip", "netns", "exec", ctl, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=2",
       "net.ipv4.conf.default.rp_filter=2")
    doc = dual_stack_controller_document(vr)
    path = world.write_doc(doc, "ctl.json")
    args = ["--document", str(path), "--root", str(world.tmp / "root"), "--state-dir",
            str(world.tmp / "state"), "--scope", "all"]
    world.agent(ctl, "apply", *args)
    assert doc.vrouter is not None
    env = ocf_env(namespace=vr, addresses=vip_addresses(doc.vrouter),
                  arp_count=str(ARP_COUNT))
    assert run_agent(vip_agent, "start", env).returncode == 0

    port = 7000 + secrets.randbelow(900)
    echo = world.start(up, [sys.executable, "-c", ECHO, str(port), SERVER, SERVER6],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert echo.stdout is not None and echo.stdout.readline().strip() == "ready"
    flows = Flows(world.start(cmp, [sys.executable, "-c", FLOWS, str(port), SERVER, SERVER6],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    # the flows are open, through the VIPs, NATed to the public VIPs
    assert flows.answered("4", PUB_VIP)
    assert flows.answered("6", PUB6_VIP)

    # the VIPs go; no other holder: the neighbours' entries still point here
    out = run_agent(vip_agent, "stop", env)
    assert out.returncode == 0, out.stderr
    assert flows.ask("6") == PUB6_VIP, "IPv6: the open flow is no longer forwarded"
    # the public route, and each VIP's prefix on its port
    assert _vip_routes6(vr) == {("::/0", PUBLIC_GW6), (MGMT6_CIDR, None), (PUB6_CIDR, None)}
    assert flows.ask("4") == PUB_VIP, "IPv4: the open flow is no longer forwarded"
    assert run_agent(vip_agent, "monitor", env).returncode == 7

    # the public port's reverse-path filter on, as before: the kernel drops the answers
    sh("ip", "netns", "exec", vr, "sysctl", "-qw", "net.ipv4.conf.vr-pub.rp_filter=2")
    assert flows.ask("4") == "timeout"
    world.agent(ctl, "apply", *args)  # the agent turns it off again
    assert flows.answered("4", PUB_VIP)

    # the IPv6 routes go after arp_count + 1 s; with them the IPv6 flow, while IPv4 goes on
    # through the fallback as long as the namespace is there
    assert poll(lambda: _vip_routes6(vr) == set(), 15, interval=0.1), _vip_routes6(vr)
    assert flows.ask("6") == "timeout"
    assert flows.ask("4") == PUB_VIP

    # nothing new opens through a namespace without the VIPs: a new IPv4 flow is dropped
    fresh = Flows(world.start(cmp, [sys.executable, "-c", FLOWS, str(port), SERVER, SERVER6],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    assert fresh.ask("4") == "timeout"

    # a start again: the routes the VIPs need, not taken away by the stop's detached process
    assert run_agent(vip_agent, "start", env).returncode == 0
    assert run_agent(vip_agent, "stop", env).returncode == 0
    assert run_agent(vip_agent, "start", env).returncode == 0
    assert not poll(lambda: ("::/0", PUBLIC_GW6) not in _vip_routes6(vr), ARP_COUNT + 2,
                    interval=0.2), _vip_routes6(vr)
    assert flows.answered("6", PUB6_VIP)
    assert run_agent(vip_agent, "stop", env).returncode == 0
    assert poll(lambda: _vip_routes6(vr) == set(), 15, interval=0.1), _vip_routes6(vr)
