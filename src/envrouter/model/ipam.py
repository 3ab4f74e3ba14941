"""IPAM, the pure part: which addresses a network may hand out, and picking free ones.

The database part (serialising allocations with a lock, the unique constraint as the last
guard) is in `envrouter.model.service`; this module only computes on plain values so that it can
be tested exhaustively.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from envrouter.errors import ConflictError, ValidationError
from envrouter.model.rules import excluded_addresses, parse_address


@dataclass(frozen=True)
class Pool:
    """What IPAM needs to know about one network."""

    name: str
    cidr: str
    gateway: str | None
    ranges: tuple[tuple[str, str], ...]

    @property
    def obj(self) -> str:
        return f"network {self.name!r}"

    @property
    def version(self) -> int:
        return ipaddress.ip_network(self.cidr).version

    def held_ints(self, used: Collection[str]) -> set[int]:
        """The held addresses of this pool's family as integers: a network holds addresses of
        both families, and an IPv4 address's integer is also a (different) IPv6 address."""
        out = set()
        for a in used:
            addr = ipaddress.ip_address(a)
            if addr.version == self.version:
                out.add(int(addr))
        return out

    def address(self, value: int) -> str:
        if self.version == 4:
            return str(ipaddress.IPv4Address(value))
        return str(ipaddress.IPv6Address(value))

    def _spans(self) -> list[tuple[int, int]]:
        return [
            (int(ipaddress.ip_address(s)), int(ipaddress.ip_address(e))) for s, e in self.ranges
        ]

    def _excluded(self) -> set[int]:
        return excluded_addresses(ipaddress.ip_network(self.cidr), self.gateway)

    def in_ranges(self, address: str) -> bool:
        value = int(ipaddress.ip_address(address))
        return any(s <= value <= e for s, e in self._spans()) and value not in self._excluded()

    def candidates(self) -> Iterator[int]:
        """Every address the ranges may hand out, in order."""
        excluded = self._excluded()
        for start, end in self._spans():
            for value in range(start, end + 1):
                if value not in excluded:
                    yield value

    def capacity(self) -> int:
        excluded = self._excluded()
        total = 0
        for start, end in self._spans():
            total += end - start + 1 - sum(1 for x in excluded if start <= x <= end)
        return total


def free_count(pool: Pool, used: Collection[str]) -> int:
    held = pool.held_ints(used)
    excluded = pool._excluded()
    spans = pool._spans()
    held_in_ranges = sum(
        1 for v in held if v not in excluded and any(s <= v <= e for s, e in spans)
    )
    return pool.capacity() - held_in_ranges


def pick_free(pool: Pool, used: Collection[str], count: int) -> list[str]:
    """The `count` lowest free addresses of the ranges; an exhausted pool is a ConflictError
    that says how many addresses are missing."""
    if count <= 0:
        return []
    used_ints = pool.held_ints(used)
    out: list[str] = []
    for value in pool.candidates():
        if value not in used_ints:
            out.append(pool.address(value))
            if len(out) == count:
                return out
    missing = count - len(out)
    raise ConflictError(
        pool.obj,
        "ranges",
        f"range exhausted: {count} address(es) needed, {len(out)} free, {missing} missing; "
        "widen the ranges",
    )


class Allocator:
    """Hands out addresses of one pool across a batch without rescanning from the start."""

    def __init__(self, pool: Pool, used: Collection[str]) -> None:
        self.pool = pool
        self.used = pool.held_ints(used)
        self._iter = pool.candidates()

    def take(self) -> str:
        for value in self._iter:
            if value not in self.used:
                self.used.add(value)
                return self.pool.address(value)
        raise ConflictError(self.pool.obj, "ranges", "range exhausted: 1 address(es) missing")

    def hold(self, address: str) -> None:
        self.used |= self.pool.held_ints([address])


def check_user_address(
    pool: Pool, obj: str, field: str, address: str, holders: dict[str, str], own: str | None = None
) -> str:
    """A user-given address (a node's or a user-defined VIP's): inside the CIDR, not the network,
    broadcast or gateway address, and not held by anybody else (holders: address -> who)."""
    addr = parse_address(obj, field, address)
    net = ipaddress.ip_network(pool.cidr)
    if addr.version != net.version or addr not in net:
        raise ValidationError(obj, field, f"{addr} is outside {pool.obj} ({net})")
    if int(addr) == int(net.network_address):
        raise ValidationError(obj, field, f"{addr} is the network address of {net}")
    if net.version == 4 and int(addr) == int(net.broadcast_address):
        raise ValidationError(obj, field, f"{addr} is the broadcast address of {net}")
    if pool.gateway and addr == ipaddress.ip_address(pool.gateway):
        raise ValidationError(obj, field, f"{addr} is the gateway of {pool.obj}")
    text = str(addr)
    holder = holders.get(text)
    if holder is not None and holder != own:
        raise ConflictError(obj, field, f"{text} is already held by {holder}")
    return text


def ensure_capacity(pool: Pool, used: Collection[str], needed: int) -> None:
    """Refuse a batch up front, saying how many addresses are missing in total."""
    if needed <= 0:
        return
    free = free_count(pool, used)
    if free < needed:
        raise ConflictError(
            pool.obj,
            "ranges",
            f"range exhausted: {needed} address(es) needed, {free} free, "
            f"{needed - free} missing; widen the ranges",
        )
