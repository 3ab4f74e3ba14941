"""`envrouter upgrade` in a lab of its own, deployed the old way (no vrouter, computes routed
through the master as admin gateway, database at the baseline schema).

Traffic runs all along (ping every 50 ms from each compute to an upstream host). The first
run is made to fail for real on cmp2 (an nft rule inside cmp2 drops its DNS queries to the
VIP): it must stop with cmp1 moved, cmp2 moved back and cmp3 untouched, every node working.
The second run, the rule gone, resumes and moves cmp2 and cmp3. Then every compute routes,
resolves and syncs time through the VIP, and no compute lost more than 1 s of pings.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import sqlite3
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from envrouter.waiting import wait_until

pytestmark = [pytest.mark.root, pytest.mark.lab]

COMPUTES = ["cmp1", "cmp2", "cmp3"]
PING_INTERVAL = 0.05
BLOCK_TABLE = "ert_upgrade_block"


@pytest.fixture(scope="module")
def legacy_lab(labtools, host_before: dict[str, Any]) -> Iterator[Any]:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    from envrouter.lab.nodes import Lab

    prefix = f"eru{secrets.token_hex(2)}-"
    state_dir = tempfile.mkdtemp(prefix="envrouter-upgrade-lab-")
    os.rmdir(state_dir)
    # the old way had no fencing (the upgrade applies the layout with --no-stonith)
    # the old release's environment is IPv4 only (its database knows no IPv6)
    up = labtools.run_cli("lab", "up", "--no-deploy", "--no-fencing", "--no-ipv6",
                          "--controllers", "2", "--nodes", "3", "--state-dir", state_dir,
                          "--prefix", prefix)
    try:
        assert up.returncode == 0, f"lab up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        yield Lab.load(state_dir)
    finally:
        down = labtools.run_cli("lab", "down", "--state-dir", state_dir, "--prefix", prefix)
        assert down.returncode == 0, down.stderr
        assert labtools.lab_leftovers(prefix, state_dir) == []
        assert labtools.host_snapshot() == host_before


def _echo_source(lab, node: str) -> str | None:
    from envrouter.lab.topology import UPSTREAM_HTTP, UPSTREAM_HTTP_PORT

    h = lab.exec_in(node, ["curl", "-s", "--max-time", "5",
                           f"http://{UPSTREAM_HTTP}:{UPSTREAM_HTTP_PORT}/"], check=False)
    try:
        return json.loads(h.stdout)["source"]
    except (ValueError, KeyError, TypeError):
        return None


def _root(lab, node: str) -> str:
    return os.path.join(lab.plan.node_dir(node), "root")


def _nameserver(lab, node: str) -> str:
    with open(os.path.join(_root(lab, node), "etc/resolv.conf")) as f:
        found = re.findall(r"^nameserver\s+(\S+)", f.read(), re.M)
    assert found, f"{node}: no nameserver in its resolv.conf"
    return found[0]


def _chrony_conf(lab, node: str) -> str:
    with open(os.path.join(_root(lab, node), "etc/chrony/chrony.conf")) as f:
        return f.read()


def _resolves(lab, node: str, server: str) -> bool:
    d = lab.exec_in(node, ["dig", "+short", "+time=2", "+tries=2", f"@{server}",
                           f"www.{lab.plan.zone}"], check=False)
    return lab.plan.upstream_http in d.stdout.split()


def _time_answers(lab, node: str, server: str) -> bool:
    n = lab.exec_in(node, ["chronyd", "-Q", "-t", "10", f"server {server} iburst maxsamples 1"],
                    check=False, timeout=30)
    text = n.stdout + n.stderr
    return n.returncode == 0 and bool(
        re.search(r"[Oo]ffset\s*=?\s*[-+]?[0-9.]+\s*seconds|System clock wrong by", text))


def _works_old_way(lab, node: str, master_public: str) -> None:
    assert _echo_source(lab, node) == master_public, f"{node} does not route via the master"
    assert _nameserver(lab, node) == lab.plan.upstream_dns
    assert _resolves(lab, node, lab.plan.upstream_dns)


def _works_via_vip(lab, node: str, vip: str, vip_pub: str) -> None:
    assert _echo_source(lab, node) == vip_pub, f"{node} does not route through the vrouter"
    assert _nameserver(lab, node) == vip
    assert re.search(rf"^server\s+{re.escape(vip)}\b", _chrony_conf(lab, node), re.M), \
        f"{node}: chrony is not pointed at {vip}"
    assert _resolves(lab, node, vip), f"{node}: no DNS answer through {vip}"
    assert _time_answers(lab, node, vip), f"{node}: no time from {vip}"


def _db_dump(url: str) -> str:
    con = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        return hashlib.sha256("\n".join(con.iterdump()).encode()).hexdigest()
    finally:
        con.close()


def _ping_gaps(path: str) -> tuple[int, float]:
    """(replies, longest run of missing replies in seconds) from `ping -n` output."""
    with open(path) as f:
        seqs = [int(m) for m in re.findall(r"icmp_seq=(\d+)", f.read())]
    longest = max((b - a - 1 for a, b in zip(seqs, seqs[1:], strict=False)), default=0)
    return len(seqs), longest * PING_INTERVAL


def _upgrade(labtools, lab, state_file: str):  # noqa: ANN202
    # no --database-url: with --runner lab the lab's control plane database is the default
    return labtools.run_cli(
        "upgrade", lab.plan.env_name, "--runner", "lab", "--lab-state-dir", lab.plan.state_dir,
        "--state-file", state_file, "--no-stonith", "--check-timeout", "6",
        env={"COLUMNS": "200"}, timeout=400)


def test_upgrade_live_with_failure_and_resume(legacy_lab, labtools, tmp_path) -> None:
    from envrouter.db import migrate
    from envrouter.lab.legacy import deploy_legacy
    from envrouter.lab.topology import UPSTREAM_HTTP
    from envrouter.upgrade.execute import preview

    lab = legacy_lab
    info = deploy_legacy(lab)
    url = info["db_url"]
    assert migrate.current(url) == migrate.BASELINE
    master_public = lab.plan.node("master").address("public")
    for node in COMPUTES:
        _works_old_way(lab, node, master_public)

    # traffic: every compute pings an upstream host every 50 ms during the whole upgrade
    for node in COMPUTES:
        lab.spawn_in(node, "upgrade-ping", ["stdbuf", "-oL", "ping", "-n", "-i",
                                            str(PING_INTERVAL), UPSTREAM_HTTP])
    ping_out = {n: os.path.join(lab.plan.node_dir(n), "upgrade-ping.out") for n in COMPUTES}
    assert wait_until(lambda: all(_ping_gaps(p)[0] >= 5 for p in ping_out.values()), 20, 0.2), \
        "pings do not get through"

    # --dry-run: the plan, and nothing changed (database, nodes, no state file)
    state_file = str(tmp_path / "upgrade-state.json")
    dump = _db_dump(url)
    resolv = {n: _nameserver(lab, n) for n in COMPUTES}
    dry = labtools.run_cli("upgrade", lab.plan.env_name, "--dry-run", "--database-url", url,
                           "--state-file", state_file, env={"COLUMNS": "200"})
    assert dry.returncode == 0, dry.stderr
    for text in ("migrate the database schema 0001_baseline -> 0003_ipv6", "reserve the VIPs",
                 "check ctl1 has", "enable the vrouter", "agent apply --scope vrouter on ctl2",
                 "move cmp1", "move cmp3"):
        assert text in dry.stdout, f"{text!r} not in the plan:\n{dry.stdout}"
    assert _db_dump(url) == dump and migrate.current(url) == migrate.BASELINE
    assert not os.path.exists(state_file)
    assert {n: _nameserver(lab, n) for n in COMPUTES} == resolv
    vips = preview(url, lab.plan.env_name).observed.vips
    vip, vip_pub = vips["vrouter"], vips["vrouter_pub"]

    # a real failure halfway: cmp2 cannot reach DNS on the VIP (its old resolver still works)
    lab.exec_in("cmp2", ["nft", "-f", "-"], input=(
        f"table ip {BLOCK_TABLE} {{\n chain out {{\n  type filter hook output priority 0;\n"
        f"  ip daddr {vip} udp dport 53 drop\n  ip daddr {vip} tcp dport 53 drop\n }}\n}}\n"))
    first = _upgrade(labtools, lab, state_file)
    assert first.returncode == 1, f"{first.stdout[-3000:]}\n{first.stderr[-2000:]}"
    assert "moving it back" in first.stdout, first.stdout[-3000:]
    with open(state_file) as f:
        recorded = json.load(f)
    assert recorded["nodes"] == {"cmp1": "moved", "cmp2": "moved back"}, recorded
    assert recorded["stopped"]["step"] == "move:cmp2", recorded["stopped"]
    assert "dns" in recorded["stopped"]["reason"]
    assert migrate.current(url) == migrate.head()
    # every node still works: cmp1 through the VIP, cmp2 back on the master, cmp3 untouched
    _works_via_vip(lab, "cmp1", vip, vip_pub)
    _works_old_way(lab, "cmp2", master_public)
    _works_old_way(lab, "cmp3", master_public)

    # the cause gone, a second run resumes: done steps are not run again
    lab.exec_in("cmp2", ["nft", "delete", "table", "ip", BLOCK_TABLE])
    second = _upgrade(labtools, lab, state_file)
    print(first.stdout, second.stdout, sep="\n")
    assert second.returncode == 0, f"{second.stdout[-3000:]}\n{second.stderr[-2000:]}"
    for not_again in ("migrate the database", "reserve the VIPs", "enable the vrouter",
                      "agent apply --scope vrouter", "move cmp1"):
        assert not_again not in second.stdout, f"{not_again!r} ran again:\n{second.stdout}"
    assert "move cmp2" in second.stdout and "move cmp3" in second.stdout
    with open(state_file) as f:
        recorded = json.load(f)
    assert recorded["nodes"] == {n: "moved" for n in COMPUTES}
    assert recorded["stopped"] is None
    for node in COMPUTES:
        _works_via_vip(lab, node, vip, vip_pub)

    # pings: none of the moves (cmp2: there and back, then there again) cost 1 s
    for node, path in ping_out.items():
        replies, gap = _ping_gaps(path)
        print(f"{node}: {replies} ping replies, longest loss {gap:.2f} s")
        assert replies > 100, f"{node}: only {replies} ping replies"
        assert gap < 1.0, f"{node}: {gap:.2f} s of pings lost in a row"
