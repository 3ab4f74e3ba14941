"""The vrouter OCF agent on a controller played by a test namespace (agent_world's World):
ocf-tester passes, and a recurring monitor re-asserts what drifted."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from agent_world import controller_document, sh

from envrouter.ha.install import install_agents
from envrouter.waiting import wait_until
from monitor_imports import heavy_in, run_monitor

pytestmark = [pytest.mark.root, pytest.mark.timeout(300)]


@pytest.fixture
def ocf_root():
    # ocf-tester runs meta-data as user nobody: the agent must sit in a directory nobody reads
    root = Path(f"/run/ert-{secrets.token_hex(3)}-ocf")
    root.mkdir(mode=0o755)
    try:
        install_agents(str(root))
        yield root / "resource.d" / "envrouter"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _ip_forward(ns: str) -> str:
    return sh("ip", "netns", "exec", ns, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip()


def _dad_done(*namespaces: str) -> bool:
    """No IPv6 address still tentative: the kernel's duplicate address detection changes the
    address flags and adds the link-local routes ~1 s after a link comes up, which changes the
    stamp by itself (a false alarm: one full check more, harmless in production)."""
    return all(not sh("ip", "-n", ns, "-6", "addr", "show", "tentative").stdout.strip()
               for ns in namespaces)


def test_vrouter_agent_passes_ocf_tester_and_monitor_reasserts(world, ocf_root):
    world.build(1)
    ctl, vr = world.ns("ctl1"), world.vr
    doc = world.write_doc(controller_document(vr))
    files = world.tmp / "root"
    files.mkdir()
    params = {"document": str(doc), "host_netns": ctl, "root": str(files)}
    argv = ["ocf-tester", "-n", "t-vrouter"]
    for k, v in params.items():
        argv += ["-o", f"{k}={v}"]
    proc = subprocess.run([*argv, str(ocf_root / "vrouter")], capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not os.path.exists(f"/run/netns/{vr}")  # ocf-tester ends with a stop

    lock = str(world.tmp / "agent" / "agent.lock")  # the monitor's records go beside it
    env = {**os.environ, **{f"OCF_RESKEY_{k}": v for k, v in params.items()},
           "OCF_RESKEY_CRM_meta_interval": "10000", "ENVROUTER_AGENT_LOCK": lock}
    agent = str(ocf_root / "vrouter")
    assert subprocess.run([agent, "start"], env=env, timeout=120).returncode == 0
    try:
        assert _ip_forward(vr) == "1"
        sh("ip", "netns", "exec", vr, "sysctl", "-qw", "net.ipv4.ip_forward=0")
        assert subprocess.run([agent, "monitor"], env=env, timeout=120).returncode == 0
        assert _ip_forward(vr) == "1"
        # converged: the next monitors record the kernel's stamp, then find it unchanged; a
        # drift after that still changes the stamp, whatever it touches
        assert wait_until(lambda: _dad_done(vr, ctl), timeout=30, interval=0.2)
        for _ in range(2):
            assert subprocess.run([agent, "monitor"], env=env, timeout=120).returncode == 0
        assert list(Path(lock).parent.glob(".ocf/vrouter-*.kernel"))
        # the stamp matched: that monitor read neither the document nor the kernel by pyroute2
        rc, modules = run_monitor("vrouter", env, importtime=True)
        assert rc == 0 and "envrouter.agent.stamp" in modules and heavy_in(modules) == []
        drifts = [
            (["ip", "netns", "exec", vr, "sysctl", "-qw", "net.ipv4.ip_forward=0"],
             lambda: _ip_forward(vr) == "1"),
            (["ip", "-n", vr, "route", "del", "default"],
             lambda: "default" in sh("ip", "-n", vr, "route", "show", "default").stdout),
            (["ip", "netns", "exec", vr, "nft", "delete", "table", "ip", "envrouter"],
             lambda: "envrouter" in sh("ip", "netns", "exec", vr, "nft", "list",
                                       "tables").stdout),
            (["ip", "-n", ctl, "link", "set", "vr-mgmt-h", "nomaster"],
             lambda: "master br-mgmt" in sh("ip", "-n", ctl, "link", "show",
                                            "vr-mgmt-h").stdout),
        ]
        for argv, repaired in drifts:
            assert subprocess.run([agent, "monitor"], env=env, timeout=120).returncode == 0
            assert repaired()
            sh(*argv)
            assert not repaired()
            assert subprocess.run([agent, "monitor"], env=env, timeout=120).returncode == 0
            assert repaired(), argv
    finally:
        assert subprocess.run([agent, "stop"], env=env, timeout=120).returncode == 0
    assert subprocess.run([agent, "monitor"], env=env, timeout=60).returncode == 7
