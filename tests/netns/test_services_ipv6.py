"""DNS and NTP on IPv6, for real, in test namespaces: with the vrouter serving IPv6, dnsmasq
answers (A and AAAA) on the vrouter6 VIP, forwarding to an IPv6 upstream, chronyd serves time
to the IPv6 management prefix, and neither answers on the public IPv6 VIP.

Topology (namespaces ert-<random>-): `vr` plays the vrouter namespace (vr-mgmt, vr-pub), `cl`
a management client, `up` the upstream with an authoritative dnsmasq on its IPv6 address. The
VIPs are added by the test (the VIP agent's own test: test_ocf_vip_ipv6.py).
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from cleanup import remove_namespaces, stop_daemons

from agent_documents import MGMT6_VIP, PUB6_VIP, dual_stack_controller_document
from envrouter.document import parse_document
from envrouter.services import dns, ntp
from envrouter.waiting import wait_until

pytestmark = [pytest.mark.root, pytest.mark.timeout(180)]

CL6, UP6 = "fd00:20::50", "2001:db8:30::1"
NAME = "v6.example.lab"
ANSWER_A, ANSWER_AAAA = "203.0.113.9", "2001:db8:99::9"


def _sh(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout)


def _in(ns: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return _sh("ip", "netns", "exec", ns, *argv, check=False, timeout=timeout)


@pytest.fixture
def lab():
    prefix = f"ert-{secrets.token_hex(3)}"
    names = {k: f"{prefix}-{k}" for k in ("vr", "cl", "up")}
    run_root = Path(f"/run/{prefix}")
    daemons = []
    procs: list[subprocess.Popen] = []
    try:
        for ns in names.values():
            _sh("ip", "netns", "add", ns)
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
        for vr_dev, other, vr_addr, other_addr in (
            ("vr-mgmt", names["cl"], MGMT6_VIP, CL6),
            ("vr-pub", names["up"], PUB6_VIP, UP6),
        ):
            _sh("ip", "-n", names["vr"], "link", "add", vr_dev, "type", "veth", "peer", "name",
                "eth0", "netns", other)
            _sh("ip", "-n", names["vr"], "addr", "add", f"{vr_addr}/64", "dev", vr_dev, "nodad")
            _sh("ip", "-n", other, "addr", "add", f"{other_addr}/64", "dev", "eth0", "nodad")
            _sh("ip", "-n", names["vr"], "link", "set", vr_dev, "up")
            _sh("ip", "-n", other, "link", "set", "eth0", "up")
        raw = json.loads(dual_stack_controller_document(names["vr"]).model_dump_json())
        raw["vrouter"]["upstream_dns"] = [UP6]
        raw["vrouter"]["upstream_ntp"] = [UP6]
        vr = parse_document(raw).vrouter
        run_root.mkdir(mode=0o755)
        kw = {"run_root": str(run_root / "run"), "log_root": str(run_root / "log")}
        daemons = [dns.daemon(vr, **kw), ntp.daemon(vr, **kw)]
        yield {"ns": names, "root": run_root, "daemons": daemons, "procs": procs}
    finally:
        stop_daemons(daemons)
        for p in procs:
            p.kill()
            p.wait(10)
        remove_namespaces(names.values())
        shutil.rmtree(run_root, ignore_errors=True)


def _dig(ns: str, server: str, rtype: str) -> subprocess.CompletedProcess:
    return _in(ns, "dig", "+short", "+time=1", "+tries=1", f"@{server}", NAME, rtype)


def test_dns_and_ntp_on_the_ipv6_management_vip_only(lab):
    ns = lab["ns"]
    upstream = subprocess.Popen(
        ["ip", "netns", "exec", ns["up"], "dnsmasq", "-k", "-C", "/dev/null", "--no-resolv",
         "--no-hosts", "--bind-interfaces", f"--listen-address={UP6}", "--pid-file=",
         f"--host-record={NAME},{ANSWER_A},{ANSWER_AAAA}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lab["procs"].append(upstream)
    dnsd, ntpd = lab["daemons"]
    assert dnsd.start() and ntpd.start()
    # forwarded over IPv6 to the IPv6 upstream, answered on the vrouter6 VIP, both families
    assert wait_until(lambda: _dig(ns["cl"], MGMT6_VIP, "AAAA").stdout.strip() == ANSWER_AAAA,
                      20)
    assert _dig(ns["cl"], MGMT6_VIP, "A").stdout.strip() == ANSWER_A
    # the public IPv6 VIP answers nothing: no open resolver
    public = _dig(ns["up"], PUB6_VIP, "AAAA")
    assert ANSWER_AAAA not in public.stdout and public.returncode != 0
    # time for the IPv6 management prefix on the vrouter6 VIP, none on the public side
    ok = _in(ns["cl"], "chronyd", "-Q", "-t", "15", f"server {MGMT6_VIP} iburst maxsamples 1",
             timeout=30)
    assert ok.returncode == 0, ok.stderr
    bad = _in(ns["up"], "chronyd", "-Q", "-t", "4", f"server {PUB6_VIP} iburst maxsamples 1",
              timeout=30)
    assert bad.returncode != 0
