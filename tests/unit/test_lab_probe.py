"""The lab's DNS/NTP prober: packet building and reply parsing (pure), and a loopback round
trip against a tiny UDP responder in this process (no namespace needed)."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from envrouter.lab import probe


def test_dns_query_wire_format() -> None:
    q = probe.dns_query("www.lab.example", 0x1234)
    assert q[:12] == struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    assert q[12:] == b"\x03www\x03lab\x07example\x00" + struct.pack("!HH", 1, 1)


def test_dns_reply_matches_id_and_qr() -> None:
    reply = struct.pack("!HHHHHH", 7, 0x8180, 1, 2, 0, 0)
    assert probe.dns_reply(reply, 7) == (0, 2)
    assert probe.dns_reply(reply, 8) is None  # not our query
    query_echo = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0)
    assert probe.dns_reply(query_echo, 7) is None  # QR bit unset: not a reply
    servfail = struct.pack("!HHHHHH", 7, 0x8182, 1, 0, 0, 0)
    assert probe.dns_reply(servfail, 7) == (2, 0)
    assert probe.dns_reply(b"short", 7) is None


def test_ntp_request_and_reply() -> None:
    req = probe.ntp_request(1_700_000_000.5)
    assert len(req) == 48 and req[0] == 0x23  # LI 0, VN 4, mode 3
    secs, frac = struct.unpack("!II", req[40:48])
    assert secs == 1_700_000_000 + probe.NTP_EPOCH_OFFSET and frac == 1 << 31
    reply = bytearray(48)
    reply[0], reply[1] = 0x24, 3  # mode 4 (server), stratum 3
    reply[24:32] = req[40:48]  # origin = our transmit
    assert probe.ntp_reply(bytes(reply), req) == 3
    other = bytearray(reply)
    other[24:32] = bytes(8)
    assert probe.ntp_reply(bytes(other), req) is None  # not a reply to this request
    client = bytearray(reply)
    client[0] = 0x23
    assert probe.ntp_reply(bytes(client), req) is None  # mode 3: not a server


def test_bad_target_refused() -> None:
    with pytest.raises(ValueError):
        probe.probe(["http:127.0.0.1"])
    assert probe.main(["nope"]) == 2


def _responder(sock: socket.socket, stratum: int, count: int) -> None:
    for _ in range(count):
        data, peer = sock.recvfrom(512)
        reply = bytearray(48)
        reply[0], reply[1] = 0x24, stratum
        reply[24:32] = data[40:48]
        sock.sendto(bytes(reply), peer)


@pytest.mark.parametrize(("stratum", "ok"), [(2, True), (0, False)])
def test_probe_round_trip_on_loopback(monkeypatch: pytest.MonkeyPatch, stratum: int,
                                      ok: bool) -> None:
    """A replying server counts as replied; only a synchronised stratum is ok; a closed port
    is neither."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    real_connect = socket.socket.connect

    def connect(self: socket.socket, addr: tuple[str, int]) -> None:
        # NTP's port 123 needs root; point the prober's NTP socket at our responder
        real_connect(self, (addr[0], port) if addr[1] == 123 and addr[0] == "127.0.0.1"
                     else addr)

    monkeypatch.setattr(socket.socket, "connect", connect)
    tries = 1 if ok else 2
    t = threading.Thread(target=_responder, args=(srv, stratum, tries), daemon=True)
    t.start()
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.2", 0))
    dead = closed.getsockname()
    closed.close()
    try:
        res = probe.probe(["ntp:127.0.0.1", f"dns:{dead[0]}"], timeout=1, tries=tries)
    finally:
        t.join(5)
        srv.close()
    assert res["ntp:127.0.0.1"].replied is True
    assert res["ntp:127.0.0.1"].ok is ok
    assert res[f"dns:{dead[0]}"].replied is False
