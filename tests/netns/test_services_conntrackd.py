"""conntrackd sync for real between vrouter-like namespaces on one management bridge.

Two controllers sync over UDP unicast (FTFW), three over multicast (NOTRACK) (transport
"auto"): a flow inserted into one namespace's kernel table reaches the others' kernel tables
directly (no external cache), so a namespace taking over has it with nothing to commit.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cleanup import remove_namespaces, stop_daemons

from envrouter.document import DocPeer, DocVip, DocVrouter
from envrouter.services import conntrackd
from envrouter.waiting import wait_until

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]

SERVER = "198.51.100.1"


def _vr(ns: str, i: int, n: int) -> DocVrouter:
    def vip(name: str, role: str, addr: str) -> DocVip:
        return DocVip(name=name, network=role, role=role, namespace=ns, address=addr,
                      prefixlen=24, user_defined=False)

    return DocVrouter(
        namespace=ns, management_bridge="br-mgmt", public_bridge="br-ex",
        management_cidr="10.20.0.0/24", public_cidr="10.30.0.0/24", public_gateway="10.30.0.1",
        vip_management=vip("vrouter", "management", "10.20.0.2"),
        vip_public=vip("vrouter_pub", "public", "10.30.0.2"),
        host_link_cidr="169.254.77.0/30", upstream_dns=[], upstream_ntp=[], domain=None,
        nat=True, conntrack_sync=True, self_management_address=f"10.20.0.1{i}",
        self_public_address=f"10.30.0.1{i}",
        # IPAM-like addresses that share no octet pattern with the host addresses
        namespace_management_address=f"10.20.0.{200 + i * 7}",
        peers=[DocPeer(hostname=f"ctl{j}", management_address=f"10.20.0.1{j}",
                       namespace_address=f"10.20.0.{200 + j * 7}")
               for j in range(1, n + 1) if j != i],
    )


@contextlib.contextmanager
def sync_world(count: int, make_vr: Callable[[DocVrouter], DocVrouter] = lambda vr: vr):
    """`count` vrouter-like namespaces on one management bridge, each with its conntrackd
    running (its document from `_vr`, passed through `make_vr`); yields (vrs, daemons) and
    removes all of it, even when the test fails."""
    from pyroute2 import NetNS, netns

    prefix = f"ert-{secrets.token_hex(3)}"
    sw = f"{prefix}-sw"
    run_root = Path(f"/run/{prefix}")
    names = [f"{prefix}-vr{i}" for i in range(1, count + 1)]
    daemons = []
    try:
        netns.create(sw)
        with NetNS(sw) as s:
            s.link("add", ifname="br-mgmt", kind="bridge", br_stp_state=0,
                   br_forward_delay=0)
            s.link("set", index=s.link_lookup(ifname="br-mgmt")[0], state="up")
        vrs = []
        for i, ns in enumerate(names, start=1):
            netns.create(ns)
            vr = make_vr(_vr(ns, i, count))
            vrs.append(vr)
            with NetNS(ns) as a:
                a.link("set", index=a.link_lookup(ifname="lo")[0], state="up")
                a.link("add", ifname="vr-mgmt", kind="veth",
                       peer={"ifname": f"p{i}", "net_ns_fd": sw})
                idx = a.link_lookup(ifname="vr-mgmt")[0]
                a.addr("add", index=idx, address=str(vr.namespace_management_address),
                       prefixlen=24)
                a.link("set", index=idx, state="up")
            with NetNS(sw) as s:
                s.link("set", index=s.link_lookup(ifname=f"p{i}")[0],
                       master=s.link_lookup(ifname="br-mgmt")[0], state="up")
        for vr in vrs:
            d = conntrackd.daemon(vr, run_root=str(run_root / "run"),
                                  log_root=str(run_root / "log"))
            daemons.append(d)
            d.start()
        yield vrs, daemons
    finally:
        stop_daemons(daemons)
        remove_namespaces([*names, sw])
        shutil.rmtree(run_root, ignore_errors=True)


@pytest.fixture
def controllers(request):
    with sync_world(request.param) as world:
        yield world


def _insert_flow(ns: str, sport: int) -> None:
    subprocess.run(
        ["ip", "netns", "exec", ns, "conntrack", "-I", "-p", "tcp", "-s", "10.20.0.50",
         "-d", SERVER, "--sport", str(sport), "--dport", "80", "--state", "ESTABLISHED",
         "--timeout", "600", "-u", "SEEN_REPLY,ASSURED"],
        check=True, capture_output=True)


def _kernel_has(ns: str, sport: int) -> bool:
    out = subprocess.run(["ip", "netns", "exec", ns, "conntrack", "-L", "-p", "tcp",
                          "--orig-port-src", str(sport)], capture_output=True, text=True)
    return SERVER in out.stdout


@pytest.mark.parametrize("controllers", [2, 3], indirect=True, ids=["unicast", "multicast"])
def test_flow_reaches_every_peers_kernel_table(controllers):
    vrs, daemons = controllers
    expected = "UDP {" if len(vrs) == 2 else "Multicast {"
    assert expected in (daemons[0].paths.file("conntrackd.conf")).read_text()
    sport = 40000 + secrets.randbelow(20000)
    _insert_flow(vrs[0].namespace, sport)
    for vr in vrs[1:]:
        # injected on arrival (DisableExternalCache On): a namespace taking over has it
        assert wait_until(lambda vr=vr: _kernel_has(vr.namespace, sport), 15), (
            f"flow not in the kernel table of {vr.namespace}")
    # and a second flow from another peer (a later holder) reaches the first one too: with
    # several senders on the multicast group, nothing is dropped for its sequence number
    sport2 = sport + 1
    _insert_flow(vrs[1].namespace, sport2)
    assert wait_until(lambda: _kernel_has(vrs[0].namespace, sport2), 15)


def _delete_flow(ns: str, sport: int) -> None:
    subprocess.run(["ip", "netns", "exec", ns, "conntrack", "-D", "-p", "tcp",
                    "--orig-port-src", str(sport)], check=True, capture_output=True)


@pytest.mark.parametrize("controllers", [3], indirect=True, ids=["multicast"])
def test_a_rejoining_instance_keeps_and_resends_no_ended_flow(controllers):
    """A controller whose daemon was down (standby) keeps, in its kernel table, flows the
    holder ended meanwhile, and its restarted daemon fills its internal cache from that table:
    without `rejoin` it kept the ended flow (a new flow on that port could not be injected)
    and resent it to every peer at the next resync request (docs/ha.md, "At scale")."""
    vrs, daemons = controllers
    holder, peer, back = vrs
    d_peer, d_back = daemons[1], daemons[2]
    ended = 40000 + secrets.randbelow(20000)
    _insert_flow(holder.namespace, ended)
    assert wait_until(lambda: _kernel_has(back.namespace, ended), 15)
    d_back.stop()
    _delete_flow(holder.namespace, ended)  # its end reaches the peers that listen
    assert wait_until(lambda: not _kernel_has(peer.namespace, ended), 15)
    assert _kernel_has(back.namespace, ended)  # missed by the stopped daemon
    d_back.start()
    assert conntrackd.rejoin(d_back.paths, holds_vips=False) == [
        "-f internal", "conntrack -F", "-n"]
    assert not _kernel_has(back.namespace, ended)
    stats = conntrackd.command(d_back.paths, "-s")
    assert conntrackd.internal_cache_size(stats) == 0, stats
    # a resync request from another peer: the rejoined instance answers with nothing ended
    conntrackd.command(d_peer.paths, "-n")
    log = d_back.paths.log_file
    assert wait_until(lambda: "resync requested by other node" in log.read_text(), 15)
    # what it sends next travels behind whatever it queued for that request
    marker = ended + 1 if ended < 59999 else ended - 1
    _insert_flow(back.namespace, marker)
    assert wait_until(lambda: _kernel_has(peer.namespace, marker), 15)
    assert not _kernel_has(peer.namespace, ended)
    assert not _kernel_has(holder.namespace, ended)


# The NAT of the flows below: the public VIP of `_vr`. These tests need envrouter's conntrackd
# (packaging/conntrackd, `make conntrackd-install`); Debian's 1.4.7 fails both (docs/ha.md "At
# scale": a peer's copy on another NAT port, "File exists" for a port a stale copy holds).
PUBLIC_VIP = "10.30.0.2"


def _insert_nat_flow(ns: str, client: str, sport: int, dport: int, nat_port: int | None) -> None:
    nat = PUBLIC_VIP if nat_port is None else f"{PUBLIC_VIP}:{nat_port}"
    subprocess.run(
        ["ip", "netns", "exec", ns, "conntrack", "-I", "-p", "tcp", "-s", client, "-d", SERVER,
         "--sport", str(sport), "--dport", str(dport), "--state", "ESTABLISHED",
         "--timeout", "600", "-u", "SEEN_REPLY,ASSURED", "-n", nat],
        check=True, capture_output=True)


def _nat_ports(ns: str, client: str, sport: int, dport: int) -> list[int]:
    """The NAT ports (the reply's destination port) of this namespace's entries for the flow
    client:sport → SERVER:dport."""
    out = subprocess.run(
        ["ip", "netns", "exec", ns, "conntrack", "-L", "-p", "tcp", "-s", client,
         "--orig-port-src", str(sport), "--orig-port-dst", str(dport)],
        capture_output=True, text=True).stdout
    return [int(line.split("dport=")[2].split()[0]) for line in out.splitlines()
            if "dport=" in line]


def _ports() -> tuple[int, int]:
    base = 20000 + 2 * secrets.randbelow(10000)
    return base, base + 1


@pytest.mark.parametrize("controllers", [3], indirect=True, ids=["multicast"])
def test_a_peer_copies_a_kept_nat_port_whatever_its_own_nat_would_choose(controllers):
    """A flow whose client port the holder's NAT kept reaches every peer on that port, even
    where the peer's own NAT would choose another: here it has a mapping for the same client
    address and port towards another server port (the kernel reuses such a mapping first,
    `find_appropriate_src`), as a peer has after creating the holder's entries in another
    order. conntrackd 1.4.7 sent no port for a kept one, and the peer's copy took the other
    mapping's port: after a failover the server's packets met no entry."""
    vrs, _ = controllers
    holder, peers = vrs[0], vrs[1:]
    client = "10.20.0.50"
    sport, other_port = _ports()
    # the other mapping: the holder's NAT had to give that flow another port (synced with it)
    _insert_nat_flow(holder.namespace, client, sport, 81, other_port)
    for vr in peers:
        assert wait_until(lambda vr=vr: _nat_ports(vr.namespace, client, sport, 81)
                          == [other_port], 15)
    # the holder's new flow from the same client port keeps that port
    _insert_nat_flow(holder.namespace, client, sport, 80, sport)
    assert _nat_ports(holder.namespace, client, sport, 80) == [sport]
    for vr in peers:
        assert wait_until(lambda vr=vr: _nat_ports(vr.namespace, client, sport, 80), 15), (
            f"flow not in the kernel table of {vr.namespace}")
        assert _nat_ports(vr.namespace, client, sport, 80) == [sport], vr.namespace


@pytest.mark.parametrize("controllers", [3], indirect=True, ids=["multicast"])
def test_a_peer_replaces_the_stale_copy_holding_a_new_flows_nat_port(controllers):
    """A peer's copy of an ended flow still holds a NAT port (it missed the end: its daemon
    was down, or the message was lost) when the holder gives that port to a new flow. The
    peer deletes the stale copy and creates the new flow on the holder's port; conntrackd
    1.4.7 gave up ("could not add new ct entry ...: File exists") or let its own NAT choose
    another port, and after a failover to that peer the new flow was lost."""
    vrs, daemons = controllers
    holder, peers = vrs[0], vrs[1:]
    nat_port, _ = _ports()
    stale_client, new_client = "10.20.0.51", "10.20.0.52"
    _insert_nat_flow(holder.namespace, stale_client, 5000, 80, nat_port)
    for vr in peers:
        assert wait_until(lambda vr=vr: _nat_ports(vr.namespace, stale_client, 5000, 80)
                          == [nat_port], 15)
    # the flow ends on the holder while its daemon is down: the peers keep their copies
    daemons[0].stop()
    subprocess.run(["ip", "netns", "exec", holder.namespace, "conntrack", "-D", "-p", "tcp",
                    "-s", stale_client, "--orig-port-src", "5000"], check=True,
                   capture_output=True)
    daemons[0].start()
    assert all(_nat_ports(vr.namespace, stale_client, 5000, 80) == [nat_port] for vr in peers)
    # the holder's NAT gives the port, free again there, to a new flow from that client port
    _insert_nat_flow(holder.namespace, new_client, nat_port, 80, nat_port)
    for vr in peers:
        assert wait_until(lambda vr=vr: _nat_ports(vr.namespace, new_client, nat_port, 80),
                          15), f"new flow not in the kernel table of {vr.namespace}"
        assert _nat_ports(vr.namespace, new_client, nat_port, 80) == [nat_port], vr.namespace
        assert _nat_ports(vr.namespace, stale_client, 5000, 80) == [], vr.namespace


# A flow that reuses an ended flow's tuple (the client port comes round again while the holder
# still tracks the old flow in TIME_WAIT: conntrack keeps TIME_WAIT 120 s, a client socket
# 60 s). The kernel ends the old entry and creates a new one; when its event socket is full it
# delivers the old entry's destroy event late (retried from 1 s on), after the new flow's own
# events. conntrackd's cache finds objects by tuple: the late destroy ended the new flow's
# object and sent its deletion to every peer (docs/ha.md "At scale", fifth pass).
CLIENT = "10.20.0.50"
UPSTREAM = "10.30.0.1"  # the server, on the holder's public side
SMALL_EVENT_BUFFER = 256 * 1024


def _ns_run(ns: str, *argv: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], check=True,
                          capture_output=True, text=True).stdout


def _states(ns: str, sport: int) -> list[str]:
    """The TCP states of this namespace's entries for CLIENT:sport → UPSTREAM:5100."""
    out = subprocess.run(
        ["ip", "netns", "exec", ns, "conntrack", "-L", "-p", "tcp", "-s", CLIENT,
         "--orig-port-src", str(sport), "--orig-port-dst", "5100"],
        capture_output=True, text=True).stdout
    return [line.split()[3] for line in out.splitlines() if "dport=" in line]


