"""Traffic for the failover drills: a stream/echo server in the upstream node and clients in the
compute nodes, talking through the vrouter's NAT.

Run inside lab nodes (started by `envrouter.lab.drill_traffic` through the node's anchor):

    python -m envrouter.lab.traffic server --bind ADDR --tcp-port P --udp-port Q --dir DIR
    python -m envrouter.lab.traffic client --name cmp1 --server ADDR --tcp-port P --udp-port Q \
        --ping ADDR --tcp 3 --udp 2 --dir DIR

- TCP: each client connection sends ``HELLO <flow>\\n`` then streams 8-byte big-endian counters
  (0, 1, 2, ...) in 512-byte chunks every 10 ms; the server streams the same kind of counters
  back, independently. Each side checks that the counters it receives are contiguous and records
  the wall-clock time of every receive and any error (reset, EOF, corruption).
- UDP: each flow is one socket (one source port) sending ``<flow> <seq>`` every 20 ms; the server
  answers ``<flow> <seq> <source ip>:<source port>`` — the address it saw, so a NAT mapping that
  changed during the drill is visible.
- ICMP: ``ping -D -O -i 0.05`` to an upstream host, its output kept verbatim.

The clients stop when the file ``DIR/stop`` appears, the server when ``DIR/stop-server`` does
(after the clients, so that its closing is not taken for a reset); then they write their records
as JSON (``DIR/server.json``, ``DIR/<name>.json``, ``DIR/<name>.ping``); while running, the client
rewrites ``DIR/<name>.progress`` (the last receive time of every flow) every 200 ms. The analysis
of these files is pure and lives in `envrouter.lab.drill_report`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Any

from envrouter.files import write_json
from envrouter.waiting import end_process

CHUNK_COUNTERS = 64  # 64 x 8 bytes = 512 bytes per send
SEND_INTERVAL = 0.010
UDP_INTERVAL = 0.020
PING_INTERVAL = "0.05"


class Stream:
    """One direction of a TCP stream: counters sent and counters checked on receive."""

    def __init__(self) -> None:
        self.next_out = 0
        self.next_in = 0
        self.partial = b""
        self.rx_times: list[float] = []
        self.rx_bytes = 0
        self.tx_bytes = 0
        self.error: str | None = None
        self.closed_at: float | None = None

    def chunk(self) -> bytes:
        out = b"".join(struct.pack(">Q", self.next_out + i) for i in range(CHUNK_COUNTERS))
        self.next_out += CHUNK_COUNTERS
        return out

    def feed(self, data: bytes) -> None:
        self.rx_times.append(time.time())
        self.rx_bytes += len(data)
        buf = self.partial + data
        whole = len(buf) - len(buf) % 8
        for off in range(0, whole, 8):
            (value,) = struct.unpack_from(">Q", buf, off)
            if value != self.next_in and self.error is None:
                self.error = f"corrupt stream: got counter {value}, expected {self.next_in}"
            self.next_in = value + 1
        self.partial = buf[whole:]

    def record(self, flow: str, **extra: Any) -> dict[str, Any]:
        return {"flow": flow, "kind": "tcp", "rx_times": self.rx_times, "rx_bytes": self.rx_bytes,
                "tx_bytes": self.tx_bytes, "error": self.error, "closed_at": self.closed_at,
                **extra}


def _stream(sock: socket.socket, st: Stream, stop: threading.Event) -> None:
    """Send counters every SEND_INTERVAL and receive the peer's, until stop or an error."""
    sock.settimeout(SEND_INTERVAL)
    next_send = time.monotonic()
    pending = b""
    while not stop.is_set():
        now = time.monotonic()
        if now >= next_send:
            # a full send buffer (the path is down) delays the stream, it does not end it
            if not pending:
                pending = st.chunk()
            try:
                sent = sock.send(pending)
                pending = pending[sent:]
                st.tx_bytes += sent
            except TimeoutError:
                pass
            except OSError as exc:
                st.error = st.error or f"send: {exc}"
                break
            next_send = now + SEND_INTERVAL
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError as exc:
            st.error = st.error or f"recv: {exc}"
            break
        if not data:
            st.error = st.error or "recv: connection closed by the peer"
            break
        st.feed(data)
    st.closed_at = time.time()
    with contextlib.suppress(OSError):
        sock.close()


