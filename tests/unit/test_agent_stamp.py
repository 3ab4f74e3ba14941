"""The kernel stamp keeps what observe reads and drops what moves by itself (pure parts)."""

from __future__ import annotations

import struct

from envrouter.agent import stamp


def attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def link_message(*, stats: bytes, timers: bytes) -> bytes:
    ifinfo = struct.pack("=BxHiII", 0, 1, 7, 0x1043, 0)
    linkinfo = attr(1, b"bridge\0") + attr(2 | 0x8000, timers)  # IFLA_INFO_KIND, _DATA
    return (ifinfo + attr(3, b"br-ex\0") + attr(23, stats) + attr(26, stats)
            + attr(18 | 0x8000, linkinfo) + attr(10, struct.pack("=I", 4)))


def test_a_link_keeps_its_name_kind_and_master_and_drops_counters_and_timers():
    a = stamp._link(link_message(stats=b"\1" * 16, timers=b"\1" * 8))
    b = stamp._link(link_message(stats=b"\2" * 16, timers=b"\2" * 8))
    assert a == b  # statistics, per-family data and the bridge's timers moved: same stamp
    assert b"br-ex" in a and b"bridge" in a
    other_master = link_message(stats=b"", timers=b"").replace(
        attr(10, struct.pack("=I", 4)), attr(10, struct.pack("=I", 5)))
    assert stamp._link(other_master) != stamp._link(link_message(stats=b"", timers=b""))


def test_an_address_drops_its_lifetimes_only():
    head = struct.pack("=BBBBI", 2, 24, 0, 0, 7)
    local = attr(2, bytes([10, 20, 0, 2]))
    one = head + local + attr(stamp.IFA_CACHEINFO, b"\1" * 16)
    two = head + local + attr(stamp.IFA_CACHEINFO, b"\2" * 16)
    assert stamp._addr(one) == stamp._addr(two)
    moved = head + attr(2, bytes([10, 20, 0, 3])) + attr(stamp.IFA_CACHEINFO, b"\1" * 16)
    assert stamp._addr(moved) != stamp._addr(one)
