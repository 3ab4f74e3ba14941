"""Live cluster state: from the operator's --cluster-command, parsed from real crm_mon XML
(captured from the lab), or "unknown" with the reason; never invented. The commands here are
real processes (`cat`, `false`), no mocks."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from envrouter.api.cluster import ClusterProbeError, CommandClusterProbe, summarize
from envrouter.lab.waiting import wait_for
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
                                     "/nonexistent/crm_mon", "echo crm_mon: not xml"])
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
    with pytest.raises(ClusterProbeError):
        probe(8)


def test_output_that_is_not_crm_mon_reaches_the_requests_that_waited(tmp_path) -> None:
    """A command that prints no crm_mon XML fails its run with a ClusterProbeError: a request
    that waited for that run gets the same error at once, not a time-out."""
    release = tmp_path / "release"
    script = f"touch {tmp_path}/started; while [ ! -e {release} ]; do sleep 0.05; done; echo no"
    probe = CommandClusterProbe(f"sh -c '{script}'", timeout=60)
    out: dict[str, object] = {}

    def ask(key: str) -> None:
        try:
            probe(1)
        except ClusterProbeError as exc:
            out[key] = str(exc)

    first = threading.Thread(target=ask, args=("first",))
    first.start()
    wait_for("the command", lambda: (tmp_path / "started").exists(), timeout=30)
    twin = threading.Thread(target=ask, args=("twin",))
    twin.start()
    wait_for("the second request waiting", lambda: twin.is_alive(), timeout=30)
    release.touch()
    first.join(timeout=30)
    twin.join(timeout=30)
    assert not first.is_alive() and not twin.is_alive()
    assert "crm_mon: unexpected output: not XML" in str(out["first"])
    assert out["twin"] == out["first"]


def test_a_slow_cluster_does_not_hold_up_the_others(tmp_path) -> None:
    """Environment 1's command blocks until the test releases it; environment 2 is answered
    meanwhile, and a second request for environment 1 shares the first one's run."""
    (tmp_path / "2.xml").write_text((DATA / "crm_mon_healthy.xml").read_text())
    (tmp_path / "1.xml").write_text((DATA / "crm_mon_healthy.xml").read_text())
    release = tmp_path / "release"
    started = tmp_path / "started-{env_id}"
    script = (
        f"touch {started}; "
        f"if [ {{env_id}} = 1 ]; then while [ ! -e {release} ]; do sleep 0.05; done; fi; "
        f"cat {tmp_path}/{{env_id}}.xml"
    )
    probe = CommandClusterProbe(f"sh -c '{script}'", timeout=60)
    out: dict[str, object] = {}

    def ask(key: str, env_id: int) -> None:
        out[key] = probe(env_id)

    slow = threading.Thread(target=ask, args=("first", 1))
    slow.start()
    wait_for("the command of environment 1", lambda: (tmp_path / "started-1").exists(), timeout=30)
    twin = threading.Thread(target=ask, args=("twin", 1))
    twin.start()
    other = threading.Thread(target=ask, args=("other", 2))
    other.start()
    other.join(timeout=30)
    assert not other.is_alive() and out["other"]["dc"] == "ctl2"
    assert slow.is_alive() and twin.is_alive()  # still waiting for environment 1's command
    release.touch()
    slow.join(timeout=30)
    twin.join(timeout=30)
    assert out["first"] == out["twin"]
