"""What the VIP agent's namespace tests share (tests/netns is on sys.path: pytest puts the
directory of a test module without __init__.py there): the agent's environment, one run of it,
a link's MAC address, ocf-tester."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from pyroute2 import IPRoute


def ocf_env(**params: str) -> dict[str, str]:
    """This process's environment with `params` as Pacemaker passes them (OCF_RESKEY_*)."""
    return {**os.environ, **{f"OCF_RESKEY_{k}": v for k, v in params.items()}}


def run_agent(agent: str, action: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([agent, action], env=env, capture_output=True, text=True, timeout=30)


def mac(ns: str, ifname: str) -> str:
    with IPRoute(netns=ns, flags=0) as ip:
        return ip.get_links(ip.link_lookup(ifname=ifname)[0])[0].get_attr("IFLA_ADDRESS")


def ocf_tester(tag: str, params: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """ocf-tester on the VIP agent with `params`, the agents installed under /run/<tag>-ocf
    (ocf-tester runs the meta-data check as user nobody: every directory must be open to it),
    removed after."""
    from envrouter.ha.install import install_agents

    root = Path(f"/run/{tag}-ocf")
    root.mkdir(mode=0o755)
    try:
        os.chmod(root, 0o755)
        install_agents(str(root))
        argv = ["ocf-tester", "-n", f"t-{tag}"]
        for k, v in params.items():
            argv += ["-o", f"{k}={v}"]
        return subprocess.run([*argv, str(root / "resource.d" / "envrouter" / "vip")],
                              capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(root, ignore_errors=True)
