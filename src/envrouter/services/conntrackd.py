"""conntrackd inside the vrouter namespace: configuration (pure) and process handling.

FTFW sync over the management network, from the namespace's own management address (allocated
by IPAM per controller, taken from the document, never derived from another address).
Transport: conntrackd's UDP channel has exactly one destination, and several UDP blocks are
redundant links (failover), not a fan-out. So with one peer we use UDP unicast to that peer's
namespace address, and with two or more peers multicast on the management port, sent from the
namespace address (``transport="auto"``). See docs/services.md.

Commands on a running daemon (``-c`` commit, ``-f`` flush, ``-R`` resync, ``-B`` bulk, ``-n``
request resync, ``-t`` shorten timers) go through its per-namespace UNIX socket, so they work
from any network namespace.

Only the VIP holder's instance may originate sync messages (docs/ha.md, "At scale"): any
instance sends the flows of its internal cache when a peer asks for a resync, and the end of
every flow in it when its own kernel copy times out. A starting daemon fills that cache from
its kernel table, which on a controller whose daemon was down (standby, restart) still holds
flows the holder has ended since. So an instance that does not hold the VIPs empties its
internal cache, drops its kernel copies and asks the holder for the current table
(``rejoin``), and keeps its cache empty (``internal_cache_size`` in the monitor).
"""

from __future__ import annotations

from envrouter.errors import InfraError, ValidationError
from envrouter.services.status import LOG_ROOT, RUN_ROOT, command_status

# Imported where used: the conntrackd OCF monitor (every 5 s on the VIP holder) imports this
# module and must not pay for pydantic, jinja2, subprocess or typing (docs/ha.md, "Agent cost").
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal

    from envrouter.document import DocVrouter
    from envrouter.services.process import Daemon, ServicePaths

    Transport = Literal["auto", "udp", "multicast"]

SERVICE = "conntrackd"
CONF = "conntrackd.conf"
LOCK = "lock"
SOCKET = "ctl"
DEFAULT_MULTICAST_GROUP = "225.0.0.50"
DEFAULT_PORT = 3780

# DisableExternalCache On: each peer writes the flows it receives into its own kernel table as
# they arrive, so a new holder already has every flow (nothing to commit when the VIPs move;
# the commit of an external cache took time growing with the table). The OCF agents and the
# layout follow this one switch (promote/demote commands, the VIP's commit). docs/ha.md.
EXTERNAL_CACHE = False
# sizes for ~200,000 tracked flows (the lab measures 100,000 + churn); conntrackd forces its
# socket buffers (SO_RCVBUFFORCE), so net.core.rmem_max does not cap them
HASH_SIZE = 65536
HASH_LIMIT = 262144
SOCKET_BUFFER = 16 * 1024 * 1024  # a resync of 100,000 flows is ~12 MB of messages
# the event socket: with reliable events (NO_ENOBUFS) conntrackd never learns of an overrun, so
# it never grows the buffer; an overrun delays a flow's destroy event (envrouter's conntrackd
# ignores it when a new flow has the tuple by then, docs/ha.md "At scale") and leaves other
# events to go out with the flow's next one. 8 MB overran (~46,000 drops in a 20,000 drill): a
# buffer costs memory only while events wait in it
NETLINK_BUFFER = 64 * 1024 * 1024
NETLINK_BUFFER_MAX = 64 * 1024 * 1024
RESEND_QUEUE = 262144


TEMPLATE = "services/templates/conntrackd.conf.j2"

def choose_transport(vr: DocVrouter, transport: Transport = "auto") -> Literal["udp", "multicast"]:
    if transport == "auto":
        return "udp" if len(vr.peers) == 1 else "multicast"
    if transport == "udp" and len(vr.peers) != 1:
        raise ValidationError(
            "conntrackd", "transport", f"udp needs exactly one peer, the document has "
            f"{len(vr.peers)}; use multicast"
        )
    if transport not in ("udp", "multicast"):
        raise ValidationError("conntrackd", "transport", f"unknown transport {transport!r}")
    return transport


def sync_mode(mode: Literal["udp", "multicast"]) -> Literal["ftfw", "notrack"]:
    """FTFW (acknowledged, resent) on a unicast channel, which has one sender; NOTRACK on the
    multicast group, which has one sender per controller: FTFW keeps a single "last sequence
    received" for all of them and drops every message numbered below it, so after a
    switchover the new holder's messages were dropped by the peers (conntrackd 1.4.7,
    sync-ftfw.c: SEQ_BEFORE -> MSG_DROP)."""
    return "ftfw" if mode == "udp" else "notrack"


