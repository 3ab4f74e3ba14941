"""conntrackd syncs IPv6 flows for real: two dual-stack vrouter-like namespaces on one
management bridge (unicast FTFW, as in test_services_conntrackd.py). A NAT66'd TCP flow, a UDP
flow and an ICMPv6 echo flow inserted into one namespace's kernel table reach the other's, the
NAT mapping (reply to the public IPv6 VIP) included; a flow to the namespace's own IPv6 VIP
(its DNS) is not synced."""

from __future__ import annotations

import secrets
import subprocess

import pytest
from test_services_conntrackd import sync_world

from envrouter.document import DocVip, DocVrouter
from envrouter.services.process import wait_until

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]

CLIENT6, SERVER6 = "fd00:20::50", "2001:db8:51::1"
MGMT6_VIP, PUB6_VIP = "fd00:20::2", "2001:db8:30::2"


def _dual_stack(vr: DocVrouter) -> DocVrouter:
    def vip(name: str, role: str, addr: str) -> DocVip:
        return DocVip(name=name, network=role, role=role, namespace=vr.namespace, address=addr,
                      prefixlen=64, user_defined=False)

    raw = vr.model_dump(mode="json")
    raw.update(management_cidr6="fd00:20::/64", public_cidr6="2001:db8:30::/64",
               public_gateway6="2001:db8:30::1", ipv6_egress="nat66",
               vip_management6=vip("vrouter6", "management", MGMT6_VIP).model_dump(mode="json"),
               vip_public6=vip("vrouter_pub6", "public", PUB6_VIP).model_dump(mode="json"))
    return DocVrouter.model_validate(raw)


@pytest.fixture
def pair():
    with sync_world(2, _dual_stack) as world:
        yield world


def _conntrack(ns: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, "conntrack", *argv], capture_output=True,
                          text=True)


def _insert(ns: str, *argv: str) -> None:
    out = _conntrack(ns, "-I", *argv)  # the family follows the addresses
    assert out.returncode == 0, out.stderr


def _listed(ns: str, *argv: str) -> str:
    return _conntrack(ns, "-L", "-f", "ipv6", *argv).stdout


def test_ipv6_flows_reach_the_peers_kernel_table_with_their_nat(pair):
    (vr1, vr2), daemons = pair
    conf = daemons[0].paths.file("conntrackd.conf").read_text()
    assert "IPv6-ICMP" in conf and f"IPv6_address {MGMT6_VIP}" in conf
    sport = 40000 + secrets.randbelow(20000)
    a, b = vr1.namespace, vr2.namespace
    # NAT66: the reply comes back to the public IPv6 VIP
    _insert(a, "-p", "tcp", "-s", CLIENT6, "-d", SERVER6, "--sport", str(sport), "--dport", "80",
            "--state", "ESTABLISHED", "--timeout", "600", "-u", "SEEN_REPLY,ASSURED",
            "--src-nat", PUB6_VIP)
    _insert(a, "-p", "udp", "-s", CLIENT6, "-d", SERVER6, "--sport", str(sport), "--dport", "123",
            "--timeout", "120", "-u", "SEEN_REPLY,ASSURED", "--src-nat", PUB6_VIP)
    _insert(a, "-p", "icmpv6", "-s", CLIENT6, "-d", SERVER6, "--icmpv6-type", "128",
            "--icmpv6-code", "0", "--icmpv6-id", str(sport), "--timeout", "60",
            "--src-nat", PUB6_VIP)
    # the namespace's own service on its IPv6 VIP: not worth syncing
    _insert(a, "-p", "udp", "-s", CLIENT6, "-d", MGMT6_VIP, "--sport", str(sport),
            "--dport", "53", "--timeout", "120", "-u", "SEEN_REPLY")

    def synced(proto: str) -> str | None:
        out = _listed(b, "-p", proto, "-s", CLIENT6, "-d", SERVER6)
        return next((line for line in out.splitlines() if str(sport) in line), None)

    for proto in ("tcp", "udp", "icmpv6"):
        assert wait_until(lambda proto=proto: synced(proto), 15), (proto, _listed(b))
        # the reply tuple: from the server to the public IPv6 VIP (the NAT66 mapping)
        line = synced(proto)
        assert line is not None and f"src={SERVER6} dst={PUB6_VIP}" in line, line
    # a later flow has crossed the same channel: the ignored one would be there by now
    marker = sport + 1 if sport < 59999 else sport - 1
    _insert(a, "-p", "tcp", "-s", CLIENT6, "-d", SERVER6, "--sport", str(marker),
            "--dport", "80", "--state", "ESTABLISHED", "--timeout", "600",
            "-u", "SEEN_REPLY,ASSURED")
    assert wait_until(lambda: str(marker) in _listed(b, "-p", "tcp", "-s", CLIENT6), 15)
    assert MGMT6_VIP not in _listed(b)

