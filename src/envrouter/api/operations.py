"""The operations view's facts (issue #20 point 3): each controller's health, the VIP moves,
the latest drills.

Health comes from `envrouter status --json` of every controller, through a command the
operator configures like the cluster command (`envrouter serve --status-command "CMD ARGS..."`):
CMD (argument list, no shell; `{env_id}` replaced) prints ONE JSON list with one `envrouter
status --json` object per controller (a single object is one controller), e.g. a script that
runs `ssh ctlN envrouter status --json` for each controller, or in the lab `python -m
envrouter.lab.ops_status STATE_DIR`. An entry `{"node": NAME, "error": TEXT}` says that
controller could not be asked. `envrouter status` exits 1 when degraded: exit 0 or 1 with JSON
on stdout is an answer; anything else, or output that is not such JSON, is an error, and the
health is "unknown" with that error. Every value missing from an answer stays null (unknown).

The VIP moves are recorded by this process whenever the polled holder of a VIP (the controllers
whose namespace holds its address, as their status says) changes: in memory, a view that is lost
on restart (and with `--workers` > 1 each worker keeps its own).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from envrouter.api.cluster import CachedCommand, ClusterProbeError

MAX_MOVES = 50  # per environment, newest kept
MAX_DRILLS = 20  # the newest drill reports listed
DRILL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class StatusProbeError(ClusterProbeError):
    """The status command failed or printed no status: the controllers' health is unknown."""


# ------------------------------------------------------------------ the answers, summarised