def _stop_requested(directory: str, what: str = "stop") -> bool:
    return os.path.exists(os.path.join(directory, what))


# ----------------------------------------------------------------------------- server


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def serve(bind: str, tcp_port: int, udp_port: int, directory: str) -> int:
    stop = threading.Event()
    family = _family(bind)
    tcp = socket.create_server((bind, tcp_port), family=family, reuse_port=False, backlog=64)
    tcp.settimeout(0.1)
    udp = socket.socket(family, socket.SOCK_DGRAM)
    udp.bind((bind, udp_port))
    udp.settimeout(0.1)
    streams: dict[str, Stream] = {}
    peers: dict[str, list[str]] = {}
    udp_seen: dict[str, list[str]] = {}
    threads: list[threading.Thread] = []
    lock = threading.Lock()

    def handle(conn: socket.socket, peer: str) -> None:
        conn.settimeout(5)
        hello = b""
        try:
            while not hello.endswith(b"\n") and len(hello) < 200:
                part = conn.recv(1)
                if not part:
                    return
                hello += part
        except OSError:
            return
        flow = hello.decode(errors="replace").split()[-1]
        st = Stream()
        with lock:
            streams[flow] = st
            peers.setdefault(flow, []).append(peer)
        _stream(conn, st, stop)

    def udp_loop() -> None:
        while not stop.is_set():
            try:
                data, peer = udp.recvfrom(2048)  # IPv6: (host, port, flowinfo, scope)
            except TimeoutError:
                continue
            except OSError:
                break
            parts = data.decode(errors="replace").split()
            if len(parts) != 2:
                continue
            host, port = peer[0], peer[1]
            src = f"{host}:{port}"
            with lock:
                seen = udp_seen.setdefault(parts[0], [])
                if src not in seen:
                    seen.append(src)
            with contextlib.suppress(OSError):
                udp.sendto(f"{parts[0]} {parts[1]} {src}".encode(), peer)

    ut = threading.Thread(target=udp_loop, daemon=True)
    ut.start()
    with open(os.path.join(directory, "server.ready"), "w") as f:
        f.write(f"{os.getpid()}\n")
    while not _stop_requested(directory, "stop-server"):
        try:
            conn, addr = tcp.accept()
        except TimeoutError:
            continue
        th = threading.Thread(target=handle, args=(conn, f"{addr[0]}:{addr[1]}"), daemon=True)
        th.start()
        threads.append(th)
    stop.set()
    for th in [*threads, ut]:
        th.join(2)
    with lock:
        out = {"tcp": [st.record(flow, peers=peers.get(flow, [])) for flow, st in streams.items()],
               "udp_seen": udp_seen}
    write_json(os.path.join(directory, "server.json"), out)
    return 0


# ----------------------------------------------------------------------------- client


class UdpFlow:
    def __init__(self, flow: str, server: tuple[str, int]) -> None:
        self.flow = flow
        self.server = server
        self.sock = socket.socket(_family(server[0]), socket.SOCK_DGRAM)
        self.sock.settimeout(UDP_INTERVAL)
        self.sent = 0
        self.rx_times: list[float] = []
        self.rx_seqs: set[int] = set()
        self.seen_sources: list[str] = []
        self.error: str | None = None

    def run(self, stop: threading.Event) -> None:
        next_send = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_send:
                try:
                    self.sock.sendto(f"{self.flow} {self.sent}".encode(), self.server)
                except OSError as exc:
                    # e.g. no route while the VIP moves: a lost datagram, not a dead flow
                    self.error = f"send: {exc}"
                self.sent += 1
                next_send = now + UDP_INTERVAL
            try:
                data = self.sock.recv(2048)
            except TimeoutError:
                continue
            except OSError as exc:  # ICMP port unreachable and the like
                self.error = f"recv: {exc}"
                continue
            parts = data.decode(errors="replace").split()
            if len(parts) == 3 and parts[0] == self.flow and parts[1].isdigit():
                self.rx_times.append(time.time())
                self.rx_seqs.add(int(parts[1]))
                if parts[2] not in self.seen_sources:
                    self.seen_sources.append(parts[2])
        self.sock.close()

    def record(self) -> dict[str, Any]:
        return {"flow": self.flow, "kind": "udp", "rx_times": self.rx_times, "sent": self.sent,
                "received": len(self.rx_seqs), "seen_sources": self.seen_sources,
                "error": self.error}


