"""The operations view's endpoints: each controller's health from the --status-command (a real
executable script printing `envrouter status --json` output, no mocks), the unknown and error
cases, the VIP moves recorded from the polls, and the drills directory."""

from __future__ import annotations

import json
import os

import pytest

from envrouter.api.operations import (
    CommandStatusProbe,
    VipMoves,
    controller_health,
    drill_file,
    list_drills,
    vip_holders,
)

API = "/api/v1"


def _use(app, command: str, clock=None) -> CommandStatusProbe:  # noqa: ANN001
    probe = CommandStatusProbe(command, moves=app.state.vip_moves, ttl=0,
                               **({"clock": clock} if clock else {}))
    app.state.status_probe = probe
    return probe


def test_without_a_status_command_the_health_is_unknown(client, make_env) -> None:
    env_id = make_env(controllers=1, computes=0)
    got = client.get(f"{API}/environments/{env_id}/health").json()
    assert got["source"] == "unknown" and got["controllers"] == [] and got["updated_at"] is None
    assert "--status-command" in got["error"]
    assert client.get(f"{API}/environments/{env_id}/vip-moves").json() == {
        "observed_since": None, "moves": []}


def test_health_is_what_each_controller_said(app, client, make_env, fake_status) -> None:
    env_id = make_env(controllers=2, computes=0)
    _use(app, fake_status.command)
    got = client.get(f"{API}/environments/{env_id}/health").json()
    assert got["source"] == "status via " + fake_status.command and got["error"] is None
    ctl1, ctl2 = got["controllers"]
    assert (ctl1["node"], ctl2["node"]) == ("ctl1", "ctl2")
    assert [v["here"] for v in ctl1["vips"]] == [True, True]
    assert [v["here"] for v in ctl2["vips"]] == [False, False]
    assert {r["id"] for r in ctl1["resources"]} == {"dns-clone", "vips"}
    assert {r["id"] for r in ctl2["resources"]} == {"dns-clone"}
    assert ctl1["conntrackd"] == {"configured": True, "answering": True, "internal_cache": 42,
                                  "external_cache": 7, "sync_errors": 0, "error": None}
    assert ctl1["nat"] == {"entries": 42, "max": 262144, "error": None}
    assert ctl1["dns"]["answering"] is True and ctl1["dns"]["upstreams_reachable"] == 1
    assert ctl1["ntp"]["synchronised"] is True and ctl1["ntp"]["stratum"] == 3
    assert ctl1["ntp"]["reachable_upstreams"] == ["192.0.2.123"]
    assert ctl1["degraded"] is False and ctl1["reasons"] == []


def test_degraded_exit_1_is_an_answer(app, client, make_env, fake_status) -> None:
    env_id = make_env(controllers=2, computes=0)
    fake_status.show(holder="ctl1", sync_errors=3, exit_code=1)
    _use(app, fake_status.command)
    got = client.get(f"{API}/environments/{env_id}/health").json()
    assert got["error"] is None
    assert got["controllers"][0]["degraded"] is True
    assert got["controllers"][0]["conntrackd"]["sync_errors"] == 3
    assert got["controllers"][0]["reasons"] == ["conntrackd: 3 sync errors"]


@pytest.mark.parametrize(("raw", "code", "why"), [
    ("boom on stderr", 2, "failed"),
    ("", 0, "failed"),
    ("not json", 0, "no JSON"),
    ("[1, 2]", 0, "not a list"),
])
def test_a_failing_command_is_unknown_with_the_error(app, client, make_env, fake_status,
                                                     raw, code, why) -> None:
    env_id = make_env(controllers=1, computes=0)
    fake_status.show(holder=None, raw=raw, exit_code=code)
    _use(app, fake_status.command)
    got = client.get(f"{API}/environments/{env_id}/health").json()
    assert got["source"] == "unknown" and got["controllers"] == []
    assert why in got["error"] and "status command" in got["error"]


def test_a_missing_command_is_unknown(app, client, make_env) -> None:
    env_id = make_env(controllers=1, computes=0)
    _use(app, "/nonexistent/envrouter-status")
    got = client.get(f"{API}/environments/{env_id}/health").json()
    assert got["source"] == "unknown" and "/nonexistent/envrouter-status" in got["error"]


