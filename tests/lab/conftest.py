"""The shared labs: ONE lab per bridge kind per test session, built with `envrouter lab up` and
removed with `envrouter lab down` (and checked to leave nothing). At most one is up at a time:
the tests on the Open vSwitch lab (fixture `ovs_lab`) run after all the others, and the Linux
bridge lab is taken down before the OVS lab is built.

Use them from any test under tests/lab/::

    @pytest.mark.root
    @pytest.mark.lab
    def test_something(lab):                       # lab: envrouter.lab.nodes.Lab (Linux bridges)
        out = lab.exec_in("cmp1", ["ping", "-c1", lab.plan.vip_management])
        lab.power_off("ctl1"); power_on(lab, "ctl1")   # from envrouter.lab.build

    def test_on_ovs(ovs_lab): ...                  # 3 controllers on OVS (userspace datapath),
                                                   # one compute node (OVS_LAB_ARGS)

Tests that break a lab (power-off) must put it back before they return.
ENVROUTER_TEST_LAB_OVS=0 skips the OVS lab's tests.
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


# the OVS lab: one compute node is enough for its drills (fewer nodes, a faster build)
OVS_LAB_ARGS = ("--bridge", "ovs", "--controllers", "3", "--nodes", "1")
LAB_ARGS = {"linux": (), "ovs": OVS_LAB_ARGS}


class LabPool:
    """At most one shared lab up: asking for the other bridge kind takes the current one
    down (checked to leave nothing) first. A lab that failed to come up is not retried."""

    def __init__(self, host_before: dict[str, Any]) -> None:
        self.host_before = host_before
        self.kind: str | None = None
        self.current: Any = None
        self.where: tuple[str, str] = ("", "")
        self.failed: dict[str, str] = {}

    def get(self, kind: str) -> Any:
        if os.geteuid() != 0:
            pytest.skip("the lab needs root")
        if kind in self.failed:
            pytest.fail(f"the {kind} lab did not come up (see the first test that asked)")
        if self.kind == kind:
            return self.current
        self.close()
        from envrouter.lab.nodes import Lab

        prefix = f"ert{secrets.token_hex(2)}-"
        state_dir = tempfile.mkdtemp(prefix="envrouter-lab-")
        os.rmdir(state_dir)  # `lab up` creates it; `lab down` must remove it
        self.kind, self.where = kind, (prefix, state_dir)
        up = run_cli("lab", "up", "--state-dir", state_dir, "--prefix", prefix,
                     *LAB_ARGS[kind])
        if up.returncode != 0:
            self.failed[kind] = up.stdout[-3000:] + up.stderr[-3000:]
            self.close()
            pytest.fail(f"lab up ({kind}) failed:\n{self.failed[kind]}")
        self.current = Lab.load(state_dir)
        self.current.up_output = up.stdout
        return self.current

    def close(self) -> None:
        if self.kind is None:
            return
        prefix, state_dir = self.where
        self.kind, self.current = None, None
        down = run_cli("lab", "down", "--state-dir", state_dir, "--prefix", prefix)
        assert down.returncode == 0, down.stderr
        assert lab_leftovers(prefix, state_dir) == []
        assert host_snapshot() == self.host_before


@pytest.fixture(scope="session")
def lab_pool(host_before: dict[str, Any]) -> Iterator[LabPool]:
    pool = LabPool(host_before)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def lab(lab_pool: LabPool) -> Any:
    """The shared Linux-bridge lab (envrouter.lab.nodes.Lab)."""
    return lab_pool.get("linux")


@pytest.fixture
def ovs_lab(lab_pool: LabPool) -> Any:
    """The shared Open vSwitch lab (userspace datapath)."""
    if os.environ.get("ENVROUTER_TEST_LAB_OVS") == "0":
        pytest.skip("ENVROUTER_TEST_LAB_OVS=0")
    return lab_pool.get("ovs")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The OVS lab's tests last: each lab is built once and only one is up at a time."""
    items.sort(key=lambda item: "ovs_lab" in getattr(item, "fixturenames", ()))


def pytest_collection_finish(session: pytest.Session) -> None:
    """The package test's `make deb` starts now, in the background (tests/lab/debbuild.py)."""
    import debbuild

    if os.geteuid() == 0 and any(item.path.name == "test_package.py" and
                                 not any(m.name == "skip" for m in item.iter_markers())
                                 for item in session.items):
        debbuild.start()


def pytest_sessionfinish() -> None:
    import debbuild

    debbuild.stop()