def client(name: str, server: str, tcp_port: int, udp_port: int, ping: str | None,
           n_tcp: int, n_udp: int, directory: str) -> int:
    stop = threading.Event()
    ping_out = os.path.join(directory, f"{name}.ping")
    ping_proc = None
    if ping:
        with open(ping_out, "wb") as f:
            ping_proc = subprocess.Popen(["ping", "-D", "-O", "-n", "-i", PING_INTERVAL, "-W", "1",
                                          ping], stdout=f, stderr=subprocess.STDOUT)
    tcp_streams: dict[str, Stream] = {}
    threads: list[threading.Thread] = []
    for i in range(n_tcp):
        flow = f"{name}-tcp{i}"
        st = Stream()
        tcp_streams[flow] = st
        try:
            sock = socket.create_connection((server, tcp_port), timeout=10)
            sock.sendall(f"HELLO {flow}\n".encode())
        except OSError as exc:
            st.error = f"connect: {exc}"
            st.closed_at = time.time()
            continue
        th = threading.Thread(target=_stream, args=(sock, st, stop), daemon=True)
        th.start()
        threads.append(th)
    udp_flows = [UdpFlow(f"{name}-udp{i}", (server, udp_port)) for i in range(n_udp)]
    for uf in udp_flows:
        th = threading.Thread(target=uf.run, args=(stop,), daemon=True)
        th.start()
        threads.append(th)
    progress = os.path.join(directory, f"{name}.progress")
    while not _stop_requested(directory):
        last = {f: (st.rx_times[-1] if st.rx_times else None) for f, st in tcp_streams.items()}
        last.update({uf.flow: (uf.rx_times[-1] if uf.rx_times else None) for uf in udp_flows})
        errors = {f: st.error for f, st in tcp_streams.items() if st.error}
        write_json(progress, {"time": time.time(), "last_rx": last, "errors": errors},
                   durable=False)
        time.sleep(0.2)
    stop.set()
    if ping_proc is not None:
        ping_proc.send_signal(signal.SIGINT)  # ping prints its summary on SIGINT
        end_process(ping_proc, 5)
    for th in threads:
        th.join(2)
    flows = [st.record(f) for f, st in tcp_streams.items()] + [uf.record() for uf in udp_flows]
    write_json(os.path.join(directory, f"{name}.json"), {"name": name, "flows": flows})
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="role", required=True)
    s = sub.add_parser("server")
    s.add_argument("--bind", required=True)
    c = sub.add_parser("client")
    c.add_argument("--name", required=True)
    c.add_argument("--server", required=True)
    c.add_argument("--ping")
    c.add_argument("--tcp", type=int, default=3)
    c.add_argument("--udp", type=int, default=2)
    for sp in (s, c):
        sp.add_argument("--tcp-port", type=int, required=True)
        sp.add_argument("--udp-port", type=int, required=True)
        sp.add_argument("--dir", required=True)
    a = p.parse_args(argv)
    if a.role == "server":
        return serve(a.bind, a.tcp_port, a.udp_port, a.dir)
    return client(a.name, a.server, a.tcp_port, a.udp_port, a.ping, a.tcp, a.udp, a.dir)


if __name__ == "__main__":
    sys.exit(main())