def _event_socket_drops(ns: str) -> int:
    """Messages the kernel could not queue to the namespace's conntrack event listeners (the
    Drops column of /proc/net/netlink: protocol 12, netfilter, a socket in groups)."""
    drops = 0
    for line in _ns_run(ns, "cat", "/proc/net/netlink").splitlines()[1:]:
        f = line.split()
        if f[1] == "12" and int(f[3], 16) != 0:
            drops += int(f[8])
    return drops


def _in_ns(ns: str, make: Callable[[], object]):
    from pyroute2 import netns

    netns.pushns(ns)
    try:
        return make()
    finally:
        netns.popns()


def _connect(cl: str, listener, sockets: list, source: str, sport: int):
    """A TCP connection from `source`:`sport` in the client namespace to the server's
    listener, one byte exchanged; both ends recorded in `sockets` (closed by the test)."""
    import socket

    def make() -> socket.socket:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((source, sport))
        return s

    c = _in_ns(cl, make)
    c.settimeout(10)
    sockets.append(c)
    c.connect((UPSTREAM, 5100))
    s, _ = listener.accept()
    s.settimeout(10)
    sockets.append(s)
    c.sendall(b"a")
    assert s.recv(1) == b"a"
    return c, s


def _end_in_time_wait(vrs: list[DocVrouter], client, server, sport: int) -> None:
    """The server ends the flow first (its side keeps TIME_WAIT, the client port is free);
    every namespace's entry reaches TIME_WAIT."""
    server.close()
    assert client.recv(1) == b""
    client.close()
    for vr in vrs:
        assert wait_until(lambda vr=vr: _states(vr.namespace, sport) == ["TIME_WAIT"],
                          15), (vr.namespace, _states(vr.namespace, sport))


