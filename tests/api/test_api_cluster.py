"""Live cluster state: from the operator's --cluster-command, parsed from real crm_mon XML
(captured from the lab), or "unknown" with the reason; never invented. The commands here are
real processes (`cat`, `false`), no mocks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from envrouter.api.cluster import CommandClusterProbe, summarize
from envrouter.ops.parse import parse_crm_mon

API = "/api/v1"
DATA = Path(__file__).parent.parent / "unit" / "test_ops_data"


def test_summary_of_a_healthy_cluster() -> None:
    state = parse_crm_mon((DATA / "crm_mon_healthy.xml").read_text())
    s = summarize(state, "test")
    assert s["quorate"] is True and s["dc"] == "ctl2"
    assert s["vip_holder"] == "ctl1" and s["vip_holders"] == ["ctl1"]
    assert [n["name"] for n in s["nodes"]] == ["ctl1", "ctl2", "ctl3"]
    assert all(n["online"] for n in s["nodes"])


def test_cluster_endpoint_uses_the_command(app, client, make_env) -> None:
    env_id = make_env(controllers=1, computes=0)
    assert client.get(f"{API}/environments/{env_id}/cluster").json()["source"] == "unknown"
    app.state.cluster_probe = CommandClusterProbe(f"cat {DATA / 'crm_mon_healthy.xml'}")
    got = client.get(f"{API}/environments/{env_id}/cluster").json()
    assert got["source"] == "crm_mon via cat"
    assert got["quorate"] is True and got["vip_holder"] == "ctl1"


@pytest.mark.parametrize("command", ["false", f"{sys.executable} -c pass",
                                     "/nonexistent/crm_mon"])
def test_a_failing_command_is_unknown_with_the_reason(app, client, make_env, command) -> None:
    env_id = make_env(controllers=1, computes=0)
    app.state.cluster_probe = CommandClusterProbe(command)
    got = client.get(f"{API}/environments/{env_id}/cluster").json()
    assert got["source"] == "unknown" and got["quorate"] is None and got["vip_holder"] is None
    assert "cluster command" in got["error"]


def test_env_id_is_substituted(tmp_path) -> None:
    (tmp_path / "7.xml").write_text((DATA / "crm_mon_healthy.xml").read_text())
    probe = CommandClusterProbe(f"cat {tmp_path}/{{env_id}}.xml")
    assert probe(7)["dc"] == "ctl2"
    with pytest.raises(RuntimeError):
        probe(8)
