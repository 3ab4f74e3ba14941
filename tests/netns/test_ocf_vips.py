"""The VIP agent carrying all four VIPs of a dual-stack vrouter as one resource, for real: two
"vrouter" namespaces A and B, each with a management and a public port; a compute C on the
management bridge and an upstream U on the public one. One start adds every address and both
public default routes (each with the VIP as its source) and announces every VIP, so that C's and
U's neighbour entries follow them from A to B before either sends anything; one stop removes
them all; the monitor tells all (0) from none (7) from some (1, failed); ocf-tester passes with
the list form."""

from __future__ import annotations

import secrets
import subprocess

import pytest
from cleanup import remove_namespaces
from pyroute2 import IPRoute, NetNS, netns
from vip_helpers import mac, ocf_env, ocf_tester, run_agent

from envrouter.agent.netlink import RTPROT_ENVROUTER_VIP
from envrouter.agent.vip import vip_present
from envrouter.ha.ocf_vip import METRIC4, METRIC6, address_entry, addresses_param
from envrouter.waiting import poll

pytestmark = [pytest.mark.root, pytest.mark.timeout(180)]

MGMT4, PUB4, MGMT6, PUB6 = "10.77.0.2", "10.78.0.2", "fd77::2", "fd78::2"
C4, C6 = "10.77.0.50", "fd77::50"  # the compute
U4, U6 = "10.78.0.1", "fd78::1"  # the upstream: the public gateway of each family
VIPS = {MGMT4: "vr-mgmt", PUB4: "vr-pub", MGMT6: "vr-mgmt", PUB6: "vr-pub"}
ADDRESSES = addresses_param([
    address_entry("vr-mgmt", MGMT4, 24), address_entry("vr-pub", PUB4, 24, U4),
    address_entry("vr-mgmt", MGMT6, 64), address_entry("vr-pub", PUB6, 64, U6)])


@pytest.fixture
def net():
    tag = secrets.token_hex(3)
    names = {k: f"ert-{tag}-{k}" for k in ("sw", "a", "b", "c", "u")}
    try:
        for ns in names.values():
            netns.create(ns)
            with NetNS(ns) as n:
                n.link("set", index=n.link_lookup(ifname="lo")[0], state="up")
        with NetNS(names["sw"]) as sw:
            for br in ("br-mgmt", "br-pub"):
                sw.link("add", ifname=br, kind="bridge")
                sw.link("set", index=sw.link_lookup(ifname=br)[0], state="up")
        ports = [("a", "vr-mgmt", "br-mgmt"), ("a", "vr-pub", "br-pub"),
                 ("b", "vr-mgmt", "br-mgmt"), ("b", "vr-pub", "br-pub"),
                 ("c", "eth0", "br-mgmt"), ("u", "eth0", "br-pub")]
        for i, (node, inner, br) in enumerate(ports):
            with NetNS(names["sw"]) as sw:
                sw.link("add", ifname=f"p{i}", kind="veth",
                        peer={"ifname": inner, "net_ns_fd": names[node]})
                idx = sw.link_lookup(ifname=f"p{i}")[0]
                sw.link("set", index=idx, master=sw.link_lookup(ifname=br)[0], state="up")
            with NetNS(names[node]) as n:
                n.link("set", index=n.link_lookup(ifname=inner)[0], state="up")
        for node in ("a", "b"):  # a router namespace, as the vrouter agent sets it up
            subprocess.run(["ip", "netns", "exec", names[node], "sysctl", "-qw",
                            "net.ipv6.conf.all.forwarding=1", "net.ipv6.conf.all.accept_dad=0",
                            "net.ipv4.ip_forward=1"], check=True)
        for node, addrs in (("c", (f"{C4}/24", f"{C6}/64")), ("u", (f"{U4}/24", f"{U6}/64"))):
            for a in addrs:
                subprocess.run(["ip", "-n", names[node], "addr", "add", a, "dev", "eth0",
                                "nodad"], check=True)
        yield names
    finally:
        remove_namespaces(names.values())


def _env(ns: str, **extra: str) -> dict[str, str]:
    params = {"namespace": ns, "addresses": ADDRESSES, "arp_count": "2", **extra}
    return ocf_env(**params)


def _held(ns: str) -> dict[str, bool]:
    return {ip: vip_present(ns, port, ip) for ip, port in VIPS.items()}


def _public_routes(ns: str) -> set[tuple[int, str | None, str | None, int]]:
    """(family, gateway, source, metric) of the VIP agent's default routes in `ns`."""
    with IPRoute(netns=ns, flags=0) as ip:
        return {(m["family"], m.get_attr("RTA_GATEWAY"), m.get_attr("RTA_PREFSRC"),
                 m.get_attr("RTA_PRIORITY") or 0)
                for m in ip.get_routes(table=254)
                if m["dst_len"] == 0 and m["proto"] == RTPROT_ENVROUTER_VIP}


def _routes_go(ns: str) -> bool:
    """No public route is left, within the stop's linger of the IPv6 one (arp_count + 1 s)."""
    return bool(poll(lambda: _public_routes(ns) == set(), 15, interval=0.1))


def _neighbour(ns: str, address: str) -> str | None:
    """The link-layer address of `ns`'s neighbour entry for `address`, read without sending
    anything."""
    with IPRoute(netns=ns, flags=0) as ip:
        for m in ip.get_neighbours():
            if m.get_attr("NDA_DST") == address:
                return m.get_attr("NDA_LLADDR")
    return None


