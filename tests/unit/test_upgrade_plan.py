"""The upgrade planner (pure) and the preview (a rolled-back transaction on a real SQLite file
filled at the baseline schema)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest
from sqlalchemy import create_engine, text

from envrouter.db import migrate
from envrouter.errors import ConflictError, ValidationError
from envrouter.upgrade import plan as P
from envrouter.upgrade.execute import preview
from envrouter.upgrade.runner import SshRunner

ROWS = [
    "INSERT INTO environments (id, name, ha, dns_list, ntp_list, domain) "
    "VALUES (1, 'old', true, '[\"198.51.100.53\"]', '[\"198.51.100.123\"]', 'lab.example')",
    "INSERT INTO networks (id, environment_id, name, role, cidr, gateway, vlan, bridge) VALUES "
    "(1, 1, 'admin', 'admin', '10.20.0.0/24', '10.20.0.1', NULL, 'br-fw-admin'),"
    "(2, 1, 'management', 'management', '192.168.0.0/24', NULL, NULL, 'br-mgmt'),"
    "(3, 1, 'public', 'public', '203.0.113.0/24', '203.0.113.1', NULL, 'br-ex')",
    "INSERT INTO ip_ranges (id, network_id, start_address, end_address) VALUES "
    "(1, 1, '10.20.0.10', '10.20.0.200'), (2, 2, '192.168.0.10', '192.168.0.200'),"
    "(3, 3, '{public_start}', '{public_end}')",
    "INSERT INTO nodes (id, environment_id, hostname, roles, status) VALUES "
    "(1, 1, 'ctl1', 'controller', 'ready'), (2, 1, 'ctl2', 'controller', 'ready'),"
    "(3, 1, 'cmp1', 'compute', 'ready'), (4, 1, 'cmp2', 'compute', 'ready'),"
    "(5, 1, 'stor1', 'storage', 'ready')",
    "INSERT INTO addresses (id, network_id, node_id, address) VALUES "
    "(1, 1, 1, '10.20.0.11'), (2, 2, 1, '192.168.0.11'), (3, 3, 1, '203.0.113.11'),"
    "(4, 1, 2, '10.20.0.12'), (5, 2, 2, '192.168.0.12'), (6, 3, 2, '203.0.113.12'),"
    "(7, 1, 3, '10.20.0.101'), (8, 2, 3, '192.168.0.101'),"
    "(9, 1, 4, '10.20.0.102'), (10, 2, 4, '192.168.0.102'),"
    "(11, 1, 5, '10.20.0.103'), (12, 2, 5, '192.168.0.103')",
]


def baseline_db(path, public: tuple[str, str] = ("203.0.113.10", "203.0.113.20")) -> str:
    url = f"sqlite:///{path}"
    migrate.upgrade(url, migrate.BASELINE)
    engine = create_engine(url)
    with engine.begin() as c:
        for row in ROWS:
            c.execute(text(row.replace("{public_start}", public[0])
                           .replace("{public_end}", public[1])))
    engine.dispose()
    return url


def dump(url: str) -> list[str]:
    con = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        return list(con.iterdump())
    finally:
        con.close()


@pytest.fixture
def url(tmp_path) -> str:
    return baseline_db(tmp_path / "db.sqlite")


def test_preview_changes_nothing_and_plans_every_step_in_order(url) -> None:
    before = dump(url)
    pv = preview(url, "old")
    assert dump(url) == before
    assert migrate.current(url) == migrate.BASELINE
    assert pv.controllers == ["ctl1", "ctl2"]
    assert pv.observed == P.Observed(migrate.BASELINE, migrate.head(), False, False,
                                     {"vrouter": "192.168.0.10", "vrouter_pub": "203.0.113.10"})
    assert str(pv.before["cmp1"].host.gateway) == "10.20.0.1"
    assert pv.before["cmp1"].host.model_dump()["dns_servers"] == ["198.51.100.53"]
    assert str(pv.after["cmp1"].host.gateway) == "192.168.0.10"
    assert pv.after["cmp1"].host.ntp_servers == ["192.168.0.10"]
    assert pv.before["ctl1"].vrouter is None and pv.after["ctl1"].vrouter is not None
    steps = P.plan_upgrade(pv.before, pv.after, pv.controllers, pv.observed)
    assert [s.key for s in steps] == [
        "migrate", "reserve-vips", "check-packages:ctl1", "check-packages:ctl2", "enable",
        "deploy-vrouter:ctl1", "deploy-vrouter:ctl2", "ha-install:ctl1", "ha-install:ctl2",
        "ha-apply:ctl1", "wait-vips:ctl1", "move:cmp1", "move:cmp2", "move:stor1",
    ]
    assert "10.20.0.1 -> 192.168.0.10" in steps[-3].text


def test_a_public_range_too_small_says_how_many_addresses_are_missing(tmp_path) -> None:
    # public range .11-.12: both held by the controllers, and the public VIP needs one
    url = baseline_db(tmp_path / "full.sqlite", public=("203.0.113.11", "203.0.113.12"))
    before = dump(url)
    with pytest.raises(ConflictError) as exc:
        preview(url, "old")
    assert "network 'public'" in str(exc.value)
    assert "1 address(es) needed, 0 free, 1 missing" in str(exc.value)
    assert dump(url) == before
    cli = subprocess.run([sys.executable, "-m", "envrouter.cli.main", "upgrade", "old",
                          "--dry-run", "--database-url", url, "--state-file",
                          str(tmp_path / "st.json")], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 2
    assert "1 missing; widen the ranges" in cli.stderr
    assert dump(url) == before and not (tmp_path / "st.json").exists()


def test_dry_run_prints_the_plan_and_changes_nothing(url, tmp_path) -> None:
    before = dump(url)
    cli = subprocess.run([sys.executable, "-m", "envrouter.cli.main", "upgrade", "old",
                          "--dry-run", "--database-url", url, "--state-file",
                          str(tmp_path / "st.json")], capture_output=True, text=True,
                         timeout=120, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert cli.returncode == 0, cli.stderr
    assert "migrate the database schema 0001_baseline -> 0003_ipv6" in cli.stdout
    assert "move cmp2: default route 10.20.0.1 -> 192.168.0.10" in cli.stdout
    assert dump(url) == before and not (tmp_path / "st.json").exists()


def test_resume_skips_what_is_done_but_always_rechecks(url) -> None:
    pv = preview(url, "old")
    now = P.Observed(migrate.head(), migrate.head(), True, True, pv.observed.vips)
    done = ["migrate", "reserve-vips", "check-packages:ctl1", "check-packages:ctl2", "enable",
            "deploy-vrouter:ctl1", "deploy-vrouter:ctl2", "ha-install:ctl1", "ha-install:ctl2",
            "ha-apply:ctl1", "wait-vips:ctl1", "move:cmp1"]
    steps = P.plan_upgrade(pv.before, pv.after, pv.controllers, now, done=done,
                           moved=["cmp1"])
    assert [s.key for s in steps] == ["check-packages:ctl1", "check-packages:ctl2",
                                      "wait-vips:ctl1", "move:cmp2", "move:stor1"]
    # a node moved back is tried again; nodes recorded moved are not
    steps = P.plan_upgrade(pv.before, pv.after, pv.controllers, now, done=done,
                           moved=["cmp1", "stor1"])
    assert [s.key for s in steps if s.kind == P.MOVE] == ["move:cmp2"]
    states = P.final_states(pv.before, pv.after, pv.controllers,
                            {"cmp1": P.MOVED, "cmp2": P.MOVED_BACK})
    assert states == {"cmp1": "moved", "cmp2": "moved back", "stor1": "not moved"}


def test_nodes_to_move_skips_controllers_and_unchanged_nodes(url) -> None:
    pv = preview(url, "old")
    assert P.nodes_to_move(pv.before, pv.after, pv.controllers) == ["cmp1", "cmp2", "stor1"]
    same = dict(pv.after)
    same["cmp2"] = pv.before["cmp2"]
    assert P.nodes_to_move(pv.before, same, pv.controllers) == ["cmp1", "stor1"]
    with pytest.raises(ValidationError, match="no controller"):
        P.plan_upgrade(pv.before, pv.after, [], pv.observed)
    with pytest.raises(ValidationError, match="would not be active"):
        P.plan_upgrade(pv.before, pv.before, pv.controllers, pv.observed)


def test_package_and_binary_checks(url) -> None:
    vr = preview(url, "old").after["ctl1"].vrouter
    assert vr is not None
    assert "conntrackd" in P.required_packages(vr)
    assert "openvswitch-switch" not in P.required_packages(vr)
    ovs = vr.model_copy(update={"bridge_kind": "ovs", "conntrack_sync": False})
    assert "openvswitch-switch" in P.required_packages(ovs)
    assert "conntrackd" not in P.required_packages(ovs)
    argv = P.package_check_argv(vr)
    assert argv[:4] == ["dpkg-query", "-W", "-f", "${Package}\\t${db:Status-Status}\\n"]
    out = "".join(f"{p}\tinstalled\n" for p in P.required_packages(vr)
                  if p not in ("chrony", "conntrackd"))
    out += "conntrackd\tconfig-files\n"
    assert P.missing_packages(vr, out) == ["chrony", "conntrackd"]
    which = "/usr/sbin/nft\n/usr/sbin/dnsmasq\n/usr/bin/arping\n"
    assert "chronyd" in P.missing_binaries(vr, which)
    assert "nft" not in P.missing_binaries(vr, which)


def test_node_checks_judge_real_outputs(url) -> None:
    doc = preview(url, "old").after["cmp1"]
    assert P.check_name(doc, None) == "cmp1.lab.example"
    assert P.check_name(doc, "www.example") == "www.example"
    no_domain = doc.model_copy(update={"host": doc.host.model_copy(update={"search_domain": None})})
    with pytest.raises(ValidationError, match="--check-name"):
        P.check_name(no_domain, None)
    checks = {c.name: c for c in P.node_checks(doc, "cmp1.lab.example", ["envrouter"],
                                               ["--root", "/r"])}
    assert list(checks) == ["converged", "gateway", "dns", "time"]
    assert checks["gateway"].argv[-1] == "192.168.0.10"
    assert "@192.168.0.10" in checks["dns"].argv
    assert checks["converged"].argv[-2:] == ["--root", "/r"]
    assert checks["dns"].judge(0, "192.168.0.101\n") is None
    assert checks["dns"].judge(0, "") is not None
    assert checks["dns"].judge(9, ";; no servers could be reached") is not None
    assert checks["time"].judge(0, "2026-01-01T00:00:00Z System clock wrong by 0.000012 "
                                   "seconds (ignored)") is None
    assert checks["time"].judge(1, "No suitable source for synchronisation") is not None
    assert checks["gateway"].judge(1, "") is not None


def test_ssh_runner_quotes_each_argument() -> None:
    runner = SshRunner({"cmp1": "10.20.0.101"}, user="root", options=["ConnectTimeout=5"])
    argv = runner.argv("cmp1", ["chronyd", "-Q", "server 1.2.3.4 iburst; rm -rf /"],
                       env={"ENVROUTER_TOKEN": "a b"})
    assert argv[:6] == ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "root@10.20.0.101"]
    assert argv[6] == "--"
    assert argv[7] == "env 'ENVROUTER_TOKEN=a b' chronyd -Q 'server 1.2.3.4 iburst; rm -rf /'"
    assert runner.argv("cmp2", ["true"])[-3] == "root@cmp2"
    assert SshRunner({}).argv("cmp2", ["true"])[-3:] == ["cmp2", "--", "true"]
