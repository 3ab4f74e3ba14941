"""Connection load for the failover drills at scale: many idle TCP connections through the NAT,
a steady churn of new ones and UDP flows whose NAT mapping must not change.

Run inside lab nodes (started by `envrouter.lab.scale`, through the nodes' anchors):

    python -m envrouter.lab.load server --name NAME --bind ADDR --port P [--udp-port Q] --dir DIR
    python -m envrouter.lab.load client --name NAME --server ADDR --ports P1,P2 --count N \\
        [--open-rate R] [--churn-port C --churn-rate R2 --churn-max M] [--udp U --udp-port Q] \\
        --dir DIR
    python -m envrouter.lab.load watch --name NAME [--netns vrouter] --port C --dir DIR

One process holds at most ``MAX_PER_PROCESS`` connections (a process may have 20,000 open
files on the lab's machines and cannot raise that); the drill spreads the load over several
client processes per compute node and several server processes (one port each) upstream.

- idle: the client opens ``--count`` connections (at most ``--open-rate`` a second, at most
  ``IN_FLIGHT`` handshakes at once), then sends nothing;
- new (churn): from when ``DIR/churn`` appears, ``--churn-rate`` new connections a second,
  each sends one byte that the server echoes at once (a flow that exchanged data just before
  the fault), up to ``--churn-max``;
- UDP: ``--udp`` sockets, each sends a numbered datagram every ``UDP_INTERVAL``; the server
  answers with the source address:port it saw, so a changed NAT mapping shows.

The check, after the fault, is started by the file ``DIR/check``: every server sends ``S`` on
each of its connections, the client answers ``C``, the server confirms with ``K``. A connection
survived if that round trip completed without an error on the client's side: the first packet
comes from upstream, so a holder that does not know the flow answers it with a reset (a client
sending first could be picked up as a new flow by the loose TCP tracking, and hide the loss).
The client then writes ``DIR/<name>.json``; the server writes its own record when
``DIR/stop-load`` appears. While opening, a client rewrites ``DIR/<name>.state`` (counts).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import resource
import selectors
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from envrouter.files import write_json

MAX_PER_PROCESS = 15_000
IN_FLIGHT = 256
UDP_INTERVAL = 0.25
CHECK_TIMEOUT = 60.0  # s for every connection's check round trip
CONNECT_TIMEOUT = 20.0  # s for one handshake (SYNs are retransmitted meanwhile)
STATE_EVERY = 0.2  # s between state-file rewrites


def raise_nofile() -> int:
    """The soft open-files limit up to the hard one; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _exists(directory: str, name: str) -> bool:
    return os.path.exists(os.path.join(directory, name))


# ----------------------------------------------------------------------------- server


def serve(name: str, bind: str, port: int, udp_port: int | None, directory: str) -> int:
    raise_nofile()
    sel = selectors.DefaultSelector()
    lsock = socket.create_server((bind, port), backlog=4096)
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ, "listen")
    udp = None
    udp_seen: dict[str, list[str]] = {}
    if udp_port:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        udp.bind((bind, udp_port))
        udp.setblocking(False)
        sel.register(udp, selectors.EVENT_READ, "udp")
    conns: dict[int, socket.socket] = {}
    stats = {"accepted": 0, "closed": 0, "errors": 0, "check_sent": 0, "check_confirmed": 0,
             "check_send_errors": 0}
    checking = False
    write_json(os.path.join(directory, f"{name}.ready"), {"pid": os.getpid()})
    last_poll = 0.0
    while True:
        now = time.monotonic()
        if now - last_poll > 0.1:
            last_poll = now
            if _exists(directory, "stop-load"):
                break
            if not checking and _exists(directory, "check"):
                checking = True
                for sock in list(conns.values()):
                    try:
                        sock.send(b"S")
                        stats["check_sent"] += 1
                    except OSError:
                        stats["check_send_errors"] += 1
        for key, _ in sel.select(0.1):
            if key.data == "listen":
                for _ in range(256):
                    try:
                        c, _addr = lsock.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError as exc:
                        if exc.errno in (errno.EMFILE, errno.ENFILE):
                            break
                        raise
                    c.setblocking(False)
                    conns[c.fileno()] = c
                    sel.register(c, selectors.EVENT_READ, "conn")
                    stats["accepted"] += 1
                    if checking:  # a connection that arrives late still gets its check
                        with contextlib.suppress(OSError):
                            c.send(b"S")
            elif key.data == "udp":
                assert udp is not None
                for _ in range(256):
                    try:
                        data, (host, sport) = udp.recvfrom(512)
                    except (BlockingIOError, InterruptedError):
                        break
                    parts = data.decode(errors="replace").split()
                    if len(parts) != 2:
                        continue
                    src = f"{host}:{sport}"
                    seen = udp_seen.setdefault(parts[0], [])
                    if src not in seen:
                        seen.append(src)
                    with contextlib.suppress(OSError):
                        udp.sendto(f"{parts[0]} {parts[1]} {src}".encode(), (host, sport))
            else:
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(64)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = None
                    stats["errors"] += 1
                if not data:
                    sel.unregister(sock)
                    conns.pop(sock.fileno(), None)
                    sock.close()
                    stats["closed"] += 1
                    continue
                reply = b""
                for byte in data:
                    if byte == ord("n"):  # a new connection's hello: echo at once
                        reply += b"n"
                    elif byte == ord("C"):  # the client's answer to the check
                        reply += b"K"
                        stats["check_confirmed"] += 1
                if reply:
                    with contextlib.suppress(OSError):
                        sock.send(reply)
    stats["open_at_end"] = len(conns)
    write_json(os.path.join(directory, f"{name}.server.json"),
               {"name": name, "port": port, "stats": stats, "udp_seen": udp_seen})
    for sock in conns.values():
        sock.close()
    return 0


