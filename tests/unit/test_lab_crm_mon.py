"""`python -m envrouter.lab.crm_mon`: typed errors inside, exit codes only at its edge (main)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from envrouter.lab.crm_mon import NoClusterAnswer, dc_crm_mon, main
from envrouter.lab.topology import plan_lab


class _NoRunningNode:
    """A lab whose controllers are all powered off (nothing is run)."""

    def __init__(self) -> None:
        self.plan = plan_lab(2, 1, prefix="t-", state_dir="/nonexistent")

    def node_running(self, name: str) -> bool:
        return False


def test_no_answer_is_a_typed_error() -> None:
    with pytest.raises(NoClusterAnswer, match="no running controller answered crm_mon"):
        dc_crm_mon(_NoRunningNode())  # type: ignore[arg-type]


def test_main_turns_errors_into_exit_codes(tmp_path, capsys) -> None:
    assert main([]) == 2
    assert "usage: python -m envrouter.lab.crm_mon STATE_DIR" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 1
    assert f"no lab state in {tmp_path} (is the lab up?)" in capsys.readouterr().err


def test_the_module_exits_with_main_s_code(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-m", "envrouter.lab.crm_mon", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "no lab state" in proc.stderr


def test_reaching_upstream_needs_pingd_above_zero() -> None:
    from envrouter.lab.settle import reaching_upstream
    from envrouter.ops.parse import parse_crm_mon

    text = (Path(__file__).parent / "test_ops_data" / "crm_mon_healthy.xml").read_text()
    attrs = {n.name: n.attributes for n in parse_crm_mon(text).nodes}
    assert reaching_upstream(attrs) == {"ctl1", "ctl2", "ctl3"}
    attrs["ctl2"] = {"pingd": "0"}
    del attrs["ctl3"]["pingd"]  # just back: its ping resource has not written it yet
    attrs["ctl4"] = {}
    assert reaching_upstream(attrs) == {"ctl1"}
