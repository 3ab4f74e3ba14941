"""The VIP agent with an IPv6 VIP, for real: two "vrouter" namespaces A and B and a neighbour C
on one bridge. The VIP is usable at once (never left tentative): the agent turns duplicate
address detection off on the port and lets the kernel announce the address (ndisc_notify), or,
where it cannot (DAD on for `all`), adds it nodad and sends the first NA with na6. Either way
the unsolicited neighbour advertisements (router and override flags) make C's neighbour entry
follow the VIP from A to B before C sends anything, so C reaches it at once; the public IPv6
default route goes with the VIP (metric 1, source the VIP) and leaves with it; ocf-tester
passes."""

from __future__ import annotations

import secrets
import subprocess

import pytest
from cleanup import remove_namespaces
from pyroute2 import IPRoute, NetNS, netns
from vip_helpers import mac, ocf_env, ocf_tester, run_agent

from envrouter.agent.netlink import RTPROT_ENVROUTER_VIP
from envrouter.agent.vip import vip_present
from envrouter.waiting import poll

pytestmark = [pytest.mark.root, pytest.mark.timeout(180)]

VIP6, PLEN = "fd00:99::2", "64"
C_ADDR = "fd00:99::50"  # the neighbour: the public gateway too
NTF_ROUTER = 0x80
IFA_F_NODAD, IFA_F_TENTATIVE = 0x02, 0x40
PORT = "vr-pub"


@pytest.fixture
def net():
    tag = secrets.token_hex(3)
    names = {k: f"ert-{tag}-{k}" for k in ("sw", "a", "b", "c")}
    try:
        for ns in names.values():
            netns.create(ns)
            with NetNS(ns) as n:
                n.link("set", index=n.link_lookup(ifname="lo")[0], state="up")
        with NetNS(names["sw"]) as sw:
            sw.link("add", ifname="br0", kind="bridge")
            sw.link("set", index=sw.link_lookup(ifname="br0")[0], state="up")
        for node in ("a", "b", "c"):
            inner = "eth0" if node == "c" else PORT
            with NetNS(names["sw"]) as sw:
                sw.link("add", ifname=f"p-{node}", kind="veth",
                        peer={"ifname": inner, "net_ns_fd": names[node]})
                idx = sw.link_lookup(ifname=f"p-{node}")[0]
                sw.link("set", index=idx, master=sw.link_lookup(ifname="br0")[0], state="up")
            with NetNS(names[node]) as n:
                n.link("set", index=n.link_lookup(ifname=inner)[0], state="up")
            if node != "c":  # a router namespace, as the vrouter agent sets it up
                subprocess.run(["ip", "netns", "exec", names[node], "sysctl", "-qw",
                                "net.ipv6.conf.all.forwarding=1"], check=True)
        subprocess.run(["ip", "-n", names["c"], "addr", "add", f"{C_ADDR}/64", "dev", "eth0",
                        "nodad"], check=True)
        yield names
    finally:
        remove_namespaces(names.values())


def _env(ns: str, **extra: str) -> dict[str, str]:
    params = {"namespace": ns, "port": PORT, "ip": VIP6, "cidr_netmask": PLEN,
              "gateway": C_ADDR, "arp_count": "3", **extra}
    return ocf_env(**params)


def _neighbour(ns: str, address: str) -> tuple[str | None, int] | None:
    """(link-layer address, flags) of `ns`'s neighbour entry for `address`, read without
    sending anything."""
    with IPRoute(netns=ns, flags=0) as ip:
        for m in ip.get_neighbours(family=10):
            if m.get_attr("NDA_DST") == address:
                return m.get_attr("NDA_LLADDR"), m["flags"]
    return None


def _address_flags(ns: str, address: str) -> int | None:
    with IPRoute(netns=ns, flags=0) as ip:
        for m in ip.get_addr(family=10):
            if m.get_attr("IFA_ADDRESS") == address:
                return m.get_attr("IFA_FLAGS") or m["flags"]
    return None


def _public_routes(ns: str) -> list[tuple[str | None, str | None, int]]:
    with IPRoute(netns=ns, flags=0) as ip:
        return [(m.get_attr("RTA_GATEWAY"), m.get_attr("RTA_PREFSRC"),
                 m.get_attr("RTA_PRIORITY") or 0)
                for m in ip.get_routes(family=10, table=254)
                if m["dst_len"] == 0 and m["proto"] == RTPROT_ENVROUTER_VIP]


