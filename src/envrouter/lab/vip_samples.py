"""The VIP holders sampled during a drill, and what they say (pure).

`envrouter.lab.vip_watch` samples, every 50 ms, which controllers' ``vrouter`` namespaces
hold each VIP. From those samples: when every VIP was first seen on the new holder (measured
from the fault, not from when the drill happened to look), and whether any VIP was ever held by
two namespaces at once (a split brain the end state alone would not show).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    t: float  # wall clock
    holders: dict[str, tuple[str, ...]]  # VIP name -> controllers whose namespace holds it

    def sole_holder(self) -> str | None:
        """The one controller holding every VIP alone, if there is one."""
        nodes = {n for hs in self.holders.values() for n in hs}
        if len(nodes) == 1 and self.holders and all(len(h) == 1 for h in self.holders.values()):
            return nodes.pop()
        return None


@dataclass(frozen=True)
class Timeline:
    samples: int
    first_seen_s: float | None  # fault -> first sample with every VIP on `new_holder` alone
    new_holder: str | None
    max_holders: int  # the most namespaces holding one VIP at one sample
    two_holders_s: float  # time (sampled) with some VIP held by two or more namespaces
    two_holders_from: float | None  # s after the fault the first such sample was taken
    two_holders_until: float | None  # s after the fault the last such sample was taken
    vacant_s: float  # time (sampled) with some VIP held by nobody
    longest_interval_s: float  # the longest time between two samples (their resolution)


def confirmed_holders(held: dict[str, list[str]], vips: dict[str, str],
                      reread: dict[str, set[str]]) -> dict[str, tuple[str, ...]]:
    """A sample reads the controllers one after another, so a read that stalls (a loaded
    machine) can show a VIP on the old holder (read before its stop) and on the new one (read
    after its start): a move, not two holders. Where a VIP was seen on several controllers,
    `reread` is a second read of those controllers' addresses, taken just after; a controller
    keeps the VIP only if that read still shows it. Once the new holder has a VIP the old one
    has stopped it, so the second read settles a move; a true split brain shows in both."""
    out: dict[str, tuple[str, ...]] = {}
    for name, nodes in held.items():
        if len(nodes) > 1:
            nodes = [n for n in nodes if vips[name] in reread.get(n, set())]
        out[name] = tuple(nodes)
    return out


def timeline(samples: list[Sample], t_fault: float, holder_before: str,
             expect_move: bool | None) -> Timeline:
    """Summarise the samples from the fault on. The new holder is the one holding every VIP
    alone at the last sample; it is "first seen" at the first sample after the fault from which
    on it held them alone without a break. Durations are counted sample to sample."""
    after = [s for s in sorted(samples, key=lambda s: s.t) if s.t >= t_fault]
    empty = Timeline(len(after), None, None, 0, 0.0, None, None, 0.0, 0.0)
    if not after:
        return empty
    last = after[-1].sole_holder()
    new_holder = last if last is not None and (expect_move is not True
                                               or last != holder_before) else None
    first_seen = None
    if new_holder is not None:
        for s in reversed(after):
            if s.sole_holder() != new_holder:
                break
            first_seen = s.t - t_fault
    max_holders = max((len(h) for s in after for h in s.holders.values()), default=0)
    two = vacant = longest = 0.0
    two_from = two_until = None
    for s, nxt in zip(after, after[1:] + [None], strict=True):
        span = (nxt.t - s.t) if nxt is not None else 0.0
        longest = max(longest, span)
        if any(len(h) >= 2 for h in s.holders.values()):
            two += span
            two_from = s.t - t_fault if two_from is None else two_from
            two_until = s.t - t_fault
        if any(len(h) == 0 for h in s.holders.values()):
            vacant += span
    return Timeline(len(after), first_seen, new_holder, max_holders, two, two_from, two_until,
                    vacant, longest)


def describe_two_holders(tl: Timeline) -> str:
    """'' if no VIP was ever held twice, else a verdict line."""
    if tl.max_holders < 2:
        return ""
    assert tl.two_holders_from is not None and tl.two_holders_until is not None
    return (f"split brain: a VIP was held by {tl.max_holders} namespaces at once, sampled from "
            f"{tl.two_holders_from * 1000:.0f} to {tl.two_holders_until * 1000:.0f} ms after "
            f"the fault ({tl.two_holders_s * 1000:.0f} ms)")
