"""Suite-wide test configuration.

Tiers (see the markers in pyproject.toml): tests/unit is pure; tests/netns, tests/lab need root
and create their own network namespaces (never the machine's own); tests/ui drive Debian's
chromium; tests/db also run against a real PostgreSQL that the fixtures start.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from envrouter import prerequisites

# Property tests assert outcomes, never a stopwatch: no per-example deadline (Hypothesis's
# default 200 ms fails an example on a loaded machine, not on a wrong result), and a failure
# prints the blob that replays it (@reproduce_failure) even on a fresh clone without the
# example database.
settings.register_profile("envrouter", deadline=None, print_blob=True)
settings.load_profile("envrouter")

# Tiers that run the programs of packaging/tools.tsv (the others are pure Python).
_TIERS_WITH_TOOLS = ("db", "netns", "ui", "lab")

# Cheap tiers first; the lab last, and within it the upgrade test (which builds a lab of its
# own) and the package test (its own lab, from the installed packages) before the tests that
# share one session-wide lab, so two labs never run at once.
_TIER_ORDER = ("unit", "api", "db", "netns", "ui", "lab/test_upgrade.py", "lab/test_package.py",
               "lab")


def _tier(item: pytest.Item) -> int:
    path = item.path.as_posix()
    for rank, tier in enumerate(_TIER_ORDER):
        if f"/tests/{tier}" in path:
            return rank
    return len(_TIER_ORDER)


def _needs_tools(item: pytest.Item) -> bool:
    path = item.path.as_posix()
    return (any(f"/tests/{tier}/" in path for tier in _TIERS_WITH_TOOLS)
            and not any(m.name == "skip" for m in item.iter_markers()))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_tier)  # stable: the order inside a file is kept
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="needs root: creates network namespaces")
        for item in items:
            if "root" in item.keywords or "lab" in item.keywords:
                item.add_marker(skip)
    if any(_needs_tools(item) for item in items):
        missing = prerequisites.missing(("runtime", "lab", "test", "packaging"))
        if missing:
            pytest.exit("the tests cannot run: "
                        + prerequisites.describe_missing(missing, "make deps"), returncode=4)
        # the sync tests assert that every NATed flow keeps its port: Debian's daemon fails them
        warning = prerequisites.conntrackd_warning()
        if warning:
            pytest.exit(f"the tests cannot run: {warning}", returncode=4)


class FakeStatusCommand:
    """A real executable script printing fixed `envrouter status --json` output (one object per
    controller, built from envrouter.ops.model as `envrouter status` builds it): the server's
    --status-command in the API and UI tests. `show(...)` changes what it prints next."""

    def __init__(self, directory) -> None:  # noqa: ANN001
        self.output = directory / "status.json"
        self.code = directory / "exit-code"
        self.path = directory / "fake-status"
        self.path.write_text(f"#!/bin/sh\ncat {self.output}\nexit $(cat {self.code})\n")
        self.path.chmod(0o755)
        self.command = str(self.path)
        self.show(holder="ctl1")

    def show(self, holder: str | None, *, nodes=("ctl1", "ctl2"), entries: int = 42,
             sync_errors: int = 0, exit_code: int = 0, raw: str | None = None,
             off: tuple[str, ...] = ()) -> None:
        import json

        if raw is None:
            raw = json.dumps([{"node": n, "error": "the controller is not running"} if n in off
                              else status_of(n, holder, nodes, entries, sync_errors)
                              for n in nodes])
        self.output.write_text(raw)
        self.code.write_text(str(exit_code))


def status_of(node: str, holder: str | None, nodes, entries: int, sync_errors: int) -> dict:  # noqa: ANN001
    from envrouter.ops import model as m

    res = [m.ResourceInstance(id="dns", parent="dns-clone", agent="ocf:envrouter:dns",
                              role="Started", active=True, failed=False, managed=True,
                              blocked=False, target_role=None, node=n) for n in nodes]
    if holder:
        # the layout's one VIP primitive, carrying every VIP (envrouter.ha.layout.VIPS)
        res.append(m.ResourceInstance(id="vips", parent=None, agent="ocf:envrouter:vip",
                                      role="Started", active=True, failed=False, managed=True,
                                      blocked=False, target_role=None, node=holder))
    cluster = m.ClusterState(available=True, quorate=True, dc=nodes[0], stonith_enabled=False,
                             nodes=[m.NodeState(name=n, online=True) for n in nodes],
                             resources=res)
    stats = m.ConntrackdStats(
        internal_active=entries, internal_created=entries, internal_failed=0,
        external_active=7, external_created=7, external_failed=0, transport="UDP",
        device="br-mgmt", bytes_sent=1, bytes_recv=1, packets_sent=1, packets_recv=1,
        errors_send=sync_errors, errors_recv=0, malformed_msgs=0, lost_msgs=0)
    st = m.Status(
        node=node, namespace="vrouter", document="/var/lib/envrouter/document.json",
        document_error=None, namespace_present=True, cluster=cluster,
        vips=[m.VipStatus(name="vrouter", resource="vips", address="10.20.0.2",
                          pacemaker_nodes=[holder] if holder else [], here=node == holder),
              m.VipStatus(name="vrouter_pub", resource="vips", address="203.0.113.2",
                          pacemaker_nodes=[holder] if holder else [], here=node == holder)],
        conntrackd=m.ConntrackdStatus(configured=True, answering=True, stats=stats),
        conntrack=m.ConntrackTable(entries=entries, max=262144),
        dns=m.DnsStatus(listen="10.20.0.5", answering=True,
                        upstreams=[m.DnsUpstream(address="192.0.2.53", reachable=True)]),
        ntp=m.NtpStatus(answering=True, tracking=m.ChronyTracking(
            ref_id="C0000235", ref_address="192.0.2.123", stratum=3, ref_time=0.0,
            system_time_offset=0.0002, last_offset=0.0, rms_offset=0.0, frequency_ppm=0.0,
            residual_freq_ppm=0.0, skew_ppm=0.0, root_delay=0.0, root_dispersion=0.0,
            update_interval=64.0, leap_status="Normal"), sources=[m.ChronySource(
                mode="^", state="*", address="192.0.2.123", stratum=2, poll=6, reach=255,
                last_rx=10, offset=0.0, measured_offset=0.0, error=0.0)]),
        collected_at=1_700_000_000.0,
    )
    out = st.to_dict()
    out["degraded"] = sync_errors > 0
    out["reasons"] = [f"conntrackd: {sync_errors} sync errors"] if sync_errors else []
    return out


@pytest.fixture
def fake_status(tmp_path) -> FakeStatusCommand:
    return FakeStatusCommand(tmp_path)