ROUTES = {(2, U4, PUB4, METRIC4), (10, U6, PUB6, METRIC6)}


def _learn(names: dict[str, str], side: str) -> None:
    """C and U reach every VIP once, so that each has a neighbour entry for it on `side`."""
    for node, dst in (("c", MGMT4), ("c", MGMT6), ("u", PUB4), ("u", PUB6)):
        subprocess.run(["ip", "netns", "exec", names[node], "ping", "-n", "-q", "-c", "1", "-W",
                        "2", dst], check=True, capture_output=True)
    for node, dst, port in (("c", MGMT4, "vr-mgmt"), ("c", MGMT6, "vr-mgmt"),
                            ("u", PUB4, "vr-pub"), ("u", PUB6, "vr-pub")):
        assert _neighbour(names[node], dst) == mac(names[side], port)


def test_all_vips_move_as_one_resource_and_are_announced(net, vip_agent):
    a, b = net["a"], net["b"]
    assert run_agent(vip_agent, "monitor", _env(a)).returncode == 7
    out = run_agent(vip_agent, "start", _env(a))
    assert out.returncode == 0, out.stderr
    assert all(_held(a).values()) and not any(_held(b).values())
    assert poll(lambda: _public_routes(a) == ROUTES, timeout=10)  # the IPv6 source may follow
    assert run_agent(vip_agent, "monitor", _env(a)).returncode == 0
    _learn(net, "a")

    # one address lost: failed, not "running" and not "stopped"
    subprocess.run(["ip", "-n", a, "addr", "del", f"{PUB6}/64", "dev", "vr-pub"], check=True)
    out = run_agent(vip_agent, "monitor", _env(a))
    assert out.returncode == 1 and "3 of the 4 VIPs held" in out.stderr
    # the recovery's start completes it
    assert run_agent(vip_agent, "start", _env(a)).returncode == 0
    assert all(_held(a).values())

    # the move: one stop on A, one start on B
    assert run_agent(vip_agent, "stop", _env(a)).returncode == 0
    # the IPv4 route goes with its address; the IPv6 one arp_count + 1 s later (the old holder
    # forwards meanwhile: tests/netns/test_old_holder_forwards.py)
    assert not any(_held(a).values()) and (2, U4, PUB4, METRIC4) not in _public_routes(a)
    assert run_agent(vip_agent, "monitor", _env(a)).returncode == 7
    assert run_agent(vip_agent, "stop", _env(a)).returncode == 0  # again: nothing to do
    out = run_agent(vip_agent, "start", _env(b))
    assert out.returncode == 0, out.stderr
    assert all(_held(b).values())
    assert poll(lambda: _public_routes(b) == ROUTES, timeout=10)
    # announced: every neighbour entry of C and U follows its VIP to B without C or U sending
    # a thing (gratuitous ARP for IPv4, unsolicited NA with override for IPv6)
    for node, dst, port in (("c", MGMT4, "vr-mgmt"), ("c", MGMT6, "vr-mgmt"),
                            ("u", PUB4, "vr-pub"), ("u", PUB6, "vr-pub")):
        assert poll(lambda n=node, d=dst, p=port: _neighbour(net[n], d) == mac(b, p),
                    timeout=10), (node, dst)
    # a recurring monitor re-asserts a public route that went; a probe only reports
    recurring = {**_env(b), "OCF_RESKEY_CRM_meta_interval": "2000"}
    subprocess.run(["ip", "-n", b, "route", "del", "default", "via", U4, "dev", "vr-pub",
                    "metric", str(METRIC4), "proto", str(RTPROT_ENVROUTER_VIP)], check=True)
    assert run_agent(vip_agent, "monitor", _env(b)).returncode == 0
    assert (2, U4, PUB4, METRIC4) not in _public_routes(b)  # a probe only reports
    assert run_agent(vip_agent, "monitor", recurring).returncode == 0
    assert _public_routes(b) == ROUTES  # re-asserted
    assert run_agent(vip_agent, "stop", _env(b)).returncode == 0
    assert not any(_held(b).values()) and _routes_go(b)


def test_a_start_that_finds_some_vips_there_completes_them(net, vip_agent):
    """A restart in place (the recovery of a partial monitor) finds an IPv6 VIP present: its
    add fails, so every address is added nodad (idempotent) and na6 sends every NA."""
    a = net["a"]
    subprocess.run(["ip", "-n", a, "addr", "add", f"{MGMT6}/64", "dev", "vr-mgmt", "nodad"],
                   check=True)
    out = run_agent(vip_agent, "start", _env(a))
    assert out.returncode == 0, out.stderr
    assert all(_held(a).values())
    assert poll(lambda: _public_routes(a) == ROUTES, timeout=10)
    assert run_agent(vip_agent, "stop", _env(a)).returncode == 0
    assert not any(_held(a).values()) and _routes_go(a)


def test_the_vip_agent_passes_ocf_tester_with_the_list(net):
    out = ocf_tester(net["a"], {"namespace": net["a"], "addresses": ADDRESSES,
                                "arp_count": "1"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert not any(_held(net["a"]).values()) and _routes_go(net["a"])