def test_a_controller_not_asked_and_missing_values_stay_unknown() -> None:
    off = controller_health({"node": "ctl3", "error": "the controller is not running"})
    assert off["error"] == "the controller is not running" and off["degraded"] is None
    assert off["conntrackd"] is None and off["nat"] is None and off["vips"] == []
    bare = controller_health({"node": "ctl1", "cluster": {"available": False},
                              "conntrack": {"entries": "12", "max": None},
                              "conntrackd": {"answering": False, "error": "no socket"}})
    assert bare["nat"] == {"entries": None, "max": None, "error": None}  # "12" is no number
    assert bare["conntrackd"]["internal_cache"] is None
    assert bare["conntrackd"]["sync_errors"] is None
    assert bare["dns"] is None and bare["ntp"] is None and bare["degraded"] is None


def test_vip_moves_are_recorded_when_the_polled_holder_changes(app, client, make_env,
                                                               fake_status) -> None:
    env_id = make_env(controllers=2, computes=0)
    ticks = iter(range(1000, 2000))
    _use(app, fake_status.command, clock=lambda: float(next(ticks)))
    moves = f"{API}/environments/{env_id}/vip-moves"
    health = f"{API}/environments/{env_id}/health"
    client.get(health)
    assert client.get(moves).json() == {"observed_since": 1000.0, "moves": []}  # the baseline
    client.get(health)  # the same holder: no move
    fake_status.show(holder="ctl2", off=("ctl1",))
    client.get(health)
    fake_status.show(holder=None, raw="broken", exit_code=0)  # unknown: no observation (nor tick)
    client.get(health)
    fake_status.show(holder="ctl1")
    client.get(health)
    got = client.get(moves).json()
    assert [(m["vip"], m["from_nodes"], m["to_nodes"]) for m in got["moves"]] == [  # newest first
        ("vrouter_pub", ["ctl2"], ["ctl1"]), ("vrouter", ["ctl2"], ["ctl1"]),
        ("vrouter_pub", ["ctl1"], ["ctl2"]), ("vrouter", ["ctl1"], ["ctl2"]),
    ]
    assert got["moves"][0]["address"] == "203.0.113.2" and got["moves"][0]["at"] == 1003.0


def test_holders_unknown_when_no_one_holds_and_someone_cannot_say() -> None:
    ctl1 = controller_health({"node": "ctl1", "cluster": {},
                              "vips": [{"name": "vrouter", "address": "a", "here": False}]})
    off = controller_health({"node": "ctl2", "error": "off"})
    assert vip_holders([ctl1, off]) == {"vrouter": None}
    assert vip_holders([ctl1]) == {"vrouter": []}
    log = VipMoves()
    log.observe(1, {"vrouter": ["ctl1"]}, {}, 1.0)
    log.observe(1, {"vrouter": None}, {}, 2.0)
    log.observe(1, {"vrouter": []}, {}, 3.0)
    assert [m["to_nodes"] for m in log.of(1)["moves"]] == [[]]