# ----------------------------------------------------------------------------- client


@dataclass
class Conn:
    sock: socket.socket
    kind: str  # idle | new
    started: float  # wall clock, connect() called
    established: float | None = None  # wall clock, handshake completed
    state: str = "connecting"  # connecting | hello | open | checked | ok | failed
    error: str = ""
    tuple: str = ""  # "client port -> server port", once established (which flows were lost)


# lost idle connections listed one by one in the record, at most (a diagnosis, not a count)
LOST_LISTED = 100


@dataclass
class UdpFlow:
    flow: str
    sock: socket.socket
    sent: int = 0
    received: int = 0
    last_rx: float | None = None
    sources: list[str] = field(default_factory=list)


class Client:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.server = a.server
        self.ports = [int(p) for p in a.ports.split(",") if p] if a.ports else []
        self.sel = selectors.DefaultSelector()
        self.conns: dict[int, Conn] = {}
        self.done: list[Conn] = []  # closed (failed) connections, kept for the record
        self.udp: list[UdpFlow] = []
        self.opened = 0
        self.connect_failures = 0
        self.churn_opened = 0
        self.checking = False
        self.check_started: float | None = None
        self.connecting = 0  # handshakes in flight
        self.churning = False  # new connections start when DIR/churn appears

    # --- connections ---------------------------------------------------------------------
    def _connect(self, port: int, kind: str) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex((self.server, port))
        if err not in (0, errno.EINPROGRESS):
            s.close()
            self.connect_failures += 1
            self.done.append(Conn(s, kind, time.time(), state="failed",
                                  error=f"connect: {os.strerror(err)}"))
            return
        c = Conn(s, kind, time.time())
        self.connecting += 1
        self.conns[s.fileno()] = c
        self.sel.register(s, selectors.EVENT_WRITE, c)

    def _fail(self, c: Conn, why: str) -> None:
        if c.state in ("ok", "failed"):
            return
        if c.state == "connecting":
            self.connecting -= 1
        c.state, c.error = "failed", why
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(c.sock)
        self.conns.pop(c.sock.fileno(), None)
        c.sock.close()
        self.done.append(c)

    def _send(self, c: Conn, data: bytes, what: str) -> bool:
        """Send `data` on `c`; on an error, fail the connection with `what` (False)."""
        try:
            c.sock.send(data)
        except OSError as exc:
            self._fail(c, f"{what}: {exc.strerror or exc}")
            return False
        return True

    def _on_event(self, c: Conn, mask: int) -> None:
        if c.state == "connecting":
            err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.connect_failures += 1
                self._fail(c, f"connect: {os.strerror(err)}")
                return
            c.established = time.time()
            self.connecting -= 1
            with contextlib.suppress(OSError):
                c.tuple = f"{c.sock.getsockname()[1]}->{c.sock.getpeername()[1]}"
            if c.kind == "new":
                if not self._send(c, b"n", "hello"):
                    return
                c.state = "hello"
            else:
                c.state = "open"
            self.sel.modify(c.sock, selectors.EVENT_READ, c)
            return
        try:
            data = c.sock.recv(64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(c, f"recv: {exc.strerror or exc}")
            return
        if not data:
            self._fail(c, "recv: connection closed by the peer")
            return
        for byte in data:
            if byte == ord("n") and c.state == "hello":
                c.state = "open"
            elif byte == ord("S"):
                if not self._send(c, b"C", "check answer"):
                    return
                c.state = "checked"
            elif byte == ord("K") and c.state == "checked":
                c.state = "ok"

    # --- UDP -----------------------------------------------------------------------------
    def _udp_open(self) -> None:
        for i in range(self.a.udp):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setblocking(False)
            s.connect((self.server, self.a.udp_port))
            f = UdpFlow(f"{self.a.name}-u{i}", s)
            self.udp.append(f)
            self.sel.register(s, selectors.EVENT_READ, f)

    def _udp_send(self) -> None:
        for f in self.udp:
            try:
                f.sock.send(f"{f.flow} {f.sent}".encode())
            except OSError:
                pass  # no route while the VIP moves: a lost datagram, not a dead flow
            f.sent += 1

    def _udp_recv(self, f: UdpFlow) -> None:
        for _ in range(16):
            try:
                data = f.sock.recv(512)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. ICMP unreachable while the path moves
            parts = data.decode(errors="replace").split()
            if len(parts) == 3 and parts[0] == f.flow:
                f.received += 1
                f.last_rx = time.time()
                if parts[2] not in f.sources:
                    f.sources.append(parts[2])

    # --- main loop -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        est = sum(1 for c in self.conns.values() if c.kind == "idle" and c.established)
        return {"name": self.a.name, "time": time.time(), "idle_target": self.a.count,
                "idle_established": est, "connect_failures": self.connect_failures,
                "churn_opened": self.churn_opened, "checking": self.checking,
                "udp_received": sum(f.received for f in self.udp)}

    def run(self) -> int:
        raise_nofile()
        d = self.a.dir
        self._udp_open()
        t0 = time.monotonic()
        open_every = 1.0 / self.a.open_rate if self.a.open_rate > 0 else 0.0
        churn_every = 1.0 / self.a.churn_rate if self.a.churn_rate > 0 else 0.0
        next_open = next_churn = next_udp = next_state = t0
        next_poll = t0
        while True:
            now = time.monotonic()
            if now >= next_poll:
                next_poll = now + 0.1
                if _exists(d, "stop-load"):
                    break
                if not self.churning and churn_every and _exists(d, "churn"):
                    self.churning = True
                    next_churn = now
                if not self.checking and _exists(d, "check"):
                    self.checking = True
                    self.check_started = now
                if self.checking and (
                        now - (self.check_started or now) > CHECK_TIMEOUT
                        or all(c.state in ("ok", "failed") for c in self.conns.values())):
                    break
                # a handshake that never completes is a failure, not a hang
                if self.connecting:
                    cut = time.time() - CONNECT_TIMEOUT
                    for c in [c for c in self.conns.values()
                              if c.state == "connecting" and c.started < cut]:
                        self.connect_failures += 1
                        self._fail(c, "connect: timed out")
            # idle connections: bounded rate and handshakes in flight
            while (self.opened < self.a.count and now >= next_open
                   and self.connecting < IN_FLIGHT and not self.checking):
                self._connect(self.ports[self.opened % len(self.ports)], "idle")
                self.opened += 1
                next_open = max(next_open + open_every, now - 0.5) if open_every else now
            # churn: new connections at a steady rate, until the check
            if (churn_every and not self.checking and now >= next_churn
                    and self.churn_opened < self.a.churn_max and self.churning):
                self._connect(self.a.churn_port, "new")
                self.churn_opened += 1
                next_churn = max(next_churn + churn_every, now - 1.0)
            if self.udp and now >= next_udp:
                self._udp_send()
                next_udp = now + UDP_INTERVAL
            if now >= next_state:
                write_json(os.path.join(d, f"{self.a.name}.state"), self.state(), durable=False)
                next_state = now + STATE_EVERY
            for key, mask in self.sel.select(0.01):
                if isinstance(key.data, UdpFlow):
                    self._udp_recv(key.data)
                else:
                    self._on_event(key.data, mask)
        write_json(os.path.join(d, f"{self.a.name}.json"), self.record())
        for c in list(self.conns.values()):
            c.sock.close()
        for f in self.udp:
            f.sock.close()
        return 0

    def record(self) -> dict[str, Any]:
        """Idle connections as counts (there are many), new ones one by one (times matter)."""
        everything = [*self.conns.values(), *self.done]
        idle = [c for c in everything if c.kind == "idle"]
        reasons: dict[str, int] = {}
        for c in idle:
            if c.state != "ok":
                why = c.error or ("established, no check round trip" if c.established
                                  else "never established")
                reasons[why] = reasons.get(why, 0) + 1
        new = [{"started": round(c.started, 4),
                "established": None if c.established is None else round(c.established, 4),
                "ok": c.state == "ok",
                "reason": "" if c.state == "ok" else (c.error or f"state {c.state} at the end")}
               for c in everything if c.kind == "new"]
        return {
            "name": self.a.name,
            "idle": {"target": self.a.count, "total": len(idle),
                     "established": sum(1 for c in idle if c.established is not None),
                     "ok": sum(1 for c in idle if c.state == "ok"), "reasons": reasons,
                     "lost": [f"{c.tuple} {c.error or c.state}" for c in idle
                              if c.state != "ok"][:LOST_LISTED]},
            "new": new,
            "udp": [{"flow": f.flow, "sent": f.sent, "received": f.received,
                     "last_rx": f.last_rx, "sources": f.sources} for f in self.udp],
            "check_seconds": None if self.check_started is None
            else round(time.monotonic() - self.check_started, 2),
        }


# ----------------------------------------------------------------------------- sync lag


def watch(name: str, netns: str, port: int, directory: str) -> int:
    """Record the creation of every new-connection flow in one controller's kernel table
    (``conntrack -E`` in its vrouter namespace: on the holder the flow itself, on a peer the
    entry conntrackd injected) into ``DIR/<name>.events``, until ``DIR/stop-load``."""
    import subprocess

    from envrouter.waiting import end_process

    out_path = os.path.join(directory, f"{name}.events")
    argv = ["ip", "netns", "exec", netns, "conntrack", "-E", "-e", "NEW", "-p", "tcp",
            "--dport", str(port), "-o", "timestamp"]
    with open(out_path, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL)
        write_json(os.path.join(directory, f"{name}.watching"), {"pid": proc.pid})
        try:
            while not _exists(directory, "stop-load") and proc.poll() is None:
                time.sleep(0.2)
        finally:
            if proc.poll() is None:
                proc.terminate()
                end_process(proc, 5)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="role", required=True)
    s = sub.add_parser("server")
    s.add_argument("--name", required=True)
    s.add_argument("--bind", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--udp-port", type=int)
    s.add_argument("--dir", required=True)
    c = sub.add_parser("client")
    c.add_argument("--name", required=True)
    c.add_argument("--server", required=True)
    c.add_argument("--ports", default="", help="idle connections' server ports, comma-separated")
    c.add_argument("--count", type=int, default=0, help="idle connections to open")
    c.add_argument("--open-rate", type=float, default=1000.0, help="idle connections a second")
    c.add_argument("--churn-port", type=int, default=0)
    c.add_argument("--churn-rate", type=float, default=0.0, help="new connections a second")
    c.add_argument("--churn-max", type=int, default=0)
    c.add_argument("--udp", type=int, default=0, help="UDP flows")
    c.add_argument("--udp-port", type=int, default=0)
    c.add_argument("--dir", required=True)
    w = sub.add_parser("watch")
    w.add_argument("--name", required=True)
    w.add_argument("--netns", default="vrouter")
    w.add_argument("--port", type=int, required=True)
    w.add_argument("--dir", required=True)
    a = p.parse_args(argv)
    if a.role == "watch":
        return watch(a.name, a.netns, a.port, a.dir)
    if a.role == "server":
        return serve(a.name, a.bind, a.port, a.udp_port, a.dir)
    if a.count > MAX_PER_PROCESS or a.count + a.churn_max > MAX_PER_PROCESS + 5000:
        p.error(f"--count: at most {MAX_PER_PROCESS} connections per process")
    if a.count and not a.ports:
        p.error("--ports: needed with --count")
    if (a.churn_rate > 0) != bool(a.churn_port):
        p.error("--churn-port and --churn-rate go together")
    if a.udp and not a.udp_port:
        p.error("--udp-port: needed with --udp")
    return Client(a).run()


if __name__ == "__main__":
    sys.exit(main())
