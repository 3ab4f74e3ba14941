"""Stop and start the upstream's DNS and NTP servers (node `up`) of a running lab (effects).

`envrouter.lab.upstream.start_upstream` starts them when the node boots; this module lets a
test take them down ("the internet's DNS and NTP are gone") and bring them back, without
touching the HTTP echo server. A server is stopped by the PID in its own pid file (a PID of
the node's PID namespace), only after ``/proc/<pid>/comm`` inside the node shows the expected
program, and with SIGTERM inside the node (``kill`` run through the node's namespaces).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
from collections.abc import Iterator, Sequence

from envrouter.errors import InfraError
from envrouter.lab.nodes import Lab
from envrouter.lab.topology import chrony_upstream_conf, dnsmasq_upstream_argv
from envrouter.lab.upstream import DNSMASQ_EXTRA_ENV
from envrouter.lab.waiting import wait_for

NODE = "up"
DNS_PID = "/run/dnsmasq-up.pid"  # paths inside the node, as start_upstream uses them
DNS_LOG = "/var/log/dnsmasq-up.log"
NTP_RUN_DIR = "/run/chrony-up"
NTP_PID = f"{NTP_RUN_DIR}/chronyd.pid"
STOP_TIMEOUT = 15.0
START_TIMEOUT = 20.0


def _node_path(lab: Lab, path: str) -> str:
    """A path of the node's own mount namespace, seen from the machine (via its anchor)."""
    return f"/proc/{lab.anchor_pid(NODE)}/root{path}"


def _read_pid(lab: Lab, pid_file: str) -> int | None:
    try:
        with open(_node_path(lab, pid_file)) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _running(lab: Lab, pid: int, comm: str) -> bool:
    """`pid` (of the node's PID namespace) is a live `comm` process."""
    try:
        with open(_node_path(lab, f"/proc/{pid}/stat")) as f:
            stat = f.read()
    except OSError:
        return False
    name = stat[stat.find("(") + 1:stat.rfind(")")]
    state = stat.rsplit(")", 1)[1].split()[0]
    return name == comm and state != "Z"


def server_pid(lab: Lab, service: str) -> int | None:
    """PID (in the node) of the running upstream `dns` or `ntp` server, or None."""
    pid_file, comm = (DNS_PID, "dnsmasq") if service == "dns" else (NTP_PID, "chronyd")
    pid = _read_pid(lab, pid_file)
    return pid if pid is not None and _running(lab, pid, comm) else None


def server_cmdline(lab: Lab, pid: int) -> str:
    """The command line of `pid` (in the node), "" if gone."""
    try:
        with open(_node_path(lab, f"/proc/{pid}/cmdline"), "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _stop(lab: Lab, service: str) -> None:
    comm = "dnsmasq" if service == "dns" else "chronyd"
    pid = server_pid(lab, service)
    if pid is None:
        return
    lab.exec_in(NODE, ["kill", "-TERM", str(pid)], check=False)
    wait_for(f"upstream {comm} (pid {pid} in {NODE}) to exit",
             lambda: not _running(lab, pid, comm), timeout=STOP_TIMEOUT, interval=0.1)


def stop_dns(lab: Lab) -> None:
    _stop(lab, "dns")


def stop_ntp(lab: Lab) -> None:
    _stop(lab, "ntp")


def _probe_ok(lab: Lab, target: str) -> bool:
    res = lab.exec_in(NODE, [sys.executable, "-m", "envrouter.lab.probe", "--timeout", "1",
                             "--tries", "1", "--name", f"ns.{lab.plan.zone}", target],
                      check=False, timeout=30)
    try:
        return bool(json.loads(res.stdout)[target]["ok"])
    except (ValueError, KeyError):
        return False


def start_dns(lab: Lab, extra_args: Sequence[str] = ()) -> None:
    """The upstream's authoritative dnsmasq, as `start_upstream` runs it (plus `extra_args`,
    e.g. ``--auth-ttl=2``); returns once it answers."""
    if server_pid(lab, "dns") is not None:
        raise InfraError("the upstream DNS server is already running")
    argv = dnsmasq_upstream_argv(lab.plan, DNS_PID, DNS_LOG)
    argv += shlex.split(os.environ.get(DNSMASQ_EXTRA_ENV, ""))
    argv += list(extra_args)
    proc = lab.spawn_in(NODE, "dnsmasq", argv)
    wait_for("upstream DNS answering", lambda: _probe_ok(lab, f"dns:{lab.plan.upstream_dns}"),
             timeout=START_TIMEOUT, proc=proc,
             log=os.path.join(lab.plan.node_dir(NODE), "dnsmasq.out"))


def start_ntp(lab: Lab) -> None:
    """The upstream's chronyd NTP server (local stratum 3); returns once it answers."""
    if server_pid(lab, "ntp") is not None:
        raise InfraError("the upstream NTP server is already running")
    ndir = lab.plan.node_dir(NODE)
    lab.exec_in(NODE, ["install", "-d", "-m", "750", "-o", "_chrony", "-g", "_chrony",
                       NTP_RUN_DIR])
    conf = os.path.join(ndir, "chrony-up.conf")
    with open(conf, "w") as f:
        f.write(chrony_upstream_conf(lab.plan, NTP_RUN_DIR))
    proc = lab.spawn_in(NODE, "chronyd", ["chronyd", "-x", "-d", "-f", conf])
    wait_for("upstream NTP answering", lambda: _probe_ok(lab, f"ntp:{lab.plan.upstream_ntp}"),
             timeout=START_TIMEOUT, proc=proc, log=os.path.join(ndir, "chronyd.out"))


@contextlib.contextmanager
def upstream_down(lab: Lab, *, dns: bool = True, ntp: bool = True) -> Iterator[None]:
    """Stop the upstream DNS and/or NTP server for the block; started again (plainly, with
    the lab's own arguments) afterwards, also when the block fails."""
    try:
        if dns:
            stop_dns(lab)
        if ntp:
            stop_ntp(lab)
        yield
    finally:
        if dns and server_pid(lab, "dns") is None:
            start_dns(lab)
        if ntp and server_pid(lab, "ntp") is None:
            start_ntp(lab)


def restart_dns(lab: Lab, extra_args: Sequence[str] = ()) -> None:
    stop_dns(lab)
    start_dns(lab, extra_args)