def _sysctl(ns: str, key: str, value: str | None = None) -> str:
    arg = key if value is None else f"{key}={value}"
    return subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-n" if value is None else "-qw",
                           arg], check=True, capture_output=True, text=True).stdout.strip()


def _routes_go(ns: str) -> bool:
    """The public route is gone, or goes within the stop's linger (arp_count + 1 s)."""
    return bool(poll(lambda: _public_routes(ns) == [], 15, interval=0.1))


def _ping(ns: str) -> bool:
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-6", "-n", "-q", "-c", "1", "-W",
                           "1", VIP6], capture_output=True).returncode == 0


def test_an_ipv6_vip_moves_and_is_reached_at_once(net, vip_agent):
    a, b, c = net["a"], net["b"], net["c"]
    mac_a, mac_b = mac(a, PORT), mac(b, PORT)
    assert run_agent(vip_agent, "start", _env(a)).returncode == 0
    # the kernel's announcement: no DAD on the port, the address added without nodad and
    # usable at once (not tentative), an unsolicited NA from the kernel (ndisc_notify)
    flags = _address_flags(a, VIP6)
    assert flags is not None and not flags & IFA_F_NODAD and not flags & IFA_F_TENTATIVE
    assert _sysctl(a, f"net.ipv6.conf.{PORT}.accept_dad") == "0"
    assert _sysctl(a, f"net.ipv6.conf.{PORT}.ndisc_notify") == "1"
    assert _public_routes(a) == [(C_ADDR, VIP6, 1)]  # metric 1, not the kernel's 1024
    assert run_agent(vip_agent, "monitor", _env(a)).returncode == 0
    assert _ping(c)
    assert (_neighbour(c, VIP6) or (None, 0))[0] == mac_a

    assert run_agent(vip_agent, "stop", _env(a)).returncode == 0
    assert not vip_present(a, PORT, VIP6)
    # the stop's detached process removes it arp_count + 1 s later (the old holder forwards
    # meanwhile; the kernel would keep it for good, with the source cleared)
    assert _public_routes(a) in ([(C_ADDR, None, 1)], [])
    assert _routes_go(a)
    assert run_agent(vip_agent, "monitor", _env(a)).returncode == 7
    # one announcement: the kernel's alone (na6 would send only repeats, a second apart)
    assert run_agent(vip_agent, "start", _env(b, arp_count="1")).returncode == 0
    # the NA, not unreachability detection (C's entry is still reachable for 15-45 s): C's
    # entry points at B before C sends anything, and says the VIP is a router
    moved = poll(lambda: (n := _neighbour(c, VIP6)) is not None and n[0] == mac_b and n, 5)
    assert moved, _neighbour(c, VIP6)
    assert moved[1] & NTF_ROUTER
    assert _ping(c)  # the first echo: no wait
    assert _public_routes(b) == [(C_ADDR, VIP6, 1)]

    # a recurring monitor re-asserts the public route, a probe only reports
    subprocess.run(["ip", "-n", b, "-6", "route", "del", "default", "via", C_ADDR, "dev", PORT,
                    "metric", "1", "proto", str(RTPROT_ENVROUTER_VIP)], check=True)
    assert run_agent(vip_agent, "monitor", _env(b)).returncode == 0 and _public_routes(b) == []
    recurring = _env(b, CRM_meta_interval="2000")
    assert run_agent(vip_agent, "monitor", recurring).returncode == 0
    assert _public_routes(b) == [(C_ADDR, VIP6, 1)]
    assert run_agent(vip_agent, "stop", _env(b)).returncode == 0
    assert run_agent(vip_agent, "stop", _env(b)).returncode == 0  # again
    assert not vip_present(b, PORT, VIP6) and _routes_go(b)
    assert run_agent(vip_agent, "monitor", recurring).returncode == 7
    assert _public_routes(b) == []  # nothing re-added without the address


def _tentative_vip(ns: str) -> None:
    """The VIP on A's port, still in duplicate address detection (five probes a second apart:
    tentative for 5 s and more), as a start finds it when the kernel has not completed it."""
    _sysctl(ns, f"net.ipv6.conf.{PORT}.accept_dad", "1")
    _sysctl(ns, f"net.ipv6.conf.{PORT}.dad_transmits", "5")
    subprocess.run(["ip", "-n", ns, "addr", "add", f"{VIP6}/{PLEN}", "dev", PORT], check=True)
    assert (_address_flags(ns, VIP6) or 0) & IFA_F_TENTATIVE


