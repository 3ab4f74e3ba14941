"""envrouter.lab.vip_samples: when the VIPs were first seen on the new holder, and whether two
namespaces ever held one at once (pure)."""

from __future__ import annotations

import pytest

from envrouter.lab.vip_samples import Sample, confirmed_holders, describe_two_holders, timeline

T0 = 1_700_000_000.0


def both(*nodes: str) -> dict[str, tuple[str, ...]]:
    return {"vrouter": tuple(nodes), "vrouter_pub": tuple(nodes)}


def series(*spans: tuple[float, float, dict[str, tuple[str, ...]]]) -> list[Sample]:
    out = []
    for start, end, holders in spans:
        t = start
        while t < end - 1e-9:
            out.append(Sample(T0 + round(t, 3), holders))
            t += 0.05
    return out


def test_sole_holder() -> None:
    assert Sample(T0, both("ctl2")).sole_holder() == "ctl2"
    assert Sample(T0, both("ctl1", "ctl2")).sole_holder() is None
    assert Sample(T0, {"vrouter": ("ctl1",), "vrouter_pub": ()}).sole_holder() is None
    assert Sample(T0, {"vrouter": ("ctl1",), "vrouter_pub": ("ctl2",)}).sole_holder() is None


def test_a_clean_move_first_seen_from_the_fault() -> None:
    samples = series((-1, 0, both("ctl1")), (0, 0.2, both("ctl1")), (0.2, 1.1, both()),
                     (1.1, 4, both("ctl2")))
    tl = timeline(samples, T0, "ctl1", True)
    assert tl.new_holder == "ctl2"
    assert tl.first_seen_s == pytest.approx(1.1)
    assert tl.max_holders == 1 and tl.two_holders_s == 0 and describe_two_holders(tl) == ""
    assert tl.vacant_s == pytest.approx(0.9, abs=0.01)
    assert tl.samples == 80 and tl.longest_interval_s == pytest.approx(0.05, abs=1e-3)


def test_two_holders_are_measured_and_described() -> None:
    samples = series((0, 1.1, both("ctl1")), (1.1, 6.1, both("ctl1", "ctl2")),
                     (6.1, 6.3, both()), (6.3, 8, both("ctl3")))
    tl = timeline(samples, T0, "ctl1", None)
    assert tl.max_holders == 2
    assert tl.two_holders_s == pytest.approx(5.0, abs=0.01)
    assert tl.two_holders_from == pytest.approx(1.1) and tl.two_holders_until == pytest.approx(6.05)
    assert tl.new_holder == "ctl3" and tl.first_seen_s == pytest.approx(6.3)
    text = describe_two_holders(tl)
    assert "split brain" in text and "1100 to 6050 ms" in text


def test_first_seen_is_the_last_unbroken_run() -> None:
    # seen on ctl2, lost again, then for good: the figure is when it stayed
    samples = series((0, 1, both("ctl2")), (1, 1.5, both()), (1.5, 3, both("ctl2")))
    assert timeline(samples, T0, "ctl1", True).first_seen_s == pytest.approx(1.5)


def test_no_new_holder_when_it_should_have_moved() -> None:
    samples = series((0, 3, both("ctl1")))
    tl = timeline(samples, T0, "ctl1", True)
    assert tl.new_holder is None and tl.first_seen_s is None
    # staying is the expectation for daemon-kill: seen from the first sample
    stay = timeline(samples, T0, "ctl1", False)
    assert stay.new_holder == "ctl1" and stay.first_seen_s == pytest.approx(0)


def test_samples_before_the_fault_do_not_count() -> None:
    samples = series((-2, 0, both("ctl1", "ctl2")), (0, 2, both("ctl2")))
    tl = timeline(samples, T0, "ctl1", True)
    assert tl.max_holders == 1 and tl.first_seen_s == pytest.approx(0)
    assert timeline([], T0, "ctl1", True).samples == 0


VIPS = {"vrouter": "10.20.0.2", "vrouter_pub": "203.0.113.2"}


def test_a_move_read_across_a_stall_is_one_holder() -> None:
    # ctl1 read before its stop, ctl2 after its start: the second read shows ctl1 without them
    first = {"vrouter": ["ctl1", "ctl2"], "vrouter_pub": ["ctl2"]}
    again = {"ctl1": set(), "ctl2": {"10.20.0.2", "203.0.113.2"}}
    assert confirmed_holders(first, VIPS, again) == {"vrouter": ("ctl2",),
                                                     "vrouter_pub": ("ctl2",)}


def test_two_holders_in_both_reads_stay_two() -> None:
    first = {"vrouter": ["ctl1", "ctl2"], "vrouter_pub": ["ctl1", "ctl2"]}
    again = {"ctl1": {"10.20.0.2", "203.0.113.2"}, "ctl2": {"10.20.0.2", "203.0.113.2", "x"}}
    assert confirmed_holders(first, VIPS, again) == {"vrouter": ("ctl1", "ctl2"),
                                                     "vrouter_pub": ("ctl1", "ctl2")}
    tl = timeline([Sample(T0 + 0.05, confirmed_holders(first, VIPS, again))], T0, "ctl1", True)
    assert tl.max_holders == 2


def test_a_single_holder_needs_no_second_read() -> None:
    first = {"vrouter": ["ctl3"], "vrouter_pub": []}
    assert confirmed_holders(first, VIPS, {}) == {"vrouter": ("ctl3",), "vrouter_pub": ()}