@contextlib.contextmanager
def nat_path(holder: DocVrouter):
    """A client on the management bridge and a server behind the holder's public side, the
    holder forwarding and SNATing to the public VIP, like a vrouter namespace."""
    from pyroute2 import NetNS, netns

    prefix = holder.namespace.rsplit("-", 1)[0]
    sw, cl, srv = f"{prefix}-sw", f"{prefix}-cl", f"{prefix}-srv"
    try:
        netns.create(cl)
        netns.create(srv)
        with NetNS(cl) as c:
            c.link("set", index=c.link_lookup(ifname="lo")[0], state="up")
            c.link("add", ifname="eth0", kind="veth", peer={"ifname": "pcl", "net_ns_fd": sw})
            idx = c.link_lookup(ifname="eth0")[0]
            c.addr("add", index=idx, address=CLIENT, prefixlen=24)
            c.link("set", index=idx, state="up")
            c.route("add", dst="0.0.0.0/0", gateway=str(holder.namespace_management_address))
        with NetNS(sw) as s:
            s.link("set", index=s.link_lookup(ifname="pcl")[0],
                   master=s.link_lookup(ifname="br-mgmt")[0], state="up")
        with NetNS(holder.namespace) as h:
            h.link("add", ifname="vr-ex", kind="veth", peer={"ifname": "eth0", "net_ns_fd": srv})
            idx = h.link_lookup(ifname="vr-ex")[0]
            h.addr("add", index=idx, address=PUBLIC_VIP, prefixlen=24)
            h.link("set", index=idx, state="up")
        with NetNS(srv) as u:
            u.link("set", index=u.link_lookup(ifname="lo")[0], state="up")
            idx = u.link_lookup(ifname="eth0")[0]
            u.addr("add", index=idx, address=UPSTREAM, prefixlen=24)
            u.link("set", index=idx, state="up")
        _ns_run(holder.namespace, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        subprocess.run(["ip", "netns", "exec", holder.namespace, "nft", "-f", "-"], check=True,
                       text=True, input=(
                           "table ip nat {\n chain post {\n"
                           "  type nat hook postrouting priority srcnat;\n"
                           f'  oifname "vr-ex" snat to {PUBLIC_VIP}\n }}\n}}\n'))
        yield cl, srv
    finally:
        remove_namespaces([cl, srv])


@pytest.fixture
def small_event_buffer(monkeypatch):
    # the holder's event socket is made small so that a few hundred flows fill it while its
    # daemon is paused (64 MiB in production: the same happens there under a burst)
    monkeypatch.setattr(conntrackd, "NETLINK_BUFFER", SMALL_EVENT_BUFFER)
    monkeypatch.setattr(conntrackd, "NETLINK_BUFFER_MAX", SMALL_EVENT_BUFFER)


def test_a_late_end_of_a_reused_tuples_old_flow_keeps_the_new_flow_on_the_peers(
        small_event_buffer):
    import os
    import signal
    import socket
    import threading

    with sync_world(3) as (vrs, daemons), nat_path(vrs[0]) as (cl, srv):
        holder, peers = vrs[0], vrs[1:]
        listener = _in_ns(srv, lambda: socket.create_server((UPSTREAM, 5100)))
        sockets: list[socket.socket] = [listener]

        def connect(sport: int) -> tuple[socket.socket, socket.socket]:
            return _connect(cl, listener, sockets, CLIENT, sport)

        try:
            sport = 40000 + secrets.randbelow(20000)
            c1, s1 = connect(sport)
            for vr in peers:
                assert wait_until(lambda vr=vr: _states(vr.namespace, sport) == ["ESTABLISHED"],
                                  15), _states(vr.namespace, sport)
            _end_in_time_wait(vrs, c1, s1, sport)
            # the holder's daemon falls behind: its event socket fills (UDP flows)
            pid = daemons[0].pid()
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
            try:
                udp = _in_ns(cl, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                sockets.append(udp)
                before = _event_socket_drops(holder.namespace)
                for port in range(1000, 6000):
                    udp.sendto(b"x", (UPSTREAM, port))
                    if port % 100 == 0 and _event_socket_drops(holder.namespace) > before:
                        break
                assert _event_socket_drops(holder.namespace) > before, "event socket not full"
                # the client port comes round again: the holder ends the TIME_WAIT entry (its
                # destroy event waits for room) and tracks the new flow
                c2, s2 = connect(sport)
                assert _states(holder.namespace, sport) == ["ESTABLISHED"]
            finally:
                os.kill(pid, signal.SIGCONT)
            # traffic on the new flow delivers its events as soon as there is room, while the
            # old entry's destroy is retried every 10 ms; the flow goes on exchanging data until
            # that destroy is delivered (no entry left that the table does not list)
            done = threading.Event()

            def exchange() -> None:
                while not done.is_set():
                    c2.sendall(b"b")
                    s2.recv(1)

            talker = threading.Thread(target=exchange, daemon=True)
            talker.start()
            try:
                assert wait_until(lambda: int(_ns_run(holder.namespace, "conntrack", "-C"))
                                  == len(_ns_run(holder.namespace, "conntrack", "-L")
                                         .splitlines()), 15)
            finally:
                done.set()
                talker.join(10)
            # what the holder's daemon did with it is on its way to the peers, ahead of this
            marker = sport + 1 if sport < 59999 else sport - 1
            _insert_nat_flow(holder.namespace, CLIENT, marker, 5100, marker)
            for vr in peers:
                assert wait_until(lambda vr=vr: _states(vr.namespace, marker), 15)
                assert _states(vr.namespace, sport) == ["ESTABLISHED"], vr.namespace
                assert _nat_ports(vr.namespace, CLIENT, sport, 5100) == [sport], vr.namespace
        finally:
            for s in sockets:
                s.close()


def test_a_reopened_tuple_reaches_the_peers_with_the_holders_new_nat_port():
    """A client port comes round again towards the same server port while the old flow is in
    TIME_WAIT on every controller, and the holder's NAT gives the new flow another port than
    the old one had (the old flow's port was itself a remap: another client address held the
    client port). conntrackd sent the new flow's first message as an update (its SYN_SENT,
    SYN_RECV and ESTABLISHED events come before the message leaves); a peer applied it to its
    TIME_WAIT copy in place and kept the old NAT port: after a failover to it the server's
    packets met no entry. The first message is now a new flow, which the peer puts in place
    of its copy."""
    import socket

    with sync_world(3) as (vrs, _daemons), nat_path(vrs[0]) as (cl, srv):
        from pyroute2 import NetNS

        holder, peers = vrs[0], vrs[1:]
        other = "10.20.0.51"  # a second client on the management network
        with NetNS(cl) as c:
            c.addr("add", index=c.link_lookup(ifname="eth0")[0], address=other, prefixlen=24)
        listener = _in_ns(srv, lambda: socket.create_server((UPSTREAM, 5100)))
        sockets: list[socket.socket] = [listener]

        def connect(source: str, sport: int) -> tuple[socket.socket, socket.socket]:
            return _connect(cl, listener, sockets, source, sport)

        try:
            sport = 40000 + secrets.randbelow(20000)
            connect(other, sport)  # holds the NAT port `sport` (the client port kept)
            c1, s1 = connect(CLIENT, sport)  # so this flow's NAT port is another one
            (old_port,) = _nat_ports(holder.namespace, CLIENT, sport, 5100)
            assert old_port != sport
            for vr in peers:
                assert wait_until(lambda vr=vr: _nat_ports(vr.namespace, CLIENT, sport, 5100)
                                  == [old_port], 15), vr.namespace
            _end_in_time_wait(vrs, c1, s1, sport)
            # the client port comes round again: the holder's NAT draws a new port (SNAT
            # draws at random when the client port is taken)
            for _ in range(20):
                connect(CLIENT, sport)
                (new_port,) = _nat_ports(holder.namespace, CLIENT, sport, 5100)
                if new_port != old_port:
                    break
                sockets[-1].close()
                sockets[-2].close()
            assert new_port != old_port
            for vr in peers:
                assert wait_until(lambda vr=vr: _states(vr.namespace, sport) == ["ESTABLISHED"],
                                  15), (vr.namespace, _states(vr.namespace, sport))
                assert wait_until(lambda vr=vr: _nat_ports(vr.namespace, CLIENT, sport, 5100)
                                  == [new_port], 15), (
                    vr.namespace, _nat_ports(vr.namespace, CLIENT, sport, 5100), new_port)
        finally:
            for s in sockets:
                s.close()
