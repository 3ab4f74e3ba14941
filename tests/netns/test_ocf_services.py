"""The dns, ntp and conntrackd OCF agents and their daemons, for real, in test namespaces.

Topology (all namespaces prefixed ert-<random>-): `vr` plays the vrouter namespace with
vr-mgmt (management side) and vr-pub (public side); `cl` is a management client on vr-mgmt's
veth peer; `up` is the upstream on vr-pub's peer, with an authoritative dnsmasq.
Every agent passes ocf-tester; the daemons serve, refuse the public side, answer from a stale
cache with the upstream down, and a kill -9 makes monitor return 7.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cleanup import remove_namespaces

from agent_documents import services_document
from envrouter.services import conntrackd, dns, ntp
from envrouter.services.process import pid_running, read_pid
from envrouter.waiting import wait_until
from monitor_imports import heavy_in, run_monitor

pytestmark = [pytest.mark.root, pytest.mark.timeout(240)]

VR_MGMT, VR_PUB, CL, UP = "10.20.0.101", "10.30.0.101", "10.20.0.50", "10.30.0.1"
NAME = "test.example.lab"
ANSWER = "203.0.113.7"


def _ns_exec(ns: str, *argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                          **kw)


def _veth(ns_a: str, name_a: str, addr_a: str, ns_b: str, name_b: str, addr_b: str) -> None:
    from pyroute2 import NetNS

    with NetNS(ns_a) as a:
        a.link("add", ifname=name_a, kind="veth", peer={"ifname": name_b, "net_ns_fd": ns_b})
        idx = a.link_lookup(ifname=name_a)[0]
        a.addr("add", index=idx, address=addr_a, prefixlen=24)
        a.link("set", index=idx, state="up")
    with NetNS(ns_b) as b:
        idx = b.link_lookup(ifname=name_b)[0]
        b.addr("add", index=idx, address=addr_b, prefixlen=24)
        b.link("set", index=idx, state="up")


@pytest.fixture(scope="module")
def lab():
    from pyroute2 import NetNS, netns

    prefix = f"ert-{secrets.token_hex(3)}"
    names = {k: f"{prefix}-{k}" for k in ("vr", "cl", "up")}
    run_root = Path(f"/run/{prefix}")
    pids: list[int] = []
    try:
        for ns in names.values():
            netns.create(ns)
            with NetNS(ns) as n:
                n.link("set", index=n.link_lookup(ifname="lo")[0], state="up")
        _veth(names["vr"], "vr-mgmt", VR_MGMT, names["cl"], "eth0", CL)
        _veth(names["vr"], "vr-pub", VR_PUB, names["up"], "eth0", UP)
        run_root.mkdir(mode=0o755)
        os.chmod(run_root, 0o755)
        doc_path = run_root / "document.json"
        doc_path.write_text(services_document(names["vr"]).model_dump_json())
        from envrouter.ha.install import install_agents

        install_agents(str(run_root / "ocf"))
        yield {"ns": names, "root": run_root, "doc": doc_path, "pids": pids,
               "params": {"document": str(doc_path), "run_root": str(run_root / "run"),
                          "log_root": str(run_root / "log")}}
    finally:
        doc = services_document(names["vr"])
        for mod in (dns, ntp, conntrackd):
            try:
                mod.daemon(doc.vrouter, run_root=str(run_root / "run"),
                           log_root=str(run_root / "log")).stop()
            except Exception:  # noqa: BLE001 - best effort; namespaces go next
                pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        remove_namespaces(names.values())
        shutil.rmtree(run_root, ignore_errors=True)


def _agent(lab, name: str) -> str:
    return str(lab["root"] / "ocf" / "resource.d" / "envrouter" / name)


def _ocf(lab, name: str, action: str, **extra: str) -> int:
    env = {**os.environ, "OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": name,
           **{f"OCF_RESKEY_{k}": v for k, v in {**lab["params"], **extra}.items()}}
    env.pop("OCF_RESOURCE_INSTANCE")  # outside a cluster: no promotion score to set
    return subprocess.run([_agent(lab, name), action], env=env, capture_output=True,
                          timeout=60).returncode


def _ocf_tester(lab, name: str, params: dict[str, str] | None = None) -> None:
    argv = ["ocf-tester", "-n", f"t-{name}"]
    for k, v in (lab["params"] if params is None else params).items():
        argv += ["-o", f"{k}={v}"]
    proc = subprocess.run([*argv, _agent(lab, name)], capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "passed all tests" in proc.stdout


def _kill9_then_monitor_7(lab, name: str, comm: str, service: str) -> None:
    assert _ocf(lab, name, "start") == 0
    assert _ocf(lab, name, "monitor") in (0, 8)
    pid_file = lab["root"] / "run" / lab["ns"]["vr"] / service / "daemon.pid"
    pid = read_pid(pid_file)
    assert pid is not None and pid_running(pid, comm)
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not pid_running(pid, comm), 10)
    assert _ocf(lab, name, "monitor") == 7
    assert _ocf(lab, name, "start") == 0  # a start after the crash works (stale files removed)
    assert _ocf(lab, name, "monitor") in (0, 8)
    assert _ocf(lab, name, "stop") == 0
    assert _ocf(lab, name, "monitor") == 7


@pytest.mark.parametrize("name", ["dns", "ntp", "conntrackd"])
def test_agent_passes_ocf_tester(lab, name):
    _ocf_tester(lab, name)


@pytest.mark.parametrize(("name", "comm", "service"), [
    ("dns", "dnsmasq", "dnsmasq"), ("ntp", "chronyd", "chrony"),
    ("conntrackd", "conntrackd", "conntrackd")])
def test_kill_9_then_monitor_returns_7(lab, name, comm, service):
    _kill9_then_monitor_7(lab, name, comm, service)


def _dig(ns: str, server: str) -> subprocess.CompletedProcess:
    return _ns_exec(ns, "dig", "+short", "+time=1", "+tries=1", f"@{server}", NAME, "A",
                    timeout=15)


def test_dns_forwards_serves_stale_and_never_answers_on_the_public_side(lab):
    ns = lab["ns"]
    log = lab["root"] / "up-dnsmasq.log"
    upstream = subprocess.Popen(
        ["ip", "netns", "exec", ns["up"], "dnsmasq", "-k", "-C", "/dev/null", "--no-resolv",
         "--no-hosts", "--bind-interfaces", f"--listen-address={UP}", "--pid-file=",
         f"--host-record={NAME},{ANSWER}", "--auth-server=ns.example.lab,eth0",
         "--auth-zone=example.lab", "--auth-ttl=1", "--local-ttl=1",
         f"--log-facility={log}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lab["pids"].append(upstream.pid)
    try:
        assert _ocf(lab, "dns", "start") == 0
        assert wait_until(lambda: _dig(ns["cl"], VR_MGMT).stdout.strip() == ANSWER, 20)
        # the public side answers nothing (no socket there: refused or timed out)
        public = _dig(ns["up"], VR_PUB)
        assert ANSWER not in public.stdout and public.returncode != 0
        # every upstream down, the TTL (1 s) expired: still answered, from the stale cache
        upstream.kill()
        upstream.wait(10)
        # the condition here is the clock itself: the 1 s TTL must have run out
        expired = time.monotonic() + 2.5
        wait_until(lambda: time.monotonic() >= expired, 5)
        assert _dig(ns["cl"], VR_MGMT).stdout.strip() == ANSWER
    finally:
        upstream.kill()
        upstream.wait(10)
        assert _ocf(lab, "dns", "stop") == 0


def test_ntp_serves_time_to_the_management_side_only(lab):
    ns = lab["ns"]
    assert _ocf(lab, "ntp", "start") == 0
    try:
        ok = _ns_exec(ns["cl"], "chronyd", "-Q", "-t", "15",
                      f"server {VR_MGMT} iburst maxsamples 1", timeout=30)
        assert ok.returncode == 0, ok.stderr
        bad = _ns_exec(ns["up"], "chronyd", "-Q", "-t", "4",
                       f"server {VR_PUB} iburst maxsamples 1", timeout=30)
        assert bad.returncode != 0
    finally:
        assert _ocf(lab, "ntp", "stop") == 0


def test_conntrackd_promote_commits_and_demote(lab):
    ns = lab["ns"]
    params = lab["params"]
    assert _ocf(lab, "conntrackd", "start") == 0
    try:
        assert _ocf(lab, "conntrackd", "monitor") == 0
        assert _ocf(lab, "conntrackd", "promote") == 0
        assert _ocf(lab, "conntrackd", "monitor") == 8
        # the promoted instance's recurring monitor (every 5 s): a live daemon answering on
        # its socket, nothing heavy imported
        env = {**os.environ, "OCF_RESKEY_CRM_meta_interval": "5000",
               **{f"OCF_RESKEY_{k}": v for k, v in params.items()}}
        rc, modules = run_monitor("conntrackd", env, importtime=True)
        assert rc == 8 and heavy_in(modules) == []
        assert _ocf(lab, "conntrackd", "demote") == 0
        assert _ocf(lab, "conntrackd", "monitor") == 0
        # the unpromoted one's (every 10 s), the Python run that records its verdict: the
        # daemon's socket and `conntrackd -s`'s first lines, nothing heavy either
        from envrouter.ha.ocf_memo import INPUTS_ENV, verdict_path

        rc, modules = run_monitor("conntrackd", {**env, "OCF_RESKEY_CRM_meta_interval": "10000",
                                                 INPUTS_ENV: "the-launchers-stamp"},
                                  importtime=True)
        assert rc == 0 and heavy_in(modules) == []
        recorded = Path(verdict_path(params["run_root"], "conntrackd")).read_text()
        assert recorded.startswith("0\nthe-launchers-stamp\n") and "\nsays 2 " in recorded
        conf = Path(params["run_root"]) / ns["vr"] / "conntrackd" / "conntrackd.conf"
        assert "IPv4_Destination_Address 10.20.0.102" in conf.read_text()
    finally:
        assert _ocf(lab, "conntrackd", "stop") == 0


def _public_route(ns: str, gateway: str, port: str, source: str) -> bool:
    """The VIP agent's default route (metric 0, proto 78, source the VIP), read by pyroute2."""
    from pyroute2 import IPRoute

    from envrouter.agent.netlink import RTPROT_ENVROUTER_VIP

    with IPRoute(netns=ns, flags=0) as ip:
        idx = ip.link_lookup(ifname=port)[0]
        return any(
            m["dst_len"] == 0 and m["proto"] == RTPROT_ENVROUTER_VIP
            and m.get_attr("RTA_GATEWAY") == gateway and m.get_attr("RTA_OIF") == idx
            and m.get_attr("RTA_PREFSRC") == source and (m.get_attr("RTA_PRIORITY") or 0) == 0
            for m in ip.get_routes(family=2, table=254))


