"""The operations view in Debian's chromium against a real `envrouter serve` whose
--status-command is a real script printing `envrouter status --json` output (the suite's
fake_status fixture) and whose --drills-dir holds a drill record. The test changes what the
command prints and watches the page follow without a reload; it writes a screenshot to its
temporary directory."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from test_ui_browser import ENVROUTER, Server, login, settled

from serving import serve_process, wait_until

# a real drill's timeline from a lab run (the one the docs show)
TIMELINE = Path(__file__).resolve().parents[2] / "docs" / "drill-hard-kill.svg"


@pytest.fixture
def ops_server(tmp_path, fake_status) -> Iterator[Server]:
    drills = tmp_path / "drills"
    (drills / "1700000000-hard-kill").mkdir(parents=True)
    (drills / "1700000000-hard-kill" / "report.json").write_text(json.dumps({
        "drill": "hard-kill", "t_fault": 1_700_000_000.0, "holder_before": "ctl1",
        "holder_after": "ctl2", "vips_moved_after_ms": 912.0, "longest_gap_ms": 1132.0,
        "packets_lost": 3, "packets_sent": 400, "failures": []}))
    shutil.copy(TIMELINE, drills / "1700000000-hard-kill" / "timeline.svg")
    db_url = f"sqlite:///{tmp_path}/envrouter.db"
    with serve_process(ENVROUTER, tmp_path, db_url, "--status-command", fake_status.command,
                       "--status-interval", "1", "--drills-dir", str(drills)) as base:
        srv = Server(base, db_url, "", "")
        srv.admin_token = srv.create_token("ops-admin")
        yield srv


def test_operations_view_follows_the_controllers(page: Page, ops_server: Server, fake_status,
                                                 tmp_path) -> None:
    env = ops_server.ok("POST", "/environments", json={"name": "ops", "ha": True})
    login(page, ops_server)
    page.goto(f"{ops_server.base}/ui/environments/{env['id']}")
    page.get_by_role("link", name="Operations: health, VIP moves, drills").click()
    expect(page.get_by_role("heading", name="Operations of ops")).to_be_visible()
    settled(page)

    ctl1 = page.locator('#health tr[data-node="ctl1"]')
    ctl2 = page.locator('#health tr[data-node="ctl2"]')
    expect(ctl1).to_contain_text("healthy")
    expect(ctl1).to_contain_text("vrouter (10.20.0.2)")
    expect(ctl1).to_contain_text("cache 42 internal / 7 external · sync errors 0")
    expect(ctl1).to_contain_text("42 / 262144")
    expect(ctl1).to_contain_text("upstreams 1/1 reachable")
    expect(ctl1).to_contain_text("synchronised · stratum 3")
    expect(ctl1).to_contain_text("vips Started")
    expect(ctl2.locator("td").nth(1)).to_have_text("none")  # VIPs held
    expect(page.locator("#moves")).to_contain_text("No move seen.")
    drill = page.locator('#drills tr[data-drill="1700000000-hard-kill"]')
    expect(drill).to_contain_text("passed")
    expect(drill).to_contain_text("1132 ms")

    # the VIPs move and ctl1 goes down: the page follows without a reload
    stamp = page.locator("#ops-updated").get_attribute("data-refreshed")
    fake_status.show(holder="ctl2", entries=77, sync_errors=2, exit_code=1, off=("ctl1",))
    expect(ctl2.locator("td").nth(1)).to_contain_text("vrouter (10.20.0.2)", timeout=30_000)
    expect(ctl2).to_contain_text("cache 77 internal")
    expect(ctl2).to_contain_text("degraded: conntrackd: 2 sync errors")
    expect(ctl1.locator("td").nth(0)).to_have_text("unknown (the controller is not running)")
    expect(ctl1.locator("td").nth(3)).to_have_text("unknown")  # conntrackd
    assert page.locator("#ops-updated").get_attribute("data-refreshed") != stamp
    moves = page.locator("#moves tbody tr")
    expect(moves).to_have_count(2, timeout=30_000)
    expect(moves.first).to_contain_text("ctl1")
    expect(moves.first).to_contain_text("ctl2")
    expect(page.locator("#moves")).to_contain_text("vrouter_pub (203.0.113.2)")

    drill.get_by_role("button", name="Show the timeline of 1700000000-hard-kill").click()
    img = page.locator("#drill-timeline img")
    expect(img).to_be_visible()
    wait_until(lambda: img.evaluate("i => i.complete && i.naturalWidth > 0"),
               "the timeline picture drawn")
    shot = tmp_path / "operations.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    # the command fails: unknown, with its error, still live
    fake_status.show(holder=None, raw="", exit_code=3)
    expect(page.locator("#health .note")).to_contain_text("unknown", timeout=30_000)
    expect(page.locator("#health .note")).to_contain_text("status command")
    expect(page.locator("#health")).to_contain_text("No controller answered.")
    expect(page.locator("#moves tbody tr")).to_have_count(2)  # the moves are kept
    assert page.js_errors == []
