"""What the VIP agent's namespace tests share (tests/netns is on sys.path: pytest puts the
directory of a test module without __init__.py there): the agent's environment, one run of it,
a link's MAC address."""

from __future__ import annotations

import os
import subprocess

from pyroute2 import IPRoute


def ocf_env(**params: str) -> dict[str, str]:
    """This process's environment with `params` as Pacemaker passes them (OCF_RESKEY_*)."""
    return {**os.environ, **{f"OCF_RESKEY_{k}": v for k, v in params.items()}}


def run_agent(agent: str, action: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([agent, action], env=env, capture_output=True, text=True, timeout=30)


def mac(ns: str, ifname: str) -> str:
    with IPRoute(netns=ns, flags=0) as ip:
        return ip.get_links(ip.link_lookup(ifname=ifname)[0])[0].get_attr("IFLA_ADDRESS")