def ignored_addresses(vr: DocVrouter) -> list[str]:
    """Flows to or from the namespace itself are not worth syncing (its own DNS/NTP answers,
    the sync traffic, the peers): loopback, its own addresses, the VIPs, the peers'."""
    addrs = ["127.0.0.1", str(vr.namespace_management_address)]
    addrs.append(str(vr.host_link_addresses[1]))  # the namespace's end of the host link
    addrs.append(str(vr.vip_management.address))
    addrs.append(str(vr.vip_public.address))
    for peer in vr.peers:
        addrs.append(str(peer.namespace_address))
    if vr.vip_management6 is not None and vr.vip_public6 is not None:
        # IPv6: loopback and the IPv6 VIPs (the namespace has no other IPv6 address of its own
        # but link-local ones, which forwarded flows never carry)
        addrs += ["::1", str(vr.vip_management6.address), str(vr.vip_public6.address)]
    seen: list[str] = []
    for a in addrs:
        if a not in seen:
            seen.append(a)
    return seen


def render_conntrackd_conf(
    vr: DocVrouter,
    *,
    lock_file: str,
    socket_path: str,
    log_file: str,
    transport: Transport = "auto",
    multicast_group: str = DEFAULT_MULTICAST_GROUP,
    port: int = DEFAULT_PORT,
) -> str:
    """The whole conntrackd.conf for this controller's namespace."""
    from envrouter.services.templating import absolute_paths, render_template

    self_addr = str(vr.namespace_management_address)
    mgmt_port = vr.management_port
    if not 1 <= port <= 65535:
        raise ValidationError("conntrackd", "port", f"{port} is not a UDP port")
    absolute_paths("conntrackd", lock_file=lock_file, socket_path=socket_path, log_file=log_file)
    mode = choose_transport(vr, transport)
    dest: str | None = None
    group: str | None = None
    if mode == "udp":
        peer = vr.peers[0]
        dest = str(peer.namespace_address)
    else:
        from envrouter.document import IPv4Address, parse_value

        group_address = parse_value(IPv4Address, "conntrackd", "multicast_group", multicast_group)
        group = str(group_address)
        if not group_address.is_multicast:
            raise ValidationError("conntrackd", "multicast_group", f"{group} is not multicast")
    return render_template(
        TEMPLATE,
        namespace=vr.namespace,
        mode=mode,
        self_addr=self_addr,
        dest=dest,
        group=group,
        port=port,
        mgmt_port=mgmt_port,
        log_file=log_file,
        lock_file=lock_file,
        socket_path=socket_path,
        ignored=[(("IPv6" if ":" in a else "IPv4"), a) for a in ignored_addresses(vr)],
        ipv6=vr.vip_management6 is not None,
        sync_mode=sync_mode(mode),
        external_cache=EXTERNAL_CACHE,
        resend_queue=RESEND_QUEUE,
        snd_buffer=SOCKET_BUFFER,
        rcv_buffer=SOCKET_BUFFER,
        hash_size=HASH_SIZE,
        hash_limit=HASH_LIMIT,
        netlink_buffer=NETLINK_BUFFER,
        netlink_buffer_max=NETLINK_BUFFER_MAX,
    )


def paths_for(
    vr: DocVrouter, *, run_root: str = RUN_ROOT, log_root: str = LOG_ROOT
) -> ServicePaths:
    from envrouter.services.process import service_paths

    return service_paths(vr.namespace, SERVICE, run_root=run_root, log_root=log_root)


def daemon(
    vr: DocVrouter,
    *,
    run_root: str = RUN_ROOT,
    log_root: str = LOG_ROOT,
    transport: Transport = "auto",
    multicast_group: str = DEFAULT_MULTICAST_GROUP,
    port: int = DEFAULT_PORT,
) -> Daemon:
    from envrouter.services.process import Daemon, source_digest
    from envrouter.services.templating import template_stamp

    paths = paths_for(vr, run_root=run_root, log_root=log_root)
    kw = {"lock_file": str(paths.file(LOCK)), "socket_path": str(paths.file(SOCKET)),
          "log_file": str(paths.log_file), "transport": transport,
          "multicast_group": multicast_group, "port": port}
    socket = paths.file(SOCKET)
    return Daemon(
        paths=paths,
        comm="conntrackd",
        argv=["conntrackd", "-C", str(paths.file(CONF))],
        render=lambda: {CONF: render_conntrackd_conf(vr, **kw)},
        source=source_digest(template_stamp(TEMPLATE), vr.model_dump_json(), kw),
        ready=lambda _pid: socket.is_socket() if socket.exists() else False,
        stale_files=[LOCK, SOCKET],
    )