def test_vip_agent_passes_ocf_tester_and_sets_the_public_route(lab):
    from envrouter.agent.vip import vip_present

    ns = lab["ns"]["vr"]
    params = {"namespace": ns, "port": "vr-pub", "ip": "10.30.0.2", "cidr_netmask": "24",
              "gateway": UP, "arp_count": "1"}
    _ocf_tester(lab, "vip", params)
    assert not vip_present(ns, "vr-pub", "10.30.0.2")  # ocf-tester ends with a stop
    env = {**os.environ, **{f"OCF_RESKEY_{k}": v for k, v in params.items()}}
    run = [_agent(lab, "vip")]
    assert subprocess.run([*run, "start"], env=env, timeout=30).returncode == 0
    try:
        assert vip_present(ns, "vr-pub", "10.30.0.2")
        assert _public_route(ns, UP, "vr-pub", "10.30.0.2")
        assert subprocess.run([*run, "start"], env=env, timeout=30).returncode == 0  # again
        assert vip_present(ns, "vr-pub", "10.30.0.2")
        subprocess.run(["ip", "-n", ns, "route", "del", "default", "via", UP, "dev", "vr-pub",
                        "metric", "0", "proto", "78"], check=True)
        assert not _public_route(ns, UP, "vr-pub", "10.30.0.2")
        assert subprocess.run([*run, "monitor"], env=env, timeout=30).returncode == 0
        assert not _public_route(ns, UP, "vr-pub", "10.30.0.2")  # a probe only reports
        recurring = {**env, "OCF_RESKEY_CRM_meta_interval": "2000"}
        assert subprocess.run([*run, "monitor"], env=recurring, timeout=30).returncode == 0
        assert _public_route(ns, UP, "vr-pub", "10.30.0.2")  # re-asserted
    finally:
        assert subprocess.run([*run, "stop"], env=env, timeout=30).returncode == 0
    assert not vip_present(ns, "vr-pub", "10.30.0.2")
    assert not _public_route(ns, UP, "vr-pub", "10.30.0.2")
    assert subprocess.run([*run, "stop"], env=env, timeout=30).returncode == 0  # again
    assert subprocess.run([*run, "monitor"], env=env, timeout=30).returncode == 7
    assert subprocess.run([*run, "monitor"], env=recurring, timeout=30).returncode == 7
    assert not _public_route(ns, UP, "vr-pub", "10.30.0.2")  # nothing re-added without it


