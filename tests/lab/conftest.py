"""The shared lab: ONE lab per test session, built with `envrouter lab up` and removed with
`envrouter lab down` at the end (and checked to leave nothing).

Use it from any test under tests/lab/::

    @pytest.mark.root
    @pytest.mark.lab
    def test_something(lab):                       # lab: envrouter.lab.nodes.Lab
        out = lab.exec_in("cmp1", ["ping", "-c1", lab.plan.vip_management])
        lab.power_off("ctl1"); power_on(lab, "ctl1")   # from envrouter.lab.build

Tests that break the lab (power-off) must put it back before they return.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

ENVROUTER = [sys.executable, "-m", "envrouter.cli.main"]


def host_snapshot() -> dict[str, Any]:
    """The machine's own network state: links, addresses, routes, rules, resolver."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        links = sorted(
            (link.get("ifname"), link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or "")
            for link in ipr.get_links()
        )
        addrs = sorted(
            (a.get("index"), a.get("address"), a["prefixlen"]) for a in ipr.get_addr()
        )
        routes = sorted(
            (r.get("table"), r.get("dst") or "default", r["dst_len"], r.get("gateway") or "",
             r.get("oif") or 0)
            for r in ipr.get_routes(family=2, table=254)
        )
        rules = sorted(str((r.get("table"), r.get("priority"))) for r in ipr.get_rules())
    try:
        with open("/etc/resolv.conf", "rb") as f:
            resolv = f.read().decode(errors="replace")
    except OSError:
        resolv = None
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        forward = f.read().strip()
    return {"links": links, "addrs": addrs, "routes": routes, "rules": rules,
            "resolv.conf": resolv, "ip_forward": forward}


def lab_leftovers(prefix: str, state_dir: str) -> list[str]:
    """What of a lab (by prefix and state dir) still exists: namespaces, processes, mounts."""
    from pyroute2 import netns

    left = [f"netns {n}" for n in netns.listnetns() if n.startswith(prefix)]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if state_dir in cmd or f" {prefix}" in cmd:
            left.append(f"process {entry}: {cmd[:120]}")
    with open("/proc/self/mountinfo") as f:
        left += [f"mount {line.split()[4]}" for line in f if state_dir in line]
    if os.path.exists(state_dir):
        left.append(f"state dir {state_dir}: {os.listdir(state_dir)}")
    return left


def run_cli(*args: str, timeout: float = 400, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ENVROUTER, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


class LabTools:
    """Helpers for lab tests (a fixture, so test modules need no imports from here)."""

    host_snapshot = staticmethod(host_snapshot)
    lab_leftovers = staticmethod(lab_leftovers)
    run_cli = staticmethod(run_cli)


@pytest.fixture(scope="session")
def labtools() -> type[LabTools]:
    return LabTools


@pytest.fixture(scope="session")
def host_before() -> dict[str, Any]:
    return host_snapshot()


@pytest.fixture(scope="session")
def lab(host_before: dict[str, Any]) -> Iterator[Any]:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    from envrouter.lab.nodes import Lab

    prefix = f"ert{secrets.token_hex(2)}-"
    state_dir = tempfile.mkdtemp(prefix="envrouter-lab-")
    os.rmdir(state_dir)  # `lab up` creates it; `lab down` must remove it
    up = run_cli("lab", "up", "--state-dir", state_dir, "--prefix", prefix)
    try:
        assert up.returncode == 0, f"lab up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        the_lab = Lab.load(state_dir)
        the_lab.up_output = up.stdout  # type: ignore[attr-defined]
        yield the_lab
    finally:
        down = run_cli("lab", "down", "--state-dir", state_dir, "--prefix", prefix)
        assert down.returncode == 0, down.stderr
        assert lab_leftovers(prefix, state_dir) == []
        assert host_snapshot() == host_before
