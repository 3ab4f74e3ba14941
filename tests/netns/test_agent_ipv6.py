"""The agent's IPv6 host side for real, in namespaces: a dual-stack compute node gets its IPv6
default route to the vrouter6 VIP (with the metric the kernel keeps, so a second apply has
nothing to do), a resolver asking both VIPs, no default router from RAs on that network, and
a teardown removes the IPv6 route with the IPv4 one."""

from __future__ import annotations

import socket

import pytest
from agent_world import sh
from pyroute2 import IPRoute

from agent_documents import CMP6_ADDRESS, MGMT6_VIP, MGMT_VIP, dual_stack_compute_document

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
