"""A failover drill as a picture: every flow's deliveries, the VIPs' holders and the events
against time, the fault at 0.

Two parts:
- `drill_timeline` (pure): the drill's report and traffic records (the same ones
  `envrouter.lab.drill_report.analyse` reads) -> a `Timeline` of plain data: one lane per flow (its
  tracks, delivering segments and gaps, the longest gap the report quotes), one band per VIP
  (who held it when) and the events. Unit-tested against the report.
- `render_svg`: draws a `Timeline` with matplotlib (imported here only, Agg backend) and writes
  SVG. Each lane, band and event is one SVG group with an id (``lane-<flow>``,
  ``band-<vip>``, ``conflict-<vip>``, ``event-<n>``) so tests can count them.

Times in a `Timeline` are seconds relative to the fault.

Optional inputs other parts of the lab may provide, in the report or as arguments:
- ``vip_holder_samples``: ``[[t, vip, holder_or_null], ...]``, t relative to the fault; one row
  per holder of the VIP at that sample (two rows with the same t and vip = two holders at
  once, drawn as a conflict; one row with null = nobody held it). `vip_rows` builds them.
- ``events``: ``[[t, label], ...]``, t relative to the fault (token lost, VIP stop/start,
  fencing ...).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from envrouter.errors import ValidationError
from envrouter.lab.drill_report import longest_gap, parse_ping
from envrouter.lab.traffic import PING_INTERVAL, SEND_INTERVAL, UDP_INTERVAL

# a silence longer than this is drawn as a gap (3 pings; TCP sends every 10 ms, UDP every 20 ms)
GAP_SHOWN = 0.15  # s
# the window before the fault when the caller does not say (envrouter.lab.drills.BASELINE)
DEFAULT_BASELINE = 1.5  # s


@dataclass(frozen=True)
class Track:
    """One direction of a flow: when it received."""

    name: str  # replies (ping), answers (UDP), download / upload (TCP: client / server receives)
    segments: list[tuple[float, float]]  # delivering without a gap longer than GAP_SHOWN
    gaps: list[tuple[float, float]]  # silences longer than GAP_SHOWN (window edges included)


@dataclass(frozen=True)
class Lane:
    flow: str
    kind: str  # icmp | tcp | udp
    node: str  # the compute node it runs from
    tracks: list[Track]
    longest_gap_ms: float  # over the tracks, as the report counts it
    longest_gap_at: float | None  # when that gap began
    survived: bool | None  # the report's verdict for the flow (None: not in the report)
    reason: str = ""


@dataclass(frozen=True)
class BandSegment:
    start: float
    end: float
    holders: tuple[str, ...]  # () with known=True: nobody held the VIP
    known: bool = True  # False: the drill did not look then
    note: str = ""

    @property
    def conflict(self) -> bool:
        return len(self.holders) > 1


@dataclass(frozen=True)
class Band:
    vip: str
    segments: list[BandSegment]
    sampled: bool  # from VIP holder samples (else from the holders before and after)


@dataclass(frozen=True)
class Event:
    t: float
    label: str
    kind: str = "event"  # fault | vip | event


@dataclass(frozen=True)
class Timeline:
    title: str
    start: float  # the measured window, relative to the fault
    end: float
    lanes: list[Lane] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- pure model


def silences(times: list[float], start: float, end: float,
             shown: float = GAP_SHOWN) -> list[tuple[float, float]]:
    """Intervals of [start, end] without an event, longer than `shown` (edges included)."""
    points = [start, *sorted(t for t in times if start <= t <= end), end]
    return [(a, b) for a, b in zip(points, points[1:], strict=False) if b - a > shown]


def delivering(gaps: list[tuple[float, float]], start: float,
               end: float) -> list[tuple[float, float]]:
    """The complement of `gaps` in [start, end]."""
    out, at = [], start
    for a, b in gaps:
        if a > at:
            out.append((at, a))
        at = max(at, b)
    if at < end:
        out.append((at, end))
    return out


def _track(name: str, times: list[float], t0: float, t_start: float, t_end: float) -> Track:
    gaps = silences(times, t_start, t_end)
    return Track(name, [_rel(s, t0) for s in delivering(gaps, t_start, t_end)],
                 [_rel(g, t0) for g in gaps])


def _rel(span: tuple[float, float], t0: float) -> tuple[float, float]:
    return (round(span[0] - t0, 4), round(span[1] - t0, 4))


def _lane(flow: str, kind: str, node: str, named_times: list[tuple[str, list[float]]],
          t_fault: float, t_start: float, t_end: float,
          results: Mapping[str, Mapping[str, Any]]) -> Lane:
    tracks = [_track(n, times, t_fault, t_start, t_end) for n, times in named_times]
    gaps = [longest_gap(times, t_start, t_end) for _, times in named_times]
    worst = max(gaps, key=lambda g: g.seconds)
    result = results.get(flow) or {}
    return Lane(flow, kind, node, tracks, round(worst.seconds * 1000, 1),
                None if worst.start is None else round(worst.start - t_fault, 4),
                result.get("survived"), result.get("reason") or "")


def flow_lanes(report: Mapping[str, Any], server: Mapping[str, Any],
               clients: Mapping[str, Any], pings: Mapping[str, str],
               t_start: float) -> list[Lane]:
    """One lane per flow, per compute node: its ping, then its TCP streams, then its UDP
    flows. The longest gap of a lane is computed as the report computes it (TCP: the worse of
    the two directions)."""
    t_fault, t_end = float(report["t_fault"]), float(report["t_end"])
    results = {f["flow"]: f for f in report.get("flows") or []}
    server_tcp = {rec["flow"]: rec for rec in server.get("tcp", [])}
    lanes = []
    for node in sorted(set(clients) | set(pings)):
        if node in pings:
            times = parse_ping(pings[node]).times
            lanes.append(_lane(f"{node}-icmp", "icmp", node, [("replies", times)], t_fault,
                               t_start, t_end, results))
        flows = (clients.get(node) or {}).get("flows") or []
        for rec in (r for r in flows if r["kind"] == "tcp"):
            named = [("download", rec["rx_times"])]
            if rec["flow"] in server_tcp:
                named.append(("upload", server_tcp[rec["flow"]]["rx_times"]))
            lanes.append(_lane(rec["flow"], "tcp", node, named, t_fault, t_start, t_end,
                               results))
        for rec in (r for r in flows if r["kind"] != "tcp"):
            lanes.append(_lane(rec["flow"], rec["kind"], node, [("answers", rec["rx_times"])],
                               t_fault, t_start, t_end, results))
    return lanes


def vip_rows(samples: Iterable[tuple[float, Mapping[str, Iterable[str]]]],
             t_fault: float) -> list[list[Any]]:
    """``vip_holder_samples`` rows from (wall-clock time, {vip: holders}) samples."""
    rows: list[list[Any]] = []
    for t, by_vip in samples:
        for vip, hs in sorted(by_vip.items()):
            names = sorted(hs)
            rows += [[round(t - t_fault, 4), vip, h] for h in names] or [
                [round(t - t_fault, 4), vip, None]]
    return rows


def sampled_bands(rows: Iterable[Iterable[Any]], end: float) -> list[Band]:
    """Bands from ``vip_holder_samples`` rows: a VIP's holders at a sample hold until the next
    sample (the last one until `end`); equal neighbours merge."""
    at: dict[str, dict[float, set[str]]] = {}
    for i, row in enumerate(rows):
        row = list(row)
        if len(row) != 3 or not isinstance(row[0], int | float):
            raise ValidationError("drill report", f"vip_holder_samples[{i}]",
                                  f"{row!r}: expected [seconds from the fault, vip, holder or "
                                  "null]")
        t, vip, holder = row
        hs = at.setdefault(str(vip), {}).setdefault(float(t), set())
        if holder is not None:
            hs.add(str(holder))
    bands = []
    for vip, by_t in sorted(at.items()):
        times = sorted(by_t)
        segments: list[BandSegment] = []
        for t, nxt in zip(times, [*times[1:], max(end, times[-1])], strict=True):
            holders = tuple(sorted(by_t[t]))
            if segments and segments[-1].holders == holders:
                segments[-1] = BandSegment(segments[-1].start, nxt, holders)
            else:
                segments.append(BandSegment(t, nxt, holders))
        bands.append(Band(vip, segments, sampled=True))
    return bands


def observed_bands(report: Mapping[str, Any], start: float, end: float) -> list[Band]:
    """Bands from what every drill records: the holder before the fault, the holders at the
    end and, when the VIPs moved, when they were seen there. What the drill did not see is
    drawn as unknown."""
    before = (str(report["holder_before"]),)
    moved_ms = report.get("vips_moved_after_ms")
    bands = []
    for vip, after in sorted((report.get("holders_after") or {}).items()):
        after_t = tuple(sorted(after))
        segments = [BandSegment(start, 0.0, before)]
        seen = None if moved_ms is None else moved_ms / 1000
        if seen is not None and 0 <= seen < end:
            if seen > 0:
                segments.append(BandSegment(0.0, seen, (), known=False))
            segments.append(BandSegment(seen, end, after_t))
        else:
            at_end = " + ".join(after_t) or "nobody"
            segments.append(BandSegment(0.0, end, (), known=False, note=f"at the end: {at_end}"))
        bands.append(Band(vip, segments, sampled=False))
    return bands


def drill_events(report: Mapping[str, Any], extra: Iterable[Iterable[Any]] = ()) -> list[Event]:
    """The fault, the VIPs seen on their new holder, and any events given (t, label)."""
    events = [Event(0.0, f"fault: {report['drill']} on {report['holder_before']}", "fault")]
    moved_ms = report.get("vips_moved_after_ms")
    if moved_ms is not None:
        after = report.get("holder_after") or "?"
        events.append(Event(round(moved_ms / 1000, 4), f"VIPs seen on {after}", "vip"))
    for i, item in enumerate(extra):
        item = list(item)
        if len(item) != 2 or not isinstance(item[0], int | float):
            raise ValidationError("drill report", f"events[{i}]",
                                  f"{item!r}: expected [seconds from the fault, label]")
        events.append(Event(round(float(item[0]), 4), str(item[1])))
    return sorted(events, key=lambda e: e.t)


def title(report: Mapping[str, Any]) -> str:
    after = report.get("holder_after") or "?"
    counts = ", ".join(f"{k.upper()} {report.get(f'{k}_surviving', '?')}/"
                       f"{report.get(f'{k}_total', '?')}" for k in ("tcp", "udp", "icmp"))
    fencing = report.get("fencing")
    return (f"drill {report['drill']}: {report['holder_before']} -> {after}, outage "
            f"{float(report['longest_gap_ms']):.0f} ms (longest ping gap); surviving {counts}"
            + ("" if fencing is None else f"; fencing {'on' if fencing else 'off'}")
            + ("; FAIL" if report.get("failures") else "; PASS"))


def drill_timeline(report: Mapping[str, Any], server: Mapping[str, Any],
                   clients: Mapping[str, Any], pings: Mapping[str, str],
                   t_start: float | None = None,
                   vip_samples: Iterable[Iterable[Any]] | None = None,
                   events: Iterable[Iterable[Any]] | None = None) -> Timeline:
    """The picture-model of one drill: `report` as `DrillReport.to_dict()` gives it, the
    records as `Traffic.stop()` returns them, `t_start` the wall-clock start of the measured
    window. `vip_samples` defaults to the report's ``vip_holder_samples``; `events` are drawn
    with the report's ``events``."""
    t_fault, t_end = float(report["t_fault"]), float(report["t_end"])
    if t_start is None:
        t_start = float(report.get("t_start") or t_fault - DEFAULT_BASELINE)
    start, end = round(t_start - t_fault, 4), round(t_end - t_fault, 4)
    rows = list(vip_samples if vip_samples is not None
                else report.get("vip_holder_samples") or [])
    bands = sampled_bands(rows, end) if rows else observed_bands(report, start, end)
    given = [*(report.get("events") or []), *(events or [])]
    return Timeline(title(report), start, end,
                    flow_lanes(report, server, clients, pings, t_start), bands,
                    drill_events(report, given))