def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _strs(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def controller_health(status: dict[str, Any]) -> dict[str, Any]:
    """What the operations view shows of one `envrouter status --json` answer (pure). Nothing
    is filled in: a value the answer lacks (or gives with the wrong type) is None."""
    node = _str(status.get("node")) or "?"
    if "error" in status and "cluster" not in status:  # the controller could not be asked
        return {"node": node, "error": str(status.get("error")), "degraded": None,
                "reasons": [], "collected_at": None, "vips": [], "resources": [],
                "cluster": None, "conntrackd": None, "nat": None, "dns": None, "ntp": None}
    cluster = _dig(status, "cluster")
    resources = [
        {"id": _str(r.get("parent")) or _str(r.get("id")) or "?", "role": _str(r.get("role")),
         "active": _bool(r.get("active")), "failed": _bool(r.get("failed"))}
        for r in _dicts(_dig(cluster, "resources")) if r.get("node") == node
    ]
    ctd = _dig(status, "conntrackd")
    stats = _dig(ctd, "stats")
    sync_parts = [_int(_dig(stats, k)) for k in
                  ("errors_send", "errors_recv", "malformed_msgs", "lost_msgs")]
    conntrackd = None if not isinstance(ctd, dict) else {
        "configured": _bool(ctd.get("configured")),
        "answering": _bool(ctd.get("answering")),
        "internal_cache": _int(_dig(stats, "internal_active")),
        "external_cache": _int(_dig(stats, "external_active")),
        "sync_errors": None if None in sync_parts else sum(sync_parts),  # type: ignore[arg-type]
        "error": _str(ctd.get("error")),
    }
    table = _dig(status, "conntrack")
    nat = None if not isinstance(table, dict) else {
        "entries": _int(table.get("entries")), "max": _int(table.get("max")),
        "error": _str(table.get("error"))}
    dns_raw = _dig(status, "dns")
    ups = _dicts(_dig(dns_raw, "upstreams"))
    dns = None if not isinstance(dns_raw, dict) else {
        "answering": _bool(dns_raw.get("answering")),
        "upstreams_reachable": sum(1 for u in ups if u.get("reachable") is True),
        "upstreams": len(ups),
        "error": _str(dns_raw.get("error")),
    }
    ntp_raw = _dig(status, "ntp")
    tracking = _dig(ntp_raw, "tracking")
    stratum = _int(_dig(tracking, "stratum"))
    leap = _str(_dig(tracking, "leap_status"))
    ntp = None if not isinstance(ntp_raw, dict) else {
        "answering": _bool(ntp_raw.get("answering")),
        "synchronised": None if stratum is None or leap is None
        else leap != "Not synchronised" and stratum < 16,
        "stratum": stratum,
        "offset_s": _num(_dig(tracking, "system_time_offset")),
        "reachable_upstreams": [
            s["address"] for s in _dicts(_dig(ntp_raw, "sources"))
            if s.get("upstream", True) is True and isinstance(s.get("address"), str)
            and _int(s.get("reach"))],
        "error": _str(ntp_raw.get("error")),
    }
    return {
        "node": node,
        "error": None,
        "degraded": _bool(status.get("degraded")),
        "reasons": _strs(status.get("reasons")),
        "collected_at": _num(status.get("collected_at")),
        "vips": [{"name": _str(v.get("name")) or "?", "address": _str(v.get("address")),
                  "here": _bool(v.get("here"))} for v in _dicts(status.get("vips"))],
        "resources": resources,
        "cluster": None if not isinstance(cluster, dict) else {
            "available": _bool(cluster.get("available")), "quorate": _bool(cluster.get("quorate")),
            "dc": _str(cluster.get("dc")), "error": _str(cluster.get("error"))},
        "conntrackd": conntrackd,
        "nat": nat,
        "dns": dns,
        "ntp": ntp,
    }


def vip_holders(controllers: Iterable[dict[str, Any]]) -> dict[str, list[str] | None]:
    """VIP name -> the controllers holding it (sorted; empty: no one), from the summaries; None
    when no one is seen holding it and some controller could not say (pure)."""
    controllers = list(controllers)
    names = sorted({v["name"] for c in controllers for v in c["vips"]})
    out: dict[str, list[str] | None] = {}
    for name in names:
        held = sorted({c["node"] for c in controllers for v in c["vips"]
                       if v["name"] == name and v["here"] is True})
        unsure = any(c["error"] or not any(v["name"] == name and v["here"] is not None
                                           for v in c["vips"]) for c in controllers)
        out[name] = held if held or not unsure else None
    return out


class VipMoves:
    """The moves of each environment's VIPs, as polled: in memory (lost on restart)."""

    def __init__(self, limit: int = MAX_MOVES) -> None:
        self._lock = threading.Lock()
        self._last: dict[int, dict[str, list[str]]] = {}
        self._moves: dict[int, deque[dict[str, Any]]] = {}
        self._since: dict[int, float] = {}
        self.limit = limit

    def observe(self, env_id: int, holders: dict[str, list[str] | None],
                addresses: dict[str, str | None], at: float) -> None:
        """Record a move for every VIP whose known holder differs from its last known one; an
        unknown holder (None) is no observation. The first observation is the baseline."""
        with self._lock:
            last = self._last.setdefault(env_id, {})
            moves = self._moves.setdefault(env_id, deque(maxlen=self.limit))
            self._since.setdefault(env_id, at)
            for name, held in holders.items():
                if held is None:
                    continue
                before = last.get(name)
                if before is not None and before != held:
                    moves.append({"vip": name, "address": addresses.get(name),
                                  "from_nodes": before, "to_nodes": held, "at": at})
                last[name] = held

    def of(self, env_id: int) -> dict[str, Any]:
        with self._lock:
            return {"observed_since": self._since.get(env_id),
                    "moves": list(reversed(self._moves.get(env_id, ())))}


# ------------------------------------------------------------------ the status command

def parse_status_output(stdout: str) -> list[dict[str, Any]]:
    """The command's stdout: a JSON list of status objects, or one object (pure)."""
    try:
        data = json.loads(stdout)
    except ValueError as exc:
        raise StatusProbeError(f"status command printed no JSON: {exc}") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data or not all(isinstance(d, dict) for d in data):
        raise StatusProbeError("status command printed JSON that is not a list of "
                               "`envrouter status --json` objects")
    return data


class CommandStatusProbe(CachedCommand):
    """The status command, summarised per controller; every fresh answer feeds `moves`."""

    what = "status command"

    def __init__(self, command: str, *, moves: VipMoves | None = None, ttl: float = 3.0,
                 timeout: float = 30.0, clock: Callable[[], float] = time.time) -> None:
        super().__init__(command, ttl=ttl, timeout=timeout)
        self.moves = moves or VipMoves()
        self.clock = clock

    def _produce(self, env_id: int) -> dict[str, Any]:
        argv, proc = self._execute(env_id)
        # `envrouter status` exits 1 when degraded, with its JSON: that is an answer
        if proc.returncode not in (0, 1) or not proc.stdout.strip():
            raise StatusProbeError(str(self._failed(argv, proc)))
        controllers = [controller_health(s) for s in parse_status_output(proc.stdout)]
        now = self.clock()
        addresses = {v["name"]: v["address"] for c in controllers for v in c["vips"]
                     if v["address"]}
        self.moves.observe(env_id, vip_holders(controllers), addresses, now)
        return {"source": f"status via {argv[0]}", "updated_at": now, "error": None,
                "controllers": controllers}


class StatusPoller:
    """Polls every environment's status while the server runs, so that the VIP moves are
    recorded when no one is looking."""

    def __init__(self, probe: CommandStatusProbe, env_ids: Callable[[], list[int]],
                 interval: float) -> None:
        self.probe = probe
        self.env_ids = env_ids
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="status-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.probe.timeout + 5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ids = self.env_ids()
            except Exception:  # noqa: BLE001 - the database busy: try at the next round
                ids = []
            for env_id in ids:
                if self._stop.is_set():
                    return
                try:
                    self.probe(env_id)
                except ClusterProbeError:
                    pass  # shown as the error of the health request
            self._stop.wait(self.interval)


# ------------------------------------------------------------------ the drills

def _drill_summary(drill_id: str, report: dict[str, Any], has_timeline: bool) -> dict[str, Any]:
    failures = _strs(report.get("failures"))
    return {
        "id": drill_id,
        "drill": _str(report.get("drill")),
        "t_fault": _num(report.get("t_fault")),
        "holder_before": _str(report.get("holder_before")),
        "holder_after": _str(report.get("holder_after")),
        "vips_moved_after_ms": _num(report.get("vips_moved_after_ms")),
        "longest_gap_ms": _num(report.get("longest_gap_ms")),
        "packets_lost": _int(report.get("packets_lost")),
        "packets_sent": _int(report.get("packets_sent")),
        "passed": (not failures) if isinstance(report.get("failures"), list) else None,
        "failures": failures,
        "timeline": has_timeline,
    }


def list_drills(directory: str | None, limit: int = MAX_DRILLS) -> list[dict[str, Any]]:
    """DIR/*/report.json, newest first (by the fault time, else the directory's mtime). A
    report that cannot be read is listed with its error."""
    if not directory or not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        path = os.path.join(directory, name, "report.json")
        if not DRILL_ID.match(name) or not os.path.isfile(path):
            continue
        has_timeline = os.path.isfile(os.path.join(directory, name, "timeline.svg"))
        try:
            with open(path, encoding="utf-8") as f:
                report = json.load(f)
            if not isinstance(report, dict):
                raise ValueError("not a JSON object")
            item = _drill_summary(name, report, has_timeline)
        except (OSError, ValueError) as exc:
            item = {**_drill_summary(name, {}, has_timeline), "error": f"report.json: {exc}"}
        when = item["t_fault"] or os.path.getmtime(path)
        found.append((when, item))
    found.sort(key=lambda pair: pair[0], reverse=True)
    return [item for _when, item in found[:limit]]


def drill_file(directory: str | None, drill_id: str, name: str) -> str | None:
    """The path of DIR/<drill_id>/<name> when it is a file inside DIR, else None (no traversal:
    the id is one path component and the resolved path must stay under DIR)."""
    if not directory or not DRILL_ID.match(drill_id) or drill_id in (".", ".."):
        return None
    root = os.path.realpath(directory)
    path = os.path.realpath(os.path.join(root, drill_id, name))
    if os.path.commonpath([root, path]) != root or not os.path.isfile(path):
        return None
    return path
