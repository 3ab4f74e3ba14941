"""Compare the VIP holder's conntrack table with a peer's copy (pure; bench/conntrack_diff.py
reads the tables from a running lab).

A peer's copy of a NATed flow is right only if it has the holder's NAT port: after a failover to
that peer, upstream's next packet is matched against the copy's reply tuple. The comparison
counts, per peer: flows with the same NAT port, with another one, only on the peer, only on the
holder; and for the flows with another NAT port whether the peer holds another flow from the same
client address and port mapped to that port — the kernel's NAT reuses such a mapping when the
message carried no port (`nf_nat_core.c` find_appropriate_src), see docs/ha.md "At scale".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

# (protocol, client address, client port, server address, server port)
Key = tuple[str, str, str, str, str]


@dataclass(frozen=True)
class Entry:
    nat_port: str  # the reply tuple's destination port: the NAT's source port
    state: str  # TCP state, "" for other protocols
    timeout: int


def parse_conntrack_list(text: str) -> dict[Key, Entry]:
    """`conntrack -L` output (one flow a line) -> flows by original tuple; lines that are not
    TCP/UDP flows with both tuples are skipped."""
    table: dict[Key, Entry] = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) < 4 or f[0] not in ("tcp", "udp") or not f[2].isdigit():
            continue
        values: dict[str, list[str]] = {}
        for word in f:
            name, eq, value = word.partition("=")
            if eq:
                values.setdefault(name, []).append(value)
        src, dst = values.get("src", []), values.get("dst", [])
        sport, dport = values.get("sport", []), values.get("dport", [])
        if min(len(src), len(dst), len(sport), len(dport)) < 2:
            continue
        key = (f[0], src[0], sport[0], dst[0], dport[0])
        table[key] = Entry(nat_port=dport[1], state=f[3] if f[0] == "tcp" else "",
                           timeout=int(f[2]))
    return table


@dataclass
class PeerDiff:
    same: int = 0
    other_port: int = 0
    peer_only: int = 0
    holder_only: int = 0
    # flows with another NAT port whose port the peer maps another flow from the same client
    # address and port to
    other_port_same_source: int = 0
    peer_only_states: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)


def compare(holder: dict[Key, Entry], peer: dict[Key, Entry], *, examples: int = 3) -> PeerDiff:
    d = PeerDiff()
    by_source: dict[tuple[str, str, str], list[Key]] = {}
    for key in peer:
        by_source.setdefault(key[:3], []).append(key)
    for key, e in peer.items():
        h = holder.get(key)
        if h is None:
            d.peer_only += 1
            d.peer_only_states[e.state or key[0]] += 1
        elif h.nat_port == e.nat_port:
            d.same += 1
        else:
            d.other_port += 1
            others = [k for k in by_source[key[:3]]
                      if k != key and peer[k].nat_port == e.nat_port]
            if others:
                d.other_port_same_source += 1
            if len(d.examples) < examples:
                d.examples.append(
                    f"{key[1]}:{key[2]} -> {key[3]}:{key[4]} ({e.state or key[0]}): NAT port "
                    f"{h.nat_port} on the holder, {e.nat_port} on the peer"
                    + (f" (the peer maps {others[0][1]}:{others[0][2]} -> :{others[0][4]} to "
                       f"{e.nat_port} too)" if others else ""))
    d.holder_only = sum(1 for key in holder if key not in peer)
    return d