def test_monitor_restarts_the_daemon_when_a_new_document_changes_its_config(lab):
    recurring = {"CRM_meta_interval": "10000"}
    pid_file = lab["root"] / "run" / lab["ns"]["vr"] / "dnsmasq" / "daemon.pid"
    conf = pid_file.with_name("dnsmasq.conf")
    original = lab["doc"].read_text()
    assert _ocf(lab, "dns", "start") == 0
    try:
        before = read_pid(pid_file)
        assert _ocf(lab, "dns", "monitor", **recurring) == 0
        assert read_pid(pid_file) == before  # nothing changed: nothing restarted
        env = {**os.environ, "OCF_RESKEY_CRM_meta_interval": "10000",
               **{f"OCF_RESKEY_{k}": v for k, v in lab["params"].items()}}
        rc, modules = run_monitor("dns", env, importtime=True)
        assert rc == 0 and heavy_in(modules) == []  # running, unchanged: nothing heavy
        changed = json.loads(original)
        changed["vrouter"]["upstream_dns"] = [UP, "192.0.2.53"]
        lab["doc"].write_text(json.dumps(changed))
        assert _ocf(lab, "dns", "monitor", **recurring) == 0
        after = read_pid(pid_file)
        assert after != before and pid_running(after, "dnsmasq")
        assert "server=192.0.2.53" in conf.read_text()
    finally:
        lab["doc"].write_text(original)
        assert _ocf(lab, "dns", "stop") == 0