# "Dec 01 20:15:18.652 ctl3 pacemaker-controld  [28] (log_executor_event) \tnotice: Result ..."
_PCMK_LINE = re.compile(
    r"^(\w{3} +\d+ \d\d:\d\d:\d\d)\.(\d{3}) \S+ \S+ +\[\d+\] \(\w+\)\s+\w+: (.*)$")
_PCMK_EVENTS = (
    (re.compile(r"Result of (start|stop) operation for (vips|vip__\S+) on (\S+): (\w+)"),
     lambda m: f"{m[2]} {m[1]} on {m[3]}" + ("" if m[4] == "ok" else f": {m[4]}")),
    (re.compile(r"Node (\S+) state is now lost"), lambda m: f"{m[1]} lost (membership)"),
    (re.compile(r"Requesting fencing \((\w+)\) targeting node (\S+)"),
     lambda m: f"fencing ({m[1]}) of {m[2]} requested"),
    (re.compile(r"Peer (\S+) was terminated \((\w+)\) by (\S+)"),
     lambda m: f"{m[1]} fenced ({m[2]}) by {m[3]}"),
)


def pacemaker_events(texts: Iterable[str], t_fault: float, t_start: float,
                     t_end: float) -> list[list[Any]]:
    """Events of the controllers' Pacemaker logs inside the window, as ``[t, label]`` relative
    to the fault: each VIP's start and stop (their result), a node lost from the membership
    (the token lost, as Pacemaker learns it), fencing asked for and done. The first time a
    label shows (every daemon of every node logs a lost node) counts. The logs' times are local
    and without a year: the fault's year is taken, the machine's time zone (the lab's nodes
    share it)."""
    import time

    year = time.localtime(t_fault).tm_year
    first: dict[str, float] = {}
    for text in texts:
        for line in text.splitlines():
            m = _PCMK_LINE.match(line)
            if not m:
                continue
            for pattern, label in _PCMK_EVENTS:
                e = pattern.search(m[3])
                if not e:
                    continue
                try:
                    t = time.mktime(time.strptime(f"{year} {m[1]}", "%Y %b %d %H:%M:%S"))
                except ValueError:
                    break
                t += int(m[2]) / 1000
                name = label(e)
                if t_start <= t <= t_end and t < first.get(name, float("inf")):
                    first[name] = t
                break
    return [[round(t - t_fault, 4), name] for name, t in sorted(first.items(),
                                                                key=lambda kv: kv[1])]


