"""The failover benchmark's outages as a picture (SVG): one point per run, per drill, grouped by
what the runs were measured with — the connection-table size, fencing on or off, the bridge
kind — where the runs say it (a dimension a run does not have is simply one group).

bench/failover.py --plot FILE calls `plot_results`; to draw again from what it saved:

    .venv/bin/python bench/plot_failover.py FILE.json FILE.svg

(FILE.json: the records `plot_results` writes beside the SVG, or a `bench/failover.py --json`
file.) A record: ``{"drill", "run", "outage_ms"}`` and optionally ``"size"`` (connections in
the table), ``"fencing"`` (bool) and ``"bridge"`` (a name).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Mapping
from typing import Any

DIMENSIONS = ("size", "fencing", "bridge")


def _size(report: Mapping[str, Any]) -> int | None:
    if report.get("connections") is not None:
        return int(report["connections"])
    load = report.get("load") or {}
    return int(load["idle_total"]) if load.get("idle_total") is not None else None


def records_from_results(results: Mapping[str, list[Mapping[str, Any]]],
                         **common: Any) -> list[dict[str, Any]]:
    """One record per drill run from bench/failover.py's results ({drill: [report dicts]}):
    the outage is the report's longest ping gap; size, fencing and bridge come from the report
    where it has them, else from `common` (what the whole bench ran with), else are left out."""
    out = []
    for drill, reports in results.items():
        for i, r in enumerate(reports):
            rec: dict[str, Any] = {"drill": drill, "run": i + 1,
                                   "outage_ms": float(r["longest_gap_ms"])}
            found = {"size": _size(r), "fencing": r.get("fencing"), "bridge": r.get("bridge")}
            for key in DIMENSIONS:
                value = found[key] if found[key] is not None else common.get(key)
                if value is not None:
                    rec[key] = value
            out.append(rec)
    return out


def group_label(rec: Mapping[str, Any]) -> str:
    parts = []
    if rec.get("size") is not None:
        parts.append(f"{int(rec['size']):,} conns")
    if rec.get("fencing") is not None:
        parts.append("fencing " + ("on" if rec["fencing"] else "off"))
    if rec.get("bridge") is not None:
        parts.append(f"bridge {rec['bridge']}")
    return ", ".join(parts)


def _order(rec: Mapping[str, Any]) -> tuple:
    return (rec.get("size") or 0, bool(rec.get("fencing")), str(rec.get("bridge") or ""))


def grouped(records: list[Mapping[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """{drill: {group label: outages in run order}}, drills as they come, groups by size,
    then fencing, then bridge."""
    out: dict[str, dict[str, list[float]]] = {}
    for rec in sorted(records, key=_order):
        out.setdefault(rec["drill"], {}).setdefault(group_label(rec), []).append(
            float(rec["outage_ms"]))
    order = list(dict.fromkeys(r["drill"] for r in records))
    # runs without any dimension: the drill's only group, or beside others, unrecorded
    return {d: {(label or ("all runs" if len(out[d]) == 1 else "not recorded")): values
                for label, values in out[d].items()} for d in order}


def plot_outages(records: list[Mapping[str, Any]], path: str,
                 targets: Mapping[str, float] | None = None, title: str = "") -> str:
    """One panel per drill: every run's outage as a point, the median as a bar, the target as
    a dashed line. SVG groups: ``drill-<drill>``, ``runs-<drill>-<n>`` (n-th group)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    matplotlib.rcParams["svg.fonttype"] = "none"
    matplotlib.rcParams["svg.hashsalt"] = "envrouter"
    data = grouped(records)
    if not data:
        raise ValueError("no bench records to draw")
    widest = max(len(g) for g in data.values())
    fig = Figure(figsize=(max(4.0, 1.2 + 1.6 * widest) * len(data) / 1.4, 3.6))
    axes = fig.subplots(1, len(data), squeeze=False)[0]
    for ax, (drill, groups) in zip(axes, data.items(), strict=True):
        ax.set_gid(f"drill-{drill}")
        for i, values in enumerate(groups.values()):
            n = len(values)
            xs = [i + (k - (n - 1) / 2) * min(0.08, 0.5 / max(n, 1)) for k in range(n)]
            pts = ax.scatter(xs, values, s=18, color="#4c72b0", zorder=3)
            pts.set_gid(f"runs-{drill}-{i}")
            med = statistics.median(values)
            ax.hlines(med, i - 0.3, i + 0.3, color="#333333", linewidth=1.5, zorder=2)
            ax.text(i + 0.32, med, f"{med:.0f}", va="center", fontsize=7)
        target = (targets or {}).get(drill)
        if target is not None:
            ax.axhline(target, color="#c44e52", linestyle="--", linewidth=1)
            ax.text(len(groups) - 0.5, target, f"target {target:.0f} ms", color="#c44e52",
                    ha="right", va="bottom", fontsize=7)
        top = max([*(v for vs in groups.values() for v in vs), target or 0])
        ax.set_ylim(0, top * 1.15)
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_xticks(range(len(groups)), list(groups), fontsize=7)
        runs = sum(len(v) for v in groups.values())
        ax.set_title(f"{drill} ({runs} runs)", fontsize=9)
        ax.set_ylabel("outage, ms (longest ping gap)", fontsize=8)
        ax.grid(axis="y", color="#dddddd", linewidth=0.5)
        ax.set_axisbelow(True)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if path.endswith(".png"):  # a quick look
        fig.savefig(path, format="png", dpi=110)
    else:  # no date: the same records give the same file
        fig.savefig(path, format="svg", metadata={"Date": None})
    return path


def plot_results(results: Mapping[str, list[Mapping[str, Any]]], path: str,
                 targets: Mapping[str, float] | None = None, title: str = "",
                 **common: Any) -> list[dict[str, Any]]:
    """bench/failover.py's results -> `path` (SVG) and the records beside it (.json)."""
    records = records_from_results(results, **common)
    plot_outages(records, path, targets, title)
    with open(os.path.splitext(path)[0] + ".json", "w") as f:
        json.dump({"title": title, "targets": dict(targets or {}), "records": records}, f,
                  indent=1)
    return records


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", help="records written by --plot, or a bench/failover.py --json file")
    p.add_argument("out", help="the SVG to write")
    a = p.parse_args(argv)
    with open(a.source) as f:
        data = json.load(f)
    if "records" in data:
        records, targets, title = data["records"], data.get("targets"), data.get("title", "")
    elif "results" in data:
        from failover import TARGET_MS

        records, targets, title = records_from_results(data["results"]), TARGET_MS, ""
    else:
        print(f"{a.source}: neither 'records' nor 'results'", file=sys.stderr)
        return 2
    plot_outages(records, a.out, targets, title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
