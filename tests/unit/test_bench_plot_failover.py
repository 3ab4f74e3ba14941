"""bench/plot_failover.py: the bench's records, their groups (pure) and the SVG drawn from them
(parsed, not looked at)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from bench.plot_failover import grouped, main, plot_results, records_from_results

SVG_G = "{http://www.w3.org/2000/svg}g"


def report(gap: float, **kw) -> dict:
    return {"longest_gap_ms": gap, **kw}


def test_records_take_the_dimensions_a_run_has() -> None:
    results = {"hard-kill": [report(1143.0), report(1216.5, fencing=True)],
               "standby": [report(224.0, load={"idle_total": 10000}, bridge="ovs")]}
    recs = records_from_results(results)
    assert recs == [
        {"drill": "hard-kill", "run": 1, "outage_ms": 1143.0},
        {"drill": "hard-kill", "run": 2, "outage_ms": 1216.5, "fencing": True},
        {"drill": "standby", "run": 1, "outage_ms": 224.0, "size": 10000, "bridge": "ovs"}]
    # what the whole bench ran with fills in what a report does not say
    assert records_from_results({"standby": [report(200.0)]}, size=0, bridge="linux")[0] == {
        "drill": "standby", "run": 1, "outage_ms": 200.0, "size": 0, "bridge": "linux"}


def test_groups_per_drill_and_dimension() -> None:
    recs = [{"drill": "hard-kill", "run": 1, "outage_ms": 1100.0},
            {"drill": "hard-kill", "run": 2, "outage_ms": 1200.0},
            {"drill": "standby", "run": 1, "outage_ms": 300.0, "size": 100000, "fencing": True},
            {"drill": "standby", "run": 2, "outage_ms": 200.0, "size": 1000, "fencing": False},
            {"drill": "standby", "run": 3, "outage_ms": 250.0, "size": 1000, "fencing": False}]
    assert grouped(recs) == {
        "hard-kill": {"all runs": [1100.0, 1200.0]},
        "standby": {"1,000 conns, fencing off": [200.0, 250.0],
                    "100,000 conns, fencing on": [300.0]}}


def test_the_svg_has_a_panel_per_drill_and_a_group_of_points_per_dimension(tmp_path) -> None:
    results = {"hard-kill": [report(1143.0), report(1150.0), report(1300.0, fencing=True)],
               "standby": [report(224.0), report(230.0)]}
    out = tmp_path / "outage.svg"
    plot_results(results, str(out), {"hard-kill": 1500, "standby": 200}, "test")
    ids = [el.get("id", "") for el in ET.parse(out).getroot().iter(SVG_G)]
    assert [i for i in ids if i.startswith("drill-")] == ["drill-hard-kill", "drill-standby"]
    assert [i for i in ids if i.startswith("runs-")] == [
        "runs-hard-kill-0", "runs-hard-kill-1", "runs-standby-0"]
    saved = json.loads((tmp_path / "outage.json").read_text())
    assert len(saved["records"]) == 5 and saved["targets"]["standby"] == 200
    # drawn again from the saved records: the same file
    again = tmp_path / "again.svg"
    assert main([str(tmp_path / "outage.json"), str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()


def test_no_records_is_an_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="no bench records"):
        plot_results({}, str(tmp_path / "x.svg"))


def test_runs_without_a_dimension_beside_runs_with_one_are_not_recorded() -> None:
    recs = [{"drill": "hard-kill", "run": 1, "outage_ms": 1100.0},
            {"drill": "hard-kill", "run": 2, "outage_ms": 1300.0, "fencing": True}]
    assert grouped(recs) == {"hard-kill": {"not recorded": [1100.0], "fencing on": [1300.0]}}
