"""envrouter.lab.offload in a throw-away namespace (root, no lab needed)."""

from __future__ import annotations

import secrets
import subprocess
import sys

import pytest

pytestmark = pytest.mark.root


def test_tx_checksum_off_on_a_veth() -> None:
    from pyroute2 import IPRoute, netns

    name = f"ert{secrets.token_hex(3)}-off"
    netns.create(name)
    try:
        with IPRoute(netns=name) as ipr:
            ipr.link("add", ifname="va", kind="veth", peer={"ifname": "vb"})

        def show() -> str:
            return subprocess.run(["ip", "netns", "exec", name, sys.executable, "-m",
                                   "envrouter.lab.offload", "--show", "va", "vb"],
                                  capture_output=True, text=True, check=True).stdout

        assert show() == "va tx-checksumming on\nvb tx-checksumming on\n"
        subprocess.run(["ip", "netns", "exec", name, sys.executable, "-m",
                        "envrouter.lab.offload", "va"], check=True)
        assert show() == "va tx-checksumming off\nvb tx-checksumming on\n"
    finally:
        netns.remove(name)