def test_the_public_route_does_not_wait_for_the_kernel_to_complete_the_vip(net, vip_agent):
    """A route whose source is a tentative address is refused ("Invalid source address"); the
    start does not wait for the kernel (it waited up to 1 s, then failed): the route via the
    gateway is in when the start returns, forwarding needs no source, and the source follows
    once the address is usable."""
    a = net["a"]
    _tentative_vip(a)
    assert run_agent(vip_agent, "start", _env(a)).returncode == 0
    assert (_address_flags(a, VIP6) or 0) & IFA_F_TENTATIVE  # not completed yet
    assert _public_routes(a) == [(C_ADDR, None, 1)]
    assert poll(lambda: _public_routes(a) == [(C_ADDR, VIP6, 1)], 20, interval=0.1), \
        _public_routes(a)
    assert not (_address_flags(a, VIP6) or 0) & IFA_F_TENTATIVE
    assert _ping(net["c"])
    assert run_agent(vip_agent, "stop", _env(a)).returncode == 0
    assert not vip_present(a, PORT, VIP6) and _routes_go(a)


def test_a_stop_before_the_vip_was_usable_leaves_no_route_behind(net, vip_agent):
    """The detached process that sets the route's source cannot bring the route back after a
    stop: a route's source must be a local address."""
    a = net["a"]
    _tentative_vip(a)
    assert run_agent(vip_agent, "start", _env(a)).returncode == 0
    assert _public_routes(a) == [(C_ADDR, None, 1)]
    assert run_agent(vip_agent, "stop", _env(a)).returncode == 0
    assert not vip_present(a, PORT, VIP6) and _routes_go(a)
    # its tries end within 5 s: nothing comes back meanwhile or after
    assert not poll(lambda: _public_routes(a), 7, interval=0.2)


def test_where_dad_stays_on_the_vip_is_added_nodad_and_announced_by_na6(net, vip_agent):
    """DAD on for `all` in B (the port's own setting would not turn it off): the agent cannot
    rely on the kernel's announcement, adds the VIP nodad (never tentative) and sends the first
    NA itself; C's entry still follows the VIP to B. A start that finds the VIP already there
    announces it again."""
    a, b, c = net["a"], net["b"], net["c"]
    mac_a, mac_b = mac(a, PORT), mac(b, PORT)
    _sysctl(b, "net.ipv6.conf.all.accept_dad", "1")
    assert run_agent(vip_agent, "start", _env(a)).returncode == 0
    assert _ping(c) and (_neighbour(c, VIP6) or (None, 0))[0] == mac_a
    assert run_agent(vip_agent, "stop", _env(a)).returncode == 0
    assert run_agent(vip_agent, "start", _env(b)).returncode == 0
    flags = _address_flags(b, VIP6)
    assert flags is not None and flags & IFA_F_NODAD and not flags & IFA_F_TENTATIVE
    moved = poll(lambda: (n := _neighbour(c, VIP6)) is not None and n[0] == mac_b and n, 5)
    assert moved, _neighbour(c, VIP6)
    assert moved[1] & NTF_ROUTER
    assert _ping(c)
    assert _public_routes(b) == [(C_ADDR, VIP6, 1)]
    # C's entry pointed at A again: a second start on B (the VIP present) announces it anew
    subprocess.run(["ip", "-n", c, "-6", "neigh", "replace", VIP6, "lladdr", mac_a, "dev",
                    "eth0", "nud", "stale"], check=True)
    assert run_agent(vip_agent, "start", _env(b)).returncode == 0
    moved = poll(lambda: (n := _neighbour(c, VIP6)) is not None and n[0] == mac_b and n, 5)
    assert moved, _neighbour(c, VIP6)
    assert run_agent(vip_agent, "stop", _env(b)).returncode == 0
    assert not vip_present(b, PORT, VIP6) and _routes_go(b)


def test_the_ipv6_vip_agent_passes_ocf_tester(net):
    out = ocf_tester(net["a"], {"namespace": net["a"], "port": PORT, "ip": VIP6,
                                "cidr_netmask": PLEN, "gateway": C_ADDR, "arp_count": "1"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert not vip_present(net["a"], PORT, VIP6) and _routes_go(net["a"])
