"""Does an address answer DNS or NTP? A one-shot prober for the lab, run inside a node.

``python -m envrouter.lab.probe [--timeout S] [--tries N] KIND:ADDRESS ...`` sends every query
at once and prints one JSON object ``{"KIND:ADDRESS": {"replied": bool, "ok": bool,
"detail": str}}``. Kinds: ``dns`` (UDP query for the A record of ``--name``; replied = a reply
with our id, ok = NOERROR with at least one answer record), ``dnstcp`` (a TCP connect to port
53; replied = ok = connected), ``ntp`` (an NTPv4 client request; replied = a server reply
echoing our transmit timestamp, ok = with a stratum 1..15, i.e. time a client would accept).
Targets not ok are queried again, up to ``--tries`` rounds.

Why not dig and chronyd alone: "nothing answers" needs a definite bound per address, and the
public-side checks probe several addresses; one process sending everything at once answers in
one timeout. The packet building and parsing below are pure (unit-tested); `probe` does I/O.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import struct
import sys
import time
from dataclasses import dataclass

NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01
KINDS = ("dns", "dnstcp", "ntp")


# --- pure: packets ---------------------------------------------------------------------------
def dns_query(name: str, qid: int) -> bytes:
    """A recursive-desired query for the A record of `name`."""
    header = struct.pack("!HHHHHH", qid & 0xFFFF, 0x0100, 1, 0, 0, 0)
    labels = b"".join(
        bytes([len(p)]) + p.encode("ascii") for p in name.rstrip(".").split(".") if p
    )
    return header + labels + b"\x00" + struct.pack("!HH", 1, 1)


def dns_reply(data: bytes, qid: int) -> tuple[int, int] | None:
    """(rcode, answer count) of a reply to query `qid`, or None if it is not one."""
    if len(data) < 12:
        return None
    rid, flags, _qd, an, _ns, _ar = struct.unpack("!HHHHHH", data[:12])
    if rid != qid & 0xFFFF or not flags & 0x8000:
        return None
    return flags & 0x000F, an


def ntp_request(transmit: float) -> bytes:
    """An NTPv4 client request (LI 0, VN 4, mode 3) carrying `transmit` (Unix time)."""
    secs = int(transmit) + NTP_EPOCH_OFFSET
    frac = int((transmit % 1) * (1 << 32)) & 0xFFFFFFFF
    return struct.pack("!B", (0 << 6) | (4 << 3) | 3) + bytes(39) + struct.pack("!II", secs, frac)


def ntp_reply(data: bytes, request: bytes) -> int | None:
    """The stratum of a server reply to `request` (mode 4, origin = our transmit), else None."""
    if len(data) < 48 or data[0] & 0x07 != 4:
        return None
    if data[24:32] != request[40:48]:
        return None
    return data[1]


@dataclass
class Result:
    replied: bool = False  # the server said anything to our query (even an error)
    ok: bool = False  # a usable answer: NOERROR with records / a synchronised stratum
    detail: str = "no answer"


# --- effects -----------------------------------------------------------------------------------
def _target(spec: str) -> tuple[str, str]:
    kind, _, addr = spec.partition(":")
    if kind not in KINDS or not addr:
        raise ValueError(f"{spec!r}: expected KIND:ADDRESS with KIND one of {', '.join(KINDS)}")
    return kind, addr


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def probe(targets: list[str], *, name: str = "www.lab.example", timeout: float = 2.0,
          tries: int = 2) -> dict[str, Result]:
    """Query every target at once, `tries` times `timeout` seconds; what answered."""
    results = {t: Result() for t in targets}
    parsed = {t: _target(t) for t in targets}
    for _ in range(tries):
        pending = [t for t in targets if not results[t].ok]
        if not pending:
            break
        socks: dict[socket.socket, tuple[str, bytes | int]] = {}
        tcp: dict[socket.socket, str] = {}
        try:
            for t in pending:
                kind, addr = parsed[t]
                if kind == "dnstcp":
                    s = socket.socket(_family(addr), socket.SOCK_STREAM)
                    s.setblocking(False)
                    s.connect_ex((addr, 53))
                    tcp[s] = t
                    continue
                s = socket.socket(_family(addr), socket.SOCK_DGRAM)
                s.setblocking(False)
                s.connect((addr, 53 if kind == "dns" else 123))
                if kind == "dns":
                    qid = int.from_bytes(os.urandom(2), "big")
                    s.send(dns_query(name, qid))
                    socks[s] = (t, qid)
                else:
                    req = ntp_request(time.time())
                    s.send(req)
                    socks[s] = (t, req)
            deadline = time.monotonic() + timeout
            while (socks or tcp) and time.monotonic() < deadline:
                left = deadline - time.monotonic()
                readable, writable, _ = select.select(list(socks), list(tcp), [], max(left, 0))
                for s in readable:
                    t, key = socks[s]
                    try:
                        data = s.recv(4096)
                    except ConnectionRefusedError:
                        results[t].detail = "refused (ICMP port unreachable)"
                        del socks[s]
                        continue
                    except OSError as exc:
                        results[t].detail = str(exc)
                        del socks[s]
                        continue
                    if isinstance(key, int):
                        got = dns_reply(data, key)
                        if got is not None:
                            rcode, an = got
                            results[t] = Result(True, rcode == 0 and an > 0,
                                                f"rcode {rcode}, {an} answers")
                            del socks[s]
                    else:
                        stratum = ntp_reply(data, key)
                        if stratum is not None:
                            results[t] = Result(True, 1 <= stratum <= 15, f"stratum {stratum}")
                            del socks[s]
                for s in writable:
                    t = tcp.pop(s)
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    results[t] = (Result(True, True, "TCP connected") if err == 0
                                  else Result(False, False, os.strerror(err)))
        finally:
            for s in [*socks, *tcp]:
                s.close()
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m envrouter.lab.probe")
    ap.add_argument("targets", nargs="+", help="KIND:ADDRESS, KIND = dns | dnstcp | ntp")
    ap.add_argument("--name", default="www.lab.example")
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--tries", type=int, default=2)
    args = ap.parse_args(argv)
    try:
        res = probe(args.targets, name=args.name, timeout=args.timeout, tries=args.tries)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(json.dumps({t: {"replied": r.replied, "ok": r.ok, "detail": r.detail}
                      for t, r in res.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
