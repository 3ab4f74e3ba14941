"""A cheap stamp of everything `observe` reads, to tell whether anything changed since the last
check found the node converged (the vrouter agent's recurring monitor, every 10 s).

The stamp is the kernel's own answers, kept as bytes and compared whole, never interpreted:
per namespace the netlink dumps of its links, addresses and routes of every family
(RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE: IPv6 too, so the stamp needs no change when the agent
manages IPv6), the nftables ruleset's generation (NFT_MSG_GETGEN: it moves on every
ruleset change), the values of the sysctls the agent sets, the identity of each of our
namespaces (the inode of its nsfs file) and of the files the agent writes. Attributes that
move without anything being changed are left out: link statistics (the kernel is asked to skip
them), per-family link data (IPv6 counters live there), a link kind's data (a bridge's
timers), address lifetimes, a route's cache data and expiry (IPv6). Whatever else moves only
costs one full check (a false alarm is safe; a change the stamp could not see would not be,
hence everything observe reads is in it).

Standard library only, and none of the heavy parts (no pyroute2, no socket module, no typing):
`_socket` and `struct`; setns(2) through `_ctypes` only when a namespace must be entered
(Python 3.11 has no os.setns). The process enters each namespace in turn (it is short-lived
and has one thread) and returns to its own at the end.
"""

from __future__ import annotations

import os
import struct

from envrouter.agent.namespaces import netns_path, sysctl_path

AF_NETLINK = 16
SOCK_RAW = 3
NETLINK_ROUTE = 0
NETLINK_NETFILTER = 12
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE = 18, 22, 26
IFLA_EXT_MASK = 29
RTEXT_FILTER_SKIP_STATS = 1 << 3
NFT_MSG_GETGEN = (10 << 8) | 16  # NFNL_SUBSYS_NFTABLES, NFT_MSG_GETGEN
NFTA_GEN_ID = 1
CLONE_NEWNET = 0x40000000

# attributes that move by themselves (see the module docstring)
IFLA_VOLATILE = frozenset({7, 23, 26})  # IFLA_STATS, IFLA_STATS64, IFLA_AF_SPEC
IFLA_LINKINFO, IFLA_INFO_KIND = 18, 1
IFA_CACHEINFO = 6
RTA_VOLATILE = frozenset({12, 23})  # RTA_CACHEINFO (last use, use count), RTA_EXPIRES
AF_UNSPEC = 0

_HDR = struct.Struct("=IHHII")


def _attrs(data: bytes, start: int):
    """(type, payload) of each netlink attribute from `start` on."""
    while start + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, start)
        if length < 4:
            return
        yield kind & 0x3FFF, data[start + 4 : start + length]
        start += (length + 3) & ~3


def _link(msg: bytes) -> bytes:
    out = [msg[:16]]  # ifinfomsg: family, type, index, flags
    for kind, payload in _attrs(msg, 16):
        if kind in IFLA_VOLATILE:
            continue
        if kind == IFLA_LINKINFO:  # the kind, not its data (a bridge's timers move)
            payload = b"".join(p for k, p in _attrs(payload, 0) if k == IFLA_INFO_KIND)
        out.append(struct.pack("=H", kind) + payload)
    return b"\0".join(out)


def _addr(msg: bytes) -> bytes:
    return msg[:8] + b"".join(struct.pack("=H", k) + p for k, p in _attrs(msg, 8)
                              if k != IFA_CACHEINFO)


def _route(msg: bytes) -> bytes:
    return msg[:12] + b"".join(struct.pack("=H", k) + p for k, p in _attrs(msg, 12)
                               if k not in RTA_VOLATILE)


def _request(sock, msg_type: int, flags: int, body: bytes) -> list[bytes]:
    """Send one request; the payloads of every answer until the dump is done."""
    sock.send(_HDR.pack(_HDR.size + len(body), msg_type, flags, 1, 0) + body)
    out: list[bytes] = []
    while True:
        data = sock.recv(1 << 20)
        pos = 0
        while pos + _HDR.size <= len(data):
            length, kind, _, _, _ = _HDR.unpack_from(data, pos)
            if length < _HDR.size:
                return out
            payload = data[pos + _HDR.size : pos + length]
            if kind == NLMSG_ERROR:
                code = struct.unpack_from("=i", payload)[0]
                if code:
                    raise OSError(-code, os.strerror(-code))
                return out  # an acknowledgement
            if kind == NLMSG_DONE:
                return out
            out.append(payload)
            pos += (length + 3) & ~3
        if not flags & NLM_F_DUMP:
            return out


def _netns_stamp() -> bytes:
    """The stamp of the namespace the process is in now."""
    import _socket

    parts: list[bytes] = []
    sock = _socket.socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)
    try:
        ext = struct.pack("=HHI", 8, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)
        links = _request(sock, RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP,
                         struct.pack("=BxHiII", 0, 0, 0, 0, 0) + ext)
        parts += [b"L" + _link(m) for m in links]
        addrs = _request(sock, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP,
                         struct.pack("=BBBBI", AF_UNSPEC, 0, 0, 0, 0))
        parts += [b"A" + _addr(m) for m in addrs]
        routes = _request(sock, RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP,
                          struct.pack("=BBBBBBBBI", AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0, 0))
        parts += [b"R" + _route(m) for m in routes]
    finally:
        sock.close()
    try:
        sock = _socket.socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER)
    except OSError:
        parts.append(b"G-")  # no nftables in this kernel
    else:
        try:
            for m in _request(sock, NFT_MSG_GETGEN, NLM_F_REQUEST, struct.pack("=BBH", 0, 0, 0)):
                parts += [b"G" + p for k, p in _attrs(m, 4) if k == NFTA_GEN_ID]
        finally:
            sock.close()
    return b"\n".join(parts)