def _process_group(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group `pgid`."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # state, ppid, pgrp
            out.append(int(d))
    return out


def test_uplink_agent_passes_ocf_tester_and_follows_the_carrier(lab, tmp_path):
    """Outside a cluster: attrd_updater is a stand-in that records its calls (the real one, in
    tests/netns/test_ocf_cluster.py); the bridge and its uplink port are in the client's
    namespace, where the agent runs (`ip netns exec` gives it that namespace's /sys)."""
    ns = lab["ns"]["cl"]
    for argv in (["link", "add", "br-up", "type", "bridge"],
                 ["link", "add", "up0", "type", "veth", "peer", "name", "up1"],
                 ["link", "set", "up0", "master", "br-up"],
                 *(["link", "set", dev, "up"] for dev in ("br-up", "up0", "up1"))):
        subprocess.run(["ip", "-n", ns, *argv], check=True)
    calls = tmp_path / "calls"
    fake = tmp_path / "bin" / "attrd_updater"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {calls}\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}
    params = {"bridge": "br-up", "run_root": str(lab["root"] / "run")}
    argv = ["ip", "netns", "exec", ns, "ocf-tester", "-n", "t-uplink"]
    for k, v in params.items():
        argv += ["-o", f"{k}={v}"]
    proc = subprocess.run([*argv, _agent(lab, "uplink")], capture_output=True, text=True,
                          timeout=180, env=env)
    assert proc.returncode == 0 and "passed all tests" in proc.stdout, proc.stdout + proc.stderr

    run = ["ip", "netns", "exec", ns, _agent(lab, "uplink")]
    agent_env = {**env, **{f"OCF_RESKEY_{k}": v for k, v in params.items()}}
    calls.write_text("")
    assert subprocess.run([*run, "start"], env=agent_env, timeout=30).returncode == 0
    try:
        assert wait_until(lambda: "-n envrouter_uplink -U 1 -d 0" in calls.read_text(), 10)
        subprocess.run(["ip", "-n", ns, "link", "set", "up1", "down"], check=True)  # carrier
        assert wait_until(lambda: "-n envrouter_uplink -U 0 -d 0" in calls.read_text(), 10)
        recurring = {**agent_env, "OCF_RESKEY_CRM_meta_interval": "10000"}
        assert subprocess.run([*run, "monitor"], env=recurring, timeout=30).returncode == 0
        watcher = int((lab["root"] / "run" / "uplink" / "envrouter_uplink.pid").read_text())
        assert _process_group(watcher), "the watcher's process group (its loop, ip monitor)"
    finally:
        assert subprocess.run([*run, "stop"], env=agent_env, timeout=30).returncode == 0
    # stop ends the watcher and its ip monitor (it once left both running: dash's kill)
    assert wait_until(lambda: not _process_group(watcher), 10), _process_group(watcher)
    assert "-n envrouter_uplink -D" in calls.read_text()
    assert subprocess.run([*run, "monitor"], env=agent_env, timeout=30).returncode == 7


# -- the launcher's verdict (docs/ha.md, "Agent cost") ---------------------------------------
NO_PYTHON = 99  # what the copy of an agent below answers when it would have started Python


