"""A thin driver over pyroute2: one netlink socket per namespace, ensure-style calls.

Calls tolerate "already exists" / "no such object" by branching on `NetlinkError.code` (the
errno), never on message text. Namespaces are entered per thread (setns(2) affects only the
calling thread), so the process itself never leaves the namespace it was started in.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import subprocess
import threading
from collections.abc import Callable
from typing import Any, TypeVar

# their home is the light .namespaces (the OCF monitors import it); kept here for callers
from envrouter.agent.namespaces import (  # noqa: F401
    NETNS_DIR,
    netns_exists,
    netns_path,
    sysctl_path,
)
from envrouter.errors import InfraError
from envrouter.model.names import RTPROT_ENVROUTER, RTPROT_ENVROUTER_VIP  # noqa: F401

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
IFF_UP = 1

_libc: Any = None


def _libc_handle() -> Any:
    """The C library this process runs with. Also given to pyroute2's netns calls, which would
    otherwise look it up with ctypes.util.find_library (`ldconfig -p` in a forked process)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _setns(fd: int) -> None:
    if _libc_handle().setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def list_netns() -> set[str]:
    try:
        return set(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return set()


def netns_valid(ns: str) -> bool:
    """A name under /run/netns that really holds a namespace (an nsfs bind mount), not the bare
    file a killed `create` leaves behind."""
    try:
        return os.stat(netns_path(ns)).st_dev == os.stat("/proc/self/ns/net").st_dev
    except FileNotFoundError:
        return False


def in_netns(ns: str, func: Callable[[], T]) -> T:
    """Run func in a thread that has entered network namespace `ns` ("" = our own)."""
    if ns == "":
        return func()
    try:
        fd = os.open(netns_path(ns), os.O_RDONLY)
    except FileNotFoundError as exc:
        raise InfraError(f"network namespace {ns!r} does not exist") from exc
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            _setns(fd)
            box["value"] = func()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    try:
        th = threading.Thread(target=run, name=f"netns-{ns}")
        th.start()
        th.join()
    finally:
        os.close(fd)
    if "error" in box:
        raise box["error"]
    return box["value"]


def run(
    ns: str,
    argv: list[str],
    *,
    input: str | None = None,
    check: bool = True,
    env: dict | None = None,
) -> subprocess.CompletedProcess:
    """Run a program inside namespace `ns` (its children inherit the thread's netns)."""

    def go() -> subprocess.CompletedProcess:
        try:
            return subprocess.run(argv, input=input, capture_output=True, text=True, env=env)
        except FileNotFoundError as exc:
            raise InfraError(f"{argv[0]}: not installed") from exc

    res = in_netns(ns, go)
    if check and res.returncode != 0:
        where = f" in namespace {ns!r}" if ns else ""
        msg = (res.stderr or res.stdout).strip().splitlines()
        last = msg[-1] if msg else f"exit {res.returncode}"
        raise InfraError(f"{' '.join(argv[:3])}{where} failed: {last}")
    return res


def create_netns(ns: str) -> bool:
    if netns_exists(ns):
        return False
    from pyroute2 import netns as pnetns

    try:
        pnetns.create(ns, libc=_libc_handle())
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise InfraError(f"cannot create network namespace {ns!r}: {exc}") from exc
        return False
    return True


def remove_netns(ns: str) -> bool:
    if not netns_exists(ns) or ns == "":
        return False
    from pyroute2 import netns as pnetns

    try:
        pnetns.remove(ns, libc=_libc_handle())
    except FileNotFoundError:
        return False
    return True


def read_sysctl(key: str) -> str | None:
    try:
        with open(sysctl_path(key)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def write_sysctl(key: str, value: str) -> None:
    try:
        with open(sysctl_path(key), "w") as f:
            f.write(value)
    except FileNotFoundError as exc:
        raise InfraError(f"sysctl {key} does not exist") from exc


class Netlink:
    """Netlink sockets by namespace, opened on first use and closed by close()."""

    def __init__(self) -> None:
        self._sockets: dict[str, Any] = {}

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for ipr in self._sockets.values():
            try:
                ipr.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        self._sockets.clear()

    def ipr(self, ns: str) -> Any:
        if ns not in self._sockets:
            from pyroute2 import IPRoute

            if ns == "":
                self._sockets[ns] = IPRoute()
            else:
                sock = in_netns(ns, lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0))
                self._sockets[ns] = IPRoute(use_socket=sock)
        return self._sockets[ns]

    def forget(self, ns: str) -> None:
        ipr = self._sockets.pop(ns, None)
        if ipr is not None:
            ipr.close()

    # -------------------------------------------------------------- reads

    def links(self, ns: str) -> list[dict]:
        out = []
        for msg in self.ipr(ns).get_links():
            info = msg.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
            out.append(
                {
                    "index": msg["index"],
                    "name": msg.get_attr("IFLA_IFNAME"),
                    "kind": kind,
                    "alias": msg.get_attr("IFLA_IFALIAS"),
                    "master": msg.get_attr("IFLA_MASTER"),
                    "up": bool(msg["flags"] & IFF_UP),
                    "peer_nsid": msg.get_attr("IFLA_LINK_NETNSID"),
                    # a veth's peer: its index (in the peer's namespace, see peer_nsid)
                    "link": msg.get_attr("IFLA_LINK"),
                }
            )
        return out

    def addresses(self, ns: str, family: int = socket.AF_INET) -> list[tuple[int, str, int]]:
        """(index, address, prefix length) of `family`'s addresses: IPv4 unless asked (the
        agent owns only IPv4 addresses; the kernel's IPv6 link-local ones are not its)."""
        return [
            (m["index"], m.get_attr("IFA_ADDRESS"), m["prefixlen"])
            for m in self.ipr(ns).get_addr(family=family)
        ]

    def routes(self, ns: str, protos: tuple[int, ...]) -> list[dict]:
        """Main-table routes of both families with one of `protos` (an IPv6 route is told
        apart by its gateway; "default" is either family's)."""
        out = []
        ipr = self.ipr(ns)
        found = [
            *ipr.get_routes(family=socket.AF_INET, table=254),
            *ipr.get_routes(family=socket.AF_INET6, table=254),
        ]
        for m in found:
            if m["proto"] not in protos:
                continue
            dst = m.get_attr("RTA_DST")
            out.append(
                {
                    "dst": "default" if m["dst_len"] == 0 else f"{dst}/{m['dst_len']}",
                    "gateway": m.get_attr("RTA_GATEWAY"),
                    "oif": m.get_attr("RTA_OIF"),
                    "metric": m.get_attr("RTA_PRIORITY") or 0,
                    "prefsrc": m.get_attr("RTA_PREFSRC"),
                    "proto": m["proto"],
                }
            )
        return out

    def index(self, ns: str, name: str) -> int | None:
        found = self.ipr(ns).link_lookup(ifname=name)
        return found[0] if found else None

    def need_index(self, ns: str, name: str) -> int:
        idx = self.index(ns, name)
        if idx is None:
            where = f" in namespace {ns!r}" if ns else ""
            raise InfraError(f"link {name!r}{where} does not exist")
        return idx

    # -------------------------------------------------------------- ensure-style writes

    def _call(self, what: str, func: Callable[[], Any], ok: tuple[int, ...] = ()) -> bool:
        from pyroute2 import NetlinkError

        try:
            func()
        except NetlinkError as exc:
            if exc.code in ok:
                return False
            raise InfraError(f"{what}: {os.strerror(exc.code)} (errno {exc.code})") from exc
        return True

    def add_veth(self, ns: str, name: str, peer_ns: str, peer: str, alias: str) -> bool:
        """One message creates `name` in ns and `peer` directly in peer_ns (no later move:
        moving a link between namespaces costs the kernel an RCU grace period)."""
        ipr = self.ipr(ns)
        fd = os.open(netns_path(peer_ns), os.O_RDONLY)
        try:
            created = self._call(
                f"create veth {name}/{peer}",
                lambda: ipr.link(
                    "add", ifname=name, kind="veth", peer={"ifname": peer, "net_ns_fd": fd}
                ),
                ok=(errno.EEXIST,),
            )
        finally:
            os.close(fd)
        self.set_alias(ns, name, alias)
        self.set_alias(peer_ns, peer, alias)
        return created

    def nsid_of(self, ns: str, other: str) -> int | None:
        """The id namespace `ns` uses for namespace `other` (IFLA_LINK_NETNSID values)."""
        fd = os.open(netns_path(other), os.O_RDONLY)
        try:
            res = self.ipr(ns).get_netnsid(fd=fd)
        finally:
            os.close(fd)
        nsid = res.get("nsid") if res else None
        return None if nsid is None or nsid < 0 else nsid

    def set_alias(self, ns: str, name: str, alias: str) -> bool:
        idx = self.need_index(ns, name)
        return self._call(
            f"set alias of {name}", lambda: self.ipr(ns).link("set", index=idx, ifalias=alias)
        )

    def move_link(self, ns: str, name: str, to_ns: str) -> bool:
        idx = self.index(ns, name)
        if idx is None:
            return False
        fd = os.open(netns_path(to_ns), os.O_RDONLY)
        try:
            return self._call(
                f"move {name} to {to_ns or 'the host'}",
                lambda: self.ipr(ns).link("set", index=idx, net_ns_fd=fd),
            )
        finally:
            os.close(fd)

    def set_master(self, ns: str, name: str, master: str | None) -> bool:
        idx = self.need_index(ns, name)
        midx = 0 if master is None else self.need_index(ns, master)
        return self._call(
            f"enslave {name} to {master}",
            lambda: self.ipr(ns).link("set", index=idx, master=midx),
        )

    def set_up(self, ns: str, name: str) -> bool:
        idx = self.need_index(ns, name)
        return self._call(f"set {name} up", lambda: self.ipr(ns).link("set", index=idx, state="up"))

    def del_link(self, ns: str, name: str) -> bool:
        idx = self.index(ns, name)
        if idx is None:
            return False
        return self._call(
            f"delete link {name}",
            lambda: self.ipr(ns).link("del", index=idx),
            ok=(errno.ENODEV,),
        )

    def add_addr(self, ns: str, dev: str, address: str, prefixlen: int) -> bool:
        idx = self.need_index(ns, dev)
        return self._call(
            f"add {address}/{prefixlen} to {dev}",
            lambda: self.ipr(ns).addr("add", index=idx, address=address, prefixlen=prefixlen),
            ok=(errno.EEXIST,),
        )

    def del_addr(self, ns: str, dev: str, address: str, prefixlen: int) -> bool:
        idx = self.index(ns, dev)
        if idx is None:
            return False
        return self._call(
            f"remove {address}/{prefixlen} from {dev}",
            lambda: self.ipr(ns).addr("del", index=idx, address=address, prefixlen=prefixlen),
            ok=(errno.EADDRNOTAVAIL, errno.ENODEV),
        )

    def replace_route(
        self,
        ns: str,
        dst: str,
        gateway: str,
        dev: str,
        metric: int,
        proto: int = RTPROT_ENVROUTER,
        src: str | None = None,
    ) -> bool:
        args = _route_key(dst, gateway, metric, proto)
        args["gateway"] = gateway
        if dev:
            args["oif"] = self.need_index(ns, dev)
        if src:
            args["prefsrc"] = src
        return self._call(
            f"route {dst} via {gateway}", lambda: self.ipr(ns).route("replace", **args)
        )

    def del_route(
        self,
        ns: str,
        dst: str,
        gateway: str | None,
        oif: int | None,
        metric: int,
        proto: int = RTPROT_ENVROUTER,
    ) -> bool:
        args = _route_key(dst, gateway, metric, proto)
        if gateway:
            args["gateway"] = gateway
        if oif:
            args["oif"] = oif
        return self._call(
            f"delete route {dst}",
            lambda: self.ipr(ns).route("del", **args),
            ok=(errno.ESRCH, errno.ENODEV),
        )


def _route_key(dst: str, gateway: str | None, metric: int, proto: int) -> dict[str, Any]:
    """What names one of our routes in the main table (replace and delete both start here)."""
    return {
        "dst": _default_dst(dst, gateway),
        "family": _family(dst, gateway),
        "priority": metric,
        "proto": proto,
        "table": 254,
    }


def _family(dst: str, gateway: str | None) -> int:
    """The address family of a route: IPv6 when its destination or its gateway is."""
    return socket.AF_INET6 if ":" in dst or ":" in (gateway or "") else socket.AF_INET


def _default_dst(dst: str, gateway: str | None) -> str:
    if dst != "default":
        return dst
    return "::/0" if _family(dst, gateway) == socket.AF_INET6 else "0.0.0.0/0"