def read_logs(paths: Iterable[str], tail: int = 4 << 20) -> list[str]:
    """The last `tail` bytes of each log that exists."""
    out = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                f.seek(max(0, os.path.getsize(path) - tail))
                out.append(f.read().decode(errors="replace"))
        except OSError:
            continue
    return out


def plot_path(file: str, drill: str, several: bool) -> str:
    """Where `--plot FILE` puts a drill's picture: FILE itself for one drill, else FILE with
    the drill's name before its suffix (drills.svg -> drills-hard-kill.svg)."""
    if not several:
        return file
    root, ext = os.path.splitext(file)
    return f"{root}-{drill}{ext or '.svg'}"


# ----------------------------------------------------------------------------- rendering

_SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]")
HOLDER_COLOURS = ("#264653", "#2a9d8f", "#9c6644", "#6d597a", "#b56576", "#5e6472")
KIND_COLOURS = {"icmp": "#4c72b0", "tcp": "#55a868", "udp": "#8172b2"}
LOST = "#dd8452"


def svg_id(kind: str, name: str) -> str:
    return f"{kind}-{_SAFE_ID.sub('_', name)}"


def render_svg(tl: Timeline, path: str) -> str:
    """Draw the timeline and write it as SVG (PNG if `path` ends in .png); returns `path`."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: small, searchable
    matplotlib.rcParams["svg.hashsalt"] = "envrouter"  # the same picture gives the same file
    rows = len(tl.bands) + len(tl.lanes)
    fig = Figure(figsize=(11, 1.6 + 0.28 * rows + 0.14 * len(tl.events)))
    ax = fig.add_subplot()
    holders = sorted({h for b in tl.bands for s in b.segments for h in s.holders})
    colour = {h: HOLDER_COLOURS[i % len(HOLDER_COLOURS)] for i, h in enumerate(holders)}
    labels: list[str] = []
    y = rows - 1
    for band in tl.bands:
        plain = [s for s in band.segments if not s.conflict]
        boxes = [_box(s.start, s.end, y, 0.8) for s in plain]
        faces = [colour[s.holders[0]] if s.holders else ("white" if s.known else "#eeeeee")
                 for s in plain]
        coll = PolyCollection(boxes, facecolors=faces, edgecolors="#999999", linewidths=0.5)
        coll.set_gid(svg_id("band", band.vip))
        ax.add_collection(coll)
        for s in plain:
            text = s.holders[0] if s.holders else ("nobody" if s.known else "not sampled")
            text += f" ({s.note})" if s.note else ""
            ax.text((s.start + s.end) / 2, y, text, ha="center", va="center", fontsize=7,
                    color="white" if s.holders else "#666666", clip_on=True)
        conflicts = [s for s in band.segments if s.conflict]
        if conflicts:
            bad = PolyCollection([_box(s.start, s.end, y, 0.8) for s in conflicts],
                                 facecolors="#c44e52", edgecolors="black", hatch="////")
            bad.set_gid(svg_id("conflict", band.vip))
            ax.add_collection(bad)
            for s in conflicts:
                ax.text((s.start + s.end) / 2, y, "+".join(s.holders), ha="center",
                        va="center", fontsize=7, color="white", fontweight="bold")
        labels.append(f"VIP {band.vip}" + ("" if band.sampled else " (before/after)"))
        y -= 1
    for lane in tl.lanes:
        n = len(lane.tracks)
        boxes, height = [], 0.7 / n
        for i, track in enumerate(lane.tracks):
            mid = y + 0.35 - height * (i + 0.5)
            boxes += [_box(a, b, mid, height * 0.9) for a, b in track.segments]
        face = KIND_COLOURS.get(lane.kind, "#777777") if lane.survived is not False else LOST
        coll = PolyCollection(boxes, facecolors=face, edgecolors="none")
        coll.set_gid(svg_id("lane", lane.flow))
        ax.add_collection(coll)
        if lane.longest_gap_at is not None and lane.longest_gap_ms / 1000 > GAP_SHOWN:
            ax.text(lane.longest_gap_at + lane.longest_gap_ms / 2000, y,
                    f"{lane.longest_gap_ms:.0f} ms", ha="center", va="center", fontsize=7,
                    color="#333333", clip_on=True)
        names = "/".join(t.name for t in lane.tracks)
        labels.append(f"{lane.flow} ({names})" + ("" if lane.survived is not False else
                                                  " LOST"))
        y -= 1
    # each event's label on its own line above the bands: labels close in time never overlap
    top = rows - 0.4
    for i, ev in enumerate(tl.events):
        style = {"fault": ("#c44e52", "-", 1.5), "vip": ("#333333", "--", 1.0)}.get(
            ev.kind, ("#777777", ":", 1.0))
        line = ax.axvline(ev.t, color=style[0], linestyle=style[1], linewidth=style[2])
        line.set_gid(f"event-{i}")
        ax.text(ev.t, top + 0.5 * (len(tl.events) - i), f" {ev.label} ({ev.t * 1000:.0f} ms)",
                fontsize=7, color=style[0], ha="left", va="center", clip_on=True)
    ax.set_xlim(tl.start, tl.end)
    ax.set_ylim(-0.7, top + 0.5 * len(tl.events) + 0.4)
    ax.set_yticks(range(rows - 1, -1, -1), labels, fontsize=7)
    ax.set_xlabel(f"seconds from the fault (ping every {float(PING_INTERVAL) * 1000:.0f} ms, "
                  f"TCP every {SEND_INTERVAL * 1000:.0f} ms, UDP every "
                  f"{UDP_INTERVAL * 1000:.0f} ms; silences over {GAP_SHOWN * 1000:.0f} ms "
                  "show as breaks)", fontsize=8)
    ax.set_title(tl.title, fontsize=9)
    ax.grid(axis="x", color="#dddddd", linewidth=0.5)
    ax.set_axisbelow(True)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    _save(fig, path)
    return path


def _save(fig: Any, path: str) -> None:
    """SVG, or PNG when the name says so (a quick look); no date in an SVG, so the same
    picture gives the same file."""
    if path.endswith(".png"):
        fig.savefig(path, format="png", dpi=110)
    else:
        fig.savefig(path, format="svg", metadata={"Date": None})


def _box(a: float, b: float, y: float, h: float) -> list[tuple[float, float]]:
    return [(a, y - h / 2), (b, y - h / 2), (b, y + h / 2), (a, y + h / 2)]


def write_drill_timeline(directory: str, report: Mapping[str, Any], server: Mapping[str, Any],
                         clients: Mapping[str, Any], pings: Mapping[str, str], t_start: float,
                         also: str | None = None, pacemaker_logs: Iterable[str] = (),
                         **optional: Any) -> Timeline:
    """``timeline.svg`` and ``timeline.json`` (the model) beside the drill's report.json, and
    the SVG at `also` too (``lab drill --plot``); with the events of the Pacemaker logs at
    `pacemaker_logs` (paths)."""
    found = pacemaker_events(read_logs(pacemaker_logs), float(report["t_fault"]), t_start,
                             float(report["t_end"]))
    optional["events"] = [*found, *(optional.get("events") or [])]
    tl = drill_timeline(report, server, clients, pings, t_start, **optional)
    with open(os.path.join(directory, "timeline.json"), "w") as f:
        json.dump(tl.to_dict(), f, indent=1)
    render_svg(tl, os.path.join(directory, "timeline.svg"))
    if also:
        render_svg(tl, also)
    return tl
