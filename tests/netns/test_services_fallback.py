"""DNS and NTP of a controller that does not hold the VIPs still reach upstream: through the
agent's host link fallback route and host NAT (World from agent_world: switch, upstream with
its own DNS and NTP servers, a controller node, a compute node)."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from agent_world import SERVER, controller_document, sh

from envrouter.agent import converge
from envrouter.services import dns, ntp
from envrouter.waiting import wait_until

pytestmark = [pytest.mark.root, pytest.mark.timeout(180)]

NAME = "mirror.example.lab"
ANSWER = "203.0.113.9"
NS_ADDR = "10.20.0.101"  # controller_document's namespace management address (index 1)


@pytest.fixture
def run_root():
    # chronyd drops to _chrony: its directories must be reachable, unlike pytest's tmp_path
    root = Path(f"/run/ert-{secrets.token_hex(3)}")
    root.mkdir(mode=0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_non_holder_resolves_and_syncs_through_the_host_link(world, run_root):
    world.build(1)
    ctl, cmp, up = world.ns("ctl1"), world.ns("cmp"), world.ns("up")
    doc = controller_document(world.vr)
    (world.tmp / "root").mkdir()
    converge(doc, root=str(world.tmp / "root"), scope="vrouter", host_netns=ctl)
    # upstream DNS and NTP on the "internet" address
    world.start(up, ["dnsmasq", "-k", "-C", "/dev/null", "--no-resolv", "--no-hosts",
                     "--bind-interfaces", f"--listen-address={SERVER}", "--pid-file=",
                     f"--host-record={NAME},{ANSWER}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    up_conf = run_root / "up-chrony.conf"
    up_conf.write_text(f"local stratum 3\nallow all\nbindaddress {SERVER}\ncmdport 0\n"
                       f"bindcmdaddress /\npidfile {run_root}/up-chrony.pid\n")
    world.start(up, ["chronyd", "-n", "-x", "-f", str(up_conf)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    daemons = [dns.daemon(doc.vrouter, run_root=str(run_root / "run"),
                          log_root=str(run_root / "log")),
               ntp.daemon(doc.vrouter, run_root=str(run_root / "run"),
                          log_root=str(run_root / "log"))]
    try:
        for d in daemons:
            d.start()
        # no VIP anywhere: the compute node asks the namespace's own management address
        def resolved() -> bool:
            out = sh("ip", "netns", "exec", cmp, "dig", "+short", "+time=1", "+tries=1",
                     f"@{NS_ADDR}", NAME, check=False)
            return out.stdout.strip() == ANSWER

        assert wait_until(resolved, 20)

        sock = daemons[1].paths.file(ntp.SOCKET)

        def upstream_reached() -> bool:
            out = sh("chronyc", "-h", str(sock), "-n", "-c", "sources", check=False)
            # csv: mode,state,address,stratum,poll,reach,...: reach != 0 -> answered
            return any(f[2] == SERVER and f[5] != "0"
                       for f in (line.split(",") for line in out.stdout.splitlines())
                       if len(f) > 5)

        assert wait_until(upstream_reached, 40, interval=0.5)
    finally:
        for d in daemons:
            d.stop()