_setns = None


def _enter(fd: int) -> None:
    global _setns
    if _setns is None:
        if hasattr(os, "setns"):  # Python 3.12
            _setns = lambda f: os.setns(f, CLONE_NEWNET)  # noqa: E731
        else:
            _setns = _libc_setns()
    _setns(fd)


def _libc_setns():
    """setns(2) from the C library through `_ctypes`, the extension module under ctypes:
    ctypes' own package (its type classes, CDLL) costs ~2.5 ms of CPU, more than the rest of
    the stamp. A failed call is made again through ctypes, which reports errno."""
    import _ctypes

    function = _ctypes.dlsym(_ctypes.dlopen(None), "setns")

    def call(f: int) -> None:
        if _ctypes.call_function(function, (f, CLONE_NEWNET)) != 0:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.setns(f, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))

    return call


def _identity(path: str) -> bytes:
    try:
        st = os.stat(path)
    except OSError:
        return b"-"
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}".encode()


def kernel_stamp(namespaces: list[str], sysctls: dict[str, list[str]],
                 files: list[str]) -> bytes:
    """The stamp of `namespaces` ("" is the process's own) with the values of `sysctls`
    ({namespace: [key, ...]}) and the identity of `files`."""
    parts = [b"F" + path.encode() + b"=" + _identity(path) for path in files]
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    entered = False
    try:
        for ns in namespaces:
            if ns:
                try:
                    fd = os.open(netns_path(ns), os.O_RDONLY)
                except FileNotFoundError:
                    parts.append(b"N" + ns.encode() + b"=absent")
                    continue
                try:
                    parts.append(b"N" + ns.encode() + b"=" + _identity(netns_path(ns)))
                    _enter(fd)
                    entered = True
                finally:
                    os.close(fd)
            elif entered:
                _enter(own)
                entered = False
            parts.append(_netns_stamp())
            for key in sysctls.get(ns, ()):
                try:
                    with open(sysctl_path(key), "rb") as f:
                        parts.append(b"S" + key.encode() + b"=" + f.read())
                except OSError:
                    parts.append(b"S" + key.encode() + b"=-")
    finally:
        if entered:
            _enter(own)
        os.close(own)
    return b"\n\0".join(parts)


# -- what to stamp, recorded from the document ---------------------------------------------
# what the agent's check reads, by the package's code that computes it from the document (the
# record of a Watch is valid while these files are the same: envrouter.ha.ocf_memo)
CHECKER = ("document.py", "agent", os.path.join("agent", "nftables"))


class Watch:
    """What a stamp covers for one document and scope: every namespace observe reads, the
    sysctls the agent sets, the files it writes; `ovs` when Open vSwitch bridges are in the
    plan (their userspace ports are not in the netlink dumps: no stamp then)."""

    __slots__ = ("namespaces", "sysctls", "files", "ovs")

    def __init__(self, namespaces: list[str], sysctls: dict[str, list[str]],
                 files: list[str], ovs: bool) -> None:
        self.namespaces = namespaces
        self.sysctls = sysctls
        self.files = files
        self.ovs = ovs

    FIELDS = 2  # what lines() returns

    def lines(self) -> list[str]:
        out = [f"ns\t{ns}" for ns in self.namespaces]
        out += [f"sysctl\t{ns}\t{k}" for ns, keys in self.sysctls.items() for k in keys]
        out += [f"file\t{f}" for f in self.files]
        return ["ovs" if self.ovs else "", "\n".join(out)]

    @classmethod
    def parse(cls, fields: list[str]) -> Watch:
        namespaces: list[str] = []
        sysctls: dict[str, list[str]] = {}
        files: list[str] = []
        for line in fields[1].split("\n"):
            kind, _, rest = line.partition("\t")
            if kind == "ns":
                namespaces.append(rest)
            elif kind == "sysctl":
                ns, _, key = rest.partition("\t")
                sysctls.setdefault(ns, []).append(key)
            elif kind == "file":
                files.append(rest)
        return cls(namespaces, sysctls, files, fields[0] == "ovs")

    def stamp(self) -> bytes:
        return kernel_stamp(self.namespaces, self.sysctls, self.files)


def watch_for(doc, *, root: str, scope: str, host_netns: str) -> Watch:  # doc: a document
    """The Watch of a document's desired state (the document model and the planner: the
    heavy path only)."""
    from envrouter.agent.desired import desired_state
    from envrouter.agent.observe import relevant_namespaces

    state = desired_state(doc, root=root, scope=scope, host_netns=host_netns)
    u = state.universe
    namespaces = sorted(relevant_namespaces(state) | set(u.namespaces) | {host_netns})
    sysctls: dict[str, list[str]] = {}
    for s in state.sysctls:
        sysctls.setdefault(s.ns, []).append(s.key)
    return Watch(namespaces, sysctls, sorted(u.files), bool(u.ovs_bridges))