def command(paths: ServicePaths, flag: str, *extra: str, timeout: float = 10.0) -> str:
    """Run one conntrackd client command (e.g. "-c", or "-f", "internal") against the running
    instance."""
    if flag not in ("-c", "-f", "-R", "-B", "-n", "-t", "-s", "-i", "-e", "-k") or any(
        e not in ("internal", "external", "ct", "expect") for e in extra
    ):
        raise ValidationError("conntrackd", "command", f"unknown command {flag!r} {extra!r}")
    import subprocess

    conf = paths.file(CONF)
    try:
        proc = subprocess.run(
            ["conntrackd", "-C", str(conf), flag, *extra],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        what = " ".join([flag, *extra])
        raise InfraError(f"conntrackd {what} in {paths.namespace}: {exc}") from exc
    if proc.returncode != 0:
        raise InfraError(
            f"conntrackd {flag} {' '.join(extra)} in {paths.namespace} failed ({proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip()}"
        )
    return proc.stdout


def internal_cache_size(stats: str) -> int | None:
    """Flows in the internal cache, from ``conntrackd -s``'s "cache internal:" block
    ("current active connections: N"); None when the text has no such block."""
    lines = stats.splitlines()
    for i, line in enumerate(lines):
        if line.strip() != "cache internal:":
            continue
        for following in lines[i + 1:i + 4]:
            name, _, value = following.partition(":")
            if name.strip() == "current active connections" and value.split():
                return int(value.split()[0])
        return None
    return None


def flush_kernel_table(namespace: str, timeout: float = 30.0) -> None:
    """Empty the namespace's conntrack table (``conntrack -F``), synchronously."""
    import subprocess

    try:
        proc = subprocess.run(
            ["ip", "netns", "exec", namespace, "conntrack", "-F"],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InfraError(f"conntrack -F in {namespace}: {exc}") from exc
    if proc.returncode != 0:
        raise InfraError(f"conntrack -F in {namespace} failed ({proc.returncode}): "
                         f"{(proc.stderr or proc.stdout).strip()}")


def rejoin(paths: ServicePaths, *, holds_vips: bool) -> list[str]:
    """After the daemon (re)started; returns what was done, in order.

    - holding the VIPs: the daemon filled its internal cache from the kernel table, which is
      the live one: ``-B`` sends it whole, so the peers get the flows that started while the
      daemon was down (their ends: the peers' copies time out).
    - otherwise: ``-f internal`` (the cache the daemon filled from this kernel table: an
      instance that is not the holder must never resend it, nor sync the ends of its copies),
      then the kernel table flushed (copies of flows the holder may have ended while this
      daemon was not listening: a new flow reusing such a port could not be injected, "File
      exists") and ``-n``: the holder sends its current table."""
    if holds_vips:
        command(paths, "-B")
        return ["-B"]
    command(paths, "-f", "internal")
    flush_kernel_table(paths.namespace)
    command(paths, "-n")
    return ["-f internal", "conntrack -F", "-n"]


STATS_FILE = "stats.txt"
STATS_TIMEOUT = 5  # s


def stats_argv(paths: ServicePaths) -> list[str]:
    return ["conntrackd", "-C", str(paths.file(CONF)), "-s"]


def stats(paths: ServicePaths) -> str | None:
    """``conntrackd -s`` of the running instance, or None when it does not answer on its
    control socket. `paths`: anything with the instance's ``file(name)`` (the OCF monitor
    passes its recorded instance); light: no subprocess module, the output goes through a file
    of the instance's run directory."""
    out = str(paths.file(STATS_FILE))
    if command_status(stats_argv(paths), timeout=STATS_TIMEOUT, output=out) != 0:
        return None
    try:
        with open(out) as f:
            return f.read()
    except OSError:
        return None