def _drill(root, name: str, t_fault: float, failures=(), svg: bool = True) -> None:  # noqa: ANN001
    d = root / name
    d.mkdir()
    (d / "report.json").write_text(json.dumps({
        "drill": name.split("-", 1)[1], "t_fault": t_fault, "holder_before": "ctl1",
        "holder_after": "ctl2", "vips_moved_after_ms": 900.0, "longest_gap_ms": 1132.0,
        "packets_lost": 3, "packets_sent": 200, "failures": list(failures)}))
    if svg:
        (d / "timeline.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')


def test_drills_listed_newest_first_with_their_timeline(app, client, tmp_path) -> None:
    assert client.get(f"{API}/drills").json() == {"configured": False, "drills": []}
    root = tmp_path / "drills"
    root.mkdir()
    _drill(root, "100-hard-kill", 100.0)
    _drill(root, "200-standby", 200.0, failures=["the VIPs did not move"], svg=False)
    (root / "300-broken").mkdir()
    (root / "300-broken" / "report.json").write_text("{")
    (root / "no-report").mkdir()
    app.state.drills_dir = str(root)
    got = client.get(f"{API}/drills").json()
    assert got["configured"] is True
    # newest first; the unreadable report is placed by its file's time (now)
    assert [d["id"] for d in got["drills"]] == ["300-broken", "200-standby", "100-hard-kill"]
    by_id = {d["id"]: d for d in got["drills"]}
    assert by_id["100-hard-kill"]["passed"] is True and by_id["100-hard-kill"]["timeline"]
    assert by_id["200-standby"]["passed"] is False and not by_id["200-standby"]["timeline"]
    assert by_id["300-broken"]["error"].startswith("report.json")
    r = client.get(f"{API}/drills/100-hard-kill/timeline.svg")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert r.text.startswith("<svg")
    assert client.get(f"{API}/drills/200-standby/timeline.svg").status_code == 404
    assert client.get(f"{API}/drills/..%2F..%2Fetc/timeline.svg").status_code in (404, 422)
    assert client.get(f"{API}/drills/.hidden/timeline.svg").status_code == 422


def test_drill_paths_never_leave_the_directory(tmp_path) -> None:
    root = tmp_path / "drills"
    root.mkdir()
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "timeline.svg").write_text("x")
    os.symlink(tmp_path / "secret", root / "link")
    assert drill_file(str(root), "link", "timeline.svg") is None  # a symlink out of DIR
    assert drill_file(str(root), "..", "timeline.svg") is None
    assert drill_file(str(root), "../secret", "timeline.svg") is None
    assert drill_file(None, "x", "timeline.svg") is None
    assert list_drills(str(tmp_path / "absent")) == []


def test_the_new_endpoints_need_a_token(app, tokens, make_env, client) -> None:
    from fastapi.testclient import TestClient

    env_id = make_env(controllers=1, computes=0)
    anon = TestClient(app)
    for path in (f"/environments/{env_id}/health", f"/environments/{env_id}/vip-moves",
                 "/drills", "/drills/x/timeline.svg"):
        assert anon.get(f"{API}{path}").status_code == 401, path
    ro = TestClient(app, headers={"Authorization": f"Bearer {tokens['ro']}"})
    assert ro.get(f"{API}/environments/{env_id}/health").status_code == 200
    assert client.get(f"{API}/environments/999999/health").status_code == 404


def test_the_lab_serves_its_status_and_drills() -> None:
    """The lab's `serve` line (lab/deploy.py) is one the serve command accepts, with the status
    command and the drills directory where `lab drill` writes (checked here, not in a lab)."""
    import typer.main

    from envrouter.cli.serve import app as serve_app
    from envrouter.lab.deploy import serve_argv
    from envrouter.lab.topology import plan_lab

    plan = plan_lab(2, 1, state_dir="/tmp/opsview-plan")
    argv = serve_argv(plan, 8123, "sqlite:////tmp/x.db")
    command = typer.main.get_command(serve_app)
    params = command.make_context("serve", argv[argv.index("serve") + 1:]).params
    assert params["status_command"].split()[1:] == ["-m", "envrouter.lab.ops_status",
                                                    plan.state_dir]
    assert params["drills_dir"] == os.path.join(plan.node_dir("up"), "drills")
    assert params["status_interval"] == 10.0
    assert params["cluster_command"].endswith(f"envrouter.lab.crm_mon {plan.state_dir}")


def test_the_lab_status_command_names_the_controllers_it_cannot_ask(tmp_path) -> None:
    """`python -m envrouter.lab.ops_status STATE_DIR` on a lab whose controllers are not running
    (no root, no lab): each is an entry with its error, which the server shows as unknown."""
    import sys

    from envrouter.lab.nodes import Lab
    from envrouter.lab.topology import plan_lab

    state_dir = tmp_path / "lab"
    state_dir.mkdir()
    Lab(plan_lab(2, 1, state_dir=str(state_dir))).save()
    probe = CommandStatusProbe(f"{sys.executable} -m envrouter.lab.ops_status {state_dir}")
    got = probe(1)
    assert [(c["node"], c["error"]) for c in got["controllers"]] == [
        ("ctl1", "the controller is not running"), ("ctl2", "the controller is not running")]
    assert all(c["degraded"] is None and c["nat"] is None for c in got["controllers"])
