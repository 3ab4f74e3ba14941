"""A TCP relay from a lab namespace to the machine's loopback.

The control plane listens on 127.0.0.1 of the machine; the nodes' agents live in other network
namespaces and cannot reach it. This process (in the machine's namespaces) opens its listening
socket inside the admin gateway's namespace (setns, bind, setns back) and relays every connection
to the control plane. No address, route or rule of the machine changes.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import socket
import threading

CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def listen_in_netns(netns_path: str, host: str, port: int) -> socket.socket:
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(netns_path, os.O_RDONLY)
    try:
        _setns(target)
        try:
            sock = socket.create_server((host, port), reuse_port=False)
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)
    return sock


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _serve(conn: socket.socket, target: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(target, timeout=10)
        upstream.settimeout(None)
    except OSError:
        conn.close()
        return
    t = threading.Thread(target=_pipe, args=(upstream, conn), daemon=True)
    t.start()
    _pipe(conn, upstream)
    t.join()
    conn.close()
    upstream.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--netns", required=True, help="path of the namespace, /run/netns/NAME")
    p.add_argument("--listen", required=True, help="ADDRESS:PORT inside that namespace")
    p.add_argument("--target", required=True, help="ADDRESS:PORT in this process' namespace")
    a = p.parse_args(argv)
    lhost, lport = a.listen.rsplit(":", 1)
    thost, tport = a.target.rsplit(":", 1)
    server = listen_in_netns(a.netns, lhost, int(lport))
    print(f"relaying {a.listen} (in {a.netns}) -> {a.target}", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=_serve, args=(conn, (thost, int(tport))), daemon=True).start()


if __name__ == "__main__":
    main()