def _without_python(lab, name: str) -> str:
    """A copy of the installed agent that exits 99 where it would start the interpreter: what it
    answers without 99 its launcher answered from the verdict alone."""
    from envrouter.ha.install import agent_text

    head, _, _ = agent_text(name).rpartition("exec ")
    path = lab["root"] / "ocf" / f"{name}-no-python"
    path.write_text(f"{head}exit {NO_PYTHON}\n")
    path.chmod(0o755)
    return str(path)


def _run(agent: str, lab, action: str, **extra: str) -> int:
    env = {"PATH": os.environ["PATH"],
           **{f"OCF_RESKEY_{k}": v for k, v in {**lab["params"], **extra}.items()}}
    return subprocess.run([agent, action], env=env, capture_output=True,
                          timeout=60).returncode


@pytest.mark.parametrize(("name", "comm", "service"), [
    ("dns", "dnsmasq", "dnsmasq"), ("ntp", "chronyd", "chrony")])
def test_a_recurring_monitor_is_answered_without_python_while_nothing_changed(
        lab, name, comm, service):
    recurring = {"CRM_meta_interval": "10000"}
    fast = _without_python(lab, name)
    original = lab["doc"].read_text()
    assert _ocf(lab, name, "start") == 0
    try:
        assert _run(fast, lab, "monitor", **recurring) == NO_PYTHON  # nothing recorded yet
        assert _ocf(lab, name, "monitor", **recurring) == 0  # Python records the verdict
        assert _run(fast, lab, "monitor", **recurring) == 0
        assert _run(fast, lab, "monitor") == NO_PYTHON  # a probe always asks Python
        # another document (same content, another inode): Python decides again, then records
        lab["doc"].write_text(original)
        assert _run(fast, lab, "monitor", **recurring) == NO_PYTHON
        assert _ocf(lab, name, "monitor", **recurring) == 0
        assert _run(fast, lab, "monitor", **recurring) == 0
        # the daemon dies: the recorded fact (its PID) no longer holds
        pid = read_pid(lab["root"] / "run" / lab["ns"]["vr"] / service / "daemon.pid")
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: not pid_running(pid, comm), 10)
        assert _run(fast, lab, "monitor", **recurring) == NO_PYTHON
        assert _ocf(lab, name, "monitor", **recurring) == 7
    finally:
        lab["doc"].write_text(original)
        assert _ocf(lab, name, "stop") == 0
    assert _run(fast, lab, "monitor", **recurring) == NO_PYTHON


def test_the_conntrackd_monitors_are_answered_without_python_after_its_resync(lab):
    from envrouter.ha import ocf_conntrackd

    promoted = {"CRM_meta_interval": "5000"}
    fast = _without_python(lab, "conntrackd")
    marker = Path(lab["params"]["run_root"]) / lab["ns"]["vr"] / "conntrackd" / "promoted"
    assert _ocf(lab, "conntrackd", "start") == 0
    try:
        unpromoted = {"CRM_meta_interval": "10000"}
        assert _ocf(lab, "conntrackd", "monitor", **unpromoted) == 0
        # unpromoted: the answer rests on the daemon, its socket, no marker and an empty
        # internal cache (the first lines of `conntrackd -s`), all checked by the launcher
        assert _run(fast, lab, "monitor", **unpromoted) == 0
        assert _ocf(lab, "conntrackd", "promote") == 0
        assert _run(fast, lab, "monitor", **promoted) == NO_PYTHON  # the marker appeared
        assert wait_until(lambda: _ocf(lab, "conntrackd", "monitor", **promoted) == 8
                          and ocf_conntrackd.RESYNCED in marker.read_text(),
                          ocf_conntrackd.RESYNC_AFTER + 30, 0.5)
        assert _ocf(lab, "conntrackd", "monitor", **promoted) == 8
        assert _run(fast, lab, "monitor", **promoted) == 8
        assert _ocf(lab, "conntrackd", "demote") == 0  # the marker goes: Python decides
        assert _run(fast, lab, "monitor", **promoted) == NO_PYTHON
        assert _ocf(lab, "conntrackd", "monitor", **unpromoted) == 0
        assert _run(fast, lab, "monitor", **unpromoted) == 0
        pid = read_pid(Path(lab["params"]["run_root"]) / lab["ns"]["vr"] / "conntrackd"
                       / "daemon.pid")
        os.kill(pid, signal.SIGKILL)  # the daemon dies: no answer on its socket either
        assert wait_until(lambda: not pid_running(pid, "conntrackd"), 10)
        assert _run(fast, lab, "monitor", **unpromoted) == NO_PYTHON
    finally:
        assert _ocf(lab, "conntrackd", "stop") == 0
