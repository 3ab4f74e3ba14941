"""IPAM, the pure part."""

from __future__ import annotations

import pytest

from envrouter.errors import ConflictError, ValidationError
from envrouter.model.ipam import (
    Allocator,
    Pool,
    check_user_address,
    ensure_capacity,
    free_count,
    pick_free,
)

POOL = Pool("public", "203.0.113.0/24", "203.0.113.1", (("203.0.113.0", "203.0.113.5"),))


def test_candidates_skip_network_and_gateway():
    assert pick_free(POOL, [], 4) == ["203.0.113.2", "203.0.113.3", "203.0.113.4", "203.0.113.5"]
    assert POOL.capacity() == 4


def test_pick_free_skips_used_and_counts_missing():
    assert pick_free(POOL, ["203.0.113.2", "203.0.113.200"], 1) == ["203.0.113.3"]
    assert free_count(POOL, ["203.0.113.2", "203.0.113.200"]) == 3
    with pytest.raises(ConflictError) as info:
        pick_free(POOL, ["203.0.113.3"], 5)
    assert info.value.field == "ranges"
    assert "2 missing" in info.value.reason


def test_ensure_capacity_says_how_many_missing():
    with pytest.raises(ConflictError, match=r"7 address\(es\) needed, 4 free, 3 missing"):
        ensure_capacity(POOL, [], 7)
    ensure_capacity(POOL, [], 4)


def test_allocator_batches():
    alloc = Allocator(POOL, ["203.0.113.3"])
    assert [alloc.take(), alloc.take(), alloc.take()] == [
        "203.0.113.2",
        "203.0.113.4",
        "203.0.113.5",
    ]
    with pytest.raises(ConflictError):
        alloc.take()


def test_ipv6_pool():
    pool = Pool("v6", "2001:db8::/64", "2001:db8::1", (("2001:db8::1", "2001:db8::3"),))
    assert pick_free(pool, [], 2) == ["2001:db8::2", "2001:db8::3"]


@pytest.mark.parametrize(
    ("address", "exc", "words"),
    [
        ("198.51.100.7", ValidationError, "outside"),
        ("203.0.113.0", ValidationError, "network address"),
        ("203.0.113.255", ValidationError, "broadcast"),
        ("203.0.113.1", ValidationError, "gateway"),
        ("203.0.113.9", ConflictError, "node 'ctl1'"),
        ("not-an-ip", ValidationError, "not an IP"),
    ],
)
def test_user_address_rules(address, exc, words):
    with pytest.raises(exc) as info:
        check_user_address(
            POOL, "VIP 'vrouter_pub'", "address", address, {"203.0.113.9": "node 'ctl1'"}
        )
    assert words in info.value.reason
    assert info.value.field == "address"


def test_user_address_may_be_outside_ranges_and_own():
    held = {"203.0.113.9": "VIP 'vrouter_pub'"}
    assert check_user_address(POOL, "v", "address", "203.0.113.200", held) == "203.0.113.200"
    assert check_user_address(POOL, "v", "address", "203.0.113.9", held, own="VIP 'vrouter_pub'")


def test_pools_of_the_two_families_do_not_see_each_other():
    """A network's held addresses are of both families; 192.168.0.10 and ::c0a8:a are the same
    integer and must not block each other."""
    v6 = Pool("m", "::c0a8:0/120", None, (("::c0a8:a", "::c0a8:b"),))
    v4 = Pool("m", "192.168.0.0/24", None, (("192.168.0.10", "192.168.0.11"),))
    used = ["192.168.0.10", "::c0a8:b"]
    assert pick_free(v6, used, 1) == ["::c0a8:a"]
    assert pick_free(v4, used, 1) == ["192.168.0.11"]
    assert free_count(v6, used) == 1 and free_count(v4, used) == 1
    alloc = Allocator(v6, used)
    assert alloc.take() == "::c0a8:a"
    with pytest.raises(ConflictError):
        alloc.take()
