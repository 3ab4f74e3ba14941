"""The upgrade's run and resume logic against a real SQLite database and state file; the nodes
are a scripted runner that records every command (the lab test runs them for real)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence

import pytest
from test_upgrade_plan import baseline_db  # tests/unit is on sys.path (pytest prepend)

from envrouter.db import migrate
from envrouter.document import parse_document
from envrouter.upgrade import plan as P
from envrouter.upgrade import progress as prog
from envrouter.upgrade.execute import Options, Upgrade, preview

INSTALLED = "".join(f"{p}\tinstalled\n" for p in sorted(set(P.BINARY_PACKAGES.values())
                                                        | set(P.EXTRA_PACKAGES)))
WHICH = "".join(f"/usr/sbin/{b}\n" for b in P.BINARY_PACKAGES)


class ScriptedNodes:
    """Answers like healthy nodes, except DNS checks on the nodes in `dns_down`; keeps what each
    node was last given (the pushed document) and every command."""

    def __init__(self, dns_down: Sequence[str] = (), missing: Sequence[str] = ()) -> None:
        self.dns_down = set(dns_down)
        self.missing = set(missing)
        self.calls: list[tuple[str, list[str]]] = []
        self.pushed: dict[str, list[str]] = {}

    def run(self, node: str, argv: Sequence[str], *, input: str | None = None,
            timeout: float = 60, env: Mapping[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        argv = list(argv)
        self.calls.append((node, argv))
        out, code = "", 0
        if argv[0] == "tee":
            doc = parse_document(input or "")
            self.pushed.setdefault(node, []).append(str(doc.host.gateway or ""))
        elif argv[0] == "dpkg-query":
            out = "".join(line + "\n" for line in INSTALLED.splitlines()
                          if line.split("\t")[0] not in self.missing)
        elif argv[0] == "which":
            out = WHICH
        elif argv[0] == "dig":
            out, code = ("", 9) if node in self.dns_down else ("192.168.0.101\n", 0)
        elif argv[0] == "chronyd":
            out = "System clock wrong by 0.000100 seconds (ignored)\n"
        return subprocess.CompletedProcess(argv, code, out, "")

    def envrouter(self) -> list[str]:
        return ["envrouter"]

    def agent_options(self, node: str) -> list[str]:
        return ["--root", f"/lab/{node}"]

    def commands(self, node: str) -> list[str]:
        return [" ".join(a[:3]) for n, a in self.calls if n == node]


OPTS = Options(check_timeout=0.1, vip_timeout=0.1)


@pytest.fixture
def url(tmp_path) -> str:
    return baseline_db(tmp_path / "db.sqlite")


def test_failed_check_moves_the_node_back_stops_and_a_second_run_resumes(url, tmp_path) -> None:
    state = str(tmp_path / "state.json")
    nodes = ScriptedNodes(dns_down=["cmp2"])
    result = Upgrade(url, "old", nodes, state, OPTS).run()
    assert result.stopped is not None and result.stopped["step"] == "move:cmp2"
    assert "check 'dns' failed" in result.stopped["reason"]
    assert result.nodes == {"cmp1": "moved", "cmp2": "moved back", "stor1": "not moved"}
    # the database went through migrate, reserve, enable for real
    assert migrate.current(url) == migrate.head()
    pv = preview(url, "old")
    assert pv.observed.vips_reserved and pv.observed.enabled
    # cmp2: the new gateway, then the old one again; stor1 never touched
    assert nodes.pushed["cmp2"] == ["192.168.0.10", "10.20.0.1"]
    assert nodes.pushed["cmp1"] == ["192.168.0.10"]
    assert "stor1" not in nodes.pushed and nodes.commands("stor1") == []
    recorded = prog.load(state, "old")
    assert recorded.nodes == {"cmp1": "moved", "cmp2": "moved back"}
    assert recorded.stopped == {"step": "move:cmp2", "reason": result.stopped["reason"]}
    assert "move:cmp2" not in recorded.done and "move:cmp1" in recorded.done
    assert str(parse_document(recorded.before["cmp2"]).host.gateway) == "10.20.0.1"

    again = ScriptedNodes()
    result = Upgrade(url, "old", again, state, OPTS).run()
    assert result.stopped is None
    assert result.nodes == {"cmp1": "moved", "cmp2": "moved", "stor1": "moved"}
    assert result.steps_run == ["check-packages:ctl1", "check-packages:ctl2", "wait-vips:ctl1",
                                "move:cmp2", "move:stor1"]
    assert "cmp1" not in again.pushed
    assert prog.load(state, "old").stopped is None
    # a third run has nothing left but the checks
    third = Upgrade(url, "old", ScriptedNodes(), state, OPTS).run()
    assert [k for k in third.steps_run if k.startswith("move")] == []


def test_missing_packages_stop_before_the_vrouter_is_enabled(url, tmp_path) -> None:
    state = str(tmp_path / "state.json")
    nodes = ScriptedNodes(missing=["conntrackd"])
    result = Upgrade(url, "old", nodes, state, OPTS).run()
    assert result.stopped is not None and result.stopped["step"] == "check-packages:ctl1"
    assert "ctl1 lacks Debian packages conntrackd" in result.stopped["reason"]
    pv = preview(url, "old")
    assert pv.observed.vips_reserved and not pv.observed.enabled
    assert all(n.pushed == {} for n in [nodes])
    assert result.nodes == {"cmp1": "not moved", "cmp2": "not moved", "stor1": "not moved"}


def test_deploy_pushes_the_vrouter_document_and_applies_scope_vrouter(url, tmp_path) -> None:
    nodes = ScriptedNodes()
    Upgrade(url, "old", nodes, str(tmp_path / "s.json"),
            Options(check_timeout=0.1, vip_timeout=0.1, stonith=False)).run()
    ctl1 = [a for n, a in nodes.calls if n == "ctl1"]
    apply = next(a for a in ctl1 if a[1:3] == ["agent", "apply"])
    assert apply == ["envrouter", "agent", "apply", "--document", P.PUSHED_DOCUMENT, "--scope",
                     "vrouter", "--state-dir", P.NODE_STATE_DIR, "--root", "/lab/ctl1"]
    assert ["envrouter", "ha", "apply", "--document", P.NODE_DOCUMENT, "--no-stonith"] in ctl1
    assert not any(a[1:3] == ["ha", "apply"] for n, a in nodes.calls if n == "ctl2")


def test_state_file_of_another_environment_is_refused(tmp_path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"environment": "other", "done": []}))
    with pytest.raises(Exception, match="records 'other', not 'old'"):
        prog.load(str(path), "old")
    p = prog.Progress("old", done=["migrate"], nodes={"cmp1": "moved"})
    prog.save(str(tmp_path / "x" / "s.json"), p)
    assert prog.load(str(tmp_path / "x" / "s.json"), "old") == p
