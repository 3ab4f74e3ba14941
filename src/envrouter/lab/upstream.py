"""The upstream ("the internet", node `up`) and the admin gateway (node `master`) (effects)."""

from __future__ import annotations

import os
import shlex
import sys

from envrouter.lab.nodes import Lab
from envrouter.lab.topology import (
    UPSTREAM_HTTP_PORT,
    chrony_upstream_conf,
    dnsmasq_upstream_argv,
    http_url,
    master_nat_ruleset,
)
from envrouter.lab.waiting import wait_for

# Extra dnsmasq options for the upstream DNS server (an operator knob; the tests use it to make
# `lab up` fail for real half-way).
DNSMASQ_EXTRA_ENV = "ENVROUTER_LAB_UPSTREAM_DNSMASQ_ARGS"


def start_upstream(lab: Lab) -> None:
    plan = lab.plan
    ndir = plan.node_dir("up")
    # authoritative DNS for the lab's zone
    argv = dnsmasq_upstream_argv(plan, "/run/dnsmasq-up.pid", "/var/log/dnsmasq-up.log")
    argv += shlex.split(os.environ.get(DNSMASQ_EXTRA_ENV, ""))
    dns = lab.spawn_in("up", "dnsmasq", argv)
    name = f"www.{plan.zone}"

    def dns_answers() -> bool:
        out = lab.exec_in("up", ["dig", "+short", "+time=1", "+tries=1",
                                 f"@{plan.upstream_dns}", name], check=False).stdout
        if plan.upstream_http not in out.split():
            return False
        if not plan.upstream_dns6:
            return True
        out6 = lab.exec_in("up", ["dig", "+short", "+time=1", "+tries=1",
                                  f"@{plan.upstream_dns6}", name, "AAAA"], check=False).stdout
        return plan.upstream_http6 in out6.split()

    wait_for(f"upstream DNS answering {name}", dns_answers, timeout=20, proc=dns,
             log=f"{ndir}/dnsmasq.out")

    # NTP server
    run_dir = "/run/chrony-up"
    lab.exec_in("up", ["install", "-d", "-m", "750", "-o", "_chrony", "-g", "_chrony", run_dir])
    conf = os.path.join(ndir, "chrony-up.conf")
    with open(conf, "w") as f:
        f.write(chrony_upstream_conf(plan, run_dir))
    ntp = lab.spawn_in("up", "chronyd", ["chronyd", "-x", "-d", "-f", conf])
    wait_for("upstream NTP server", lambda: os.path.exists(f"{ndir}/run/chrony-up/chronyd.pid"),
             timeout=20, proc=ntp, log=f"{ndir}/chronyd.out")

    # HTTP echo server, one per family
    for address, suffix in ((plan.upstream_http, ""), (plan.upstream_http6, "6")):
        if not address:
            continue
        http = lab.spawn_in("up", f"echo-http{suffix}", [
            sys.executable, "-m", "envrouter.lab.echo_http", "--bind", address,
            "--port", str(UPSTREAM_HTTP_PORT)])
        url = http_url(address)
        wait_for(f"upstream HTTP echo server {address}",
                 lambda url=url: lab.exec_in("up", ["curl", "-s", "--max-time", "2", url],
                                             check=False).returncode == 0,
                 timeout=20, proc=http, log=f"{ndir}/echo-http{suffix}.out")


def start_master(lab: Lab) -> None:
    """The admin gateway: forwards and SNATs the admin network to upstream ("the old way")."""
    lab.exec_in("master", ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    ruleset = master_nat_ruleset(lab.plan)
    lab.exec_in("master", ["nft", "-c", "-f", "-"], input=ruleset)
    lab.exec_in("master", ["nft", "-f", "-"], input=ruleset)
