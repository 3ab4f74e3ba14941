"""Failover drills in the lab (effects): traffic flows from the compute nodes through the
vrouter's NAT to the upstream while a fault hits the VIP holder; then a report
(`envrouter.lab.drill_report`, pure) and the lab is put back.

- hard-kill: power-off of the holder (its cables down in the switch, then SIGKILL of its anchor,
  i.e. every process of the node, and its netns deleted: links and addresses gone); powered on
  again after the report. VIPs move.
- standby: ``crm_attribute --node H --name standby --update on`` (a graceful move); unstandby
  after. VIPs move.
- partition: the holder's management port set down in the switch namespace: the holder is alone
  without quorum (no-quorum-policy=stop) and must give up the VIPs. VIPs move, one holder.
- daemon-kill: SIGKILL of conntrackd on the holder; Pacemaker restarts it. VIPs stay.
- upstream-link: the holder's public port set down in the switch: ping_upstream moves the VIPs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute

from envrouter.errors import InfraError, ValidationError
from envrouter.lab.cluster import best_view
from envrouter.lab.drill_report import (
    DrillReport,
    FlowResult,
    Proc,
    icmp_result,
    longest_gap,
    parse_ping,
    tcp_result,
    udp_result,
)
from envrouter.lab.nodes import Lab
from envrouter.lab.status import vip_holders
from envrouter.lab.waiting import wait_for

DRILLS = ("hard-kill", "standby", "partition", "daemon-kill", "upstream-link")
EXPECT_MOVE = {"hard-kill": True, "standby": True, "partition": True, "daemon-kill": False,
               "upstream-link": True}
TCP_PORT = 5001
UDP_PORT = 5002
BASELINE = 1.5  # s of traffic before the fault
AFTER = 2.5  # s of traffic once every flow has resumed
RECOVERY_TIMEOUT = 40.0  # s for the VIPs to move and every flow to resume
POLL = 0.05


@dataclass
class DrillOptions:
    tcp_per_node: int = 3
    udp_per_node: int = 2
    restore: bool = True
    # scale (envrouter.lab.scale): idle connections before the fault, with churn and UDP flows
    connections: int = 0
    churn_rate: float | None = None  # new connections a second (default: load_report's)
    udp_flows: int | None = None  # load UDP flows per compute node
    # called with "start" (before the load), "loaded" (every idle connection established) and
    # "checked" (after the check): the bench samples the controllers' conntrackd there
    on_phase: Callable[[str], None] | None = None


class Traffic:
    """The traffic server in `up` and one client per compute node, for one drill."""

    def __init__(self, lab: Lab, directory: str, opts: DrillOptions) -> None:
        self.lab = lab
        self.dir = directory
        self.opts = opts
        self.clients = [n.name for n in lab.plan.computes if lab.node_running(n.name)]
        self.procs: list[subprocess.Popen] = []

    def _py(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "envrouter.lab.traffic", *args]

    def start(self) -> None:
        if not self.clients:
            raise InfraError("the drills need at least one running compute node")
        os.makedirs(self.dir, exist_ok=True)
        server = self.lab.plan.upstream_http
        ports = ["--tcp-port", str(TCP_PORT), "--udp-port", str(UDP_PORT), "--dir", self.dir]
        self.procs.append(self.lab.spawn_in("up", "drill-traffic-server",
                                            self._py("server", "--bind", server, *ports)))
        wait_for("drill traffic server", lambda: os.path.exists(f"{self.dir}/server.ready"),
                 timeout=20, proc=self.procs[0])
        for name in self.clients:
            self.procs.append(self.lab.spawn_in(name, "drill-traffic-client", self._py(
                "client", "--name", name, "--server", server, "--ping", server,
                "--tcp", str(self.opts.tcp_per_node), "--udp", str(self.opts.udp_per_node),
                *ports)))

    def progress(self) -> dict[str, Any]:
        out: dict[str, Any] = {"last_rx": {}, "errors": {}}
        for name in self.clients:
            try:
                with open(f"{self.dir}/{name}.progress") as f:
                    p = json.load(f)
            except (OSError, ValueError):
                continue
            out["last_rx"].update(p["last_rx"])
            out["errors"].update(p["errors"])
        return out

    def flowing(self, since: float) -> bool:
        """Every flow of every client received something after `since`."""
        p = self.progress()
        expected = len(self.clients) * (self.opts.tcp_per_node + self.opts.udp_per_node)
        last = p["last_rx"]
        return len(last) == expected and all(t is not None and t > since for t in last.values())

    def stop(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
        """(server record, client records by node, ping output by node)."""
        files = [f"{self.dir}/{n}.json" for n in self.clients]
        try:
            _touch(f"{self.dir}/stop")  # the clients first: the server's closing is no reset
            wait_for("drill traffic client records",
                     lambda: all(os.path.exists(p) for p in files), timeout=30)
            _touch(f"{self.dir}/stop-server")
            wait_for("drill traffic server records",
                     lambda: os.path.exists(f"{self.dir}/server.json"), timeout=30)
        finally:
            _touch(f"{self.dir}/stop")
            _touch(f"{self.dir}/stop-server")
            for proc in self.procs:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        with open(f"{self.dir}/server.json") as f:
            server = json.load(f)
        clients, pings = {}, {}
        for name in self.clients:
            with open(f"{self.dir}/{name}.json") as f:
                clients[name] = json.load(f)
            with open(f"{self.dir}/{name}.ping", errors="replace") as f:
                pings[name] = f.read()
        return server, clients, pings


# ----------------------------------------------------------------------------- lab helpers


def _touch(path: str) -> None:
    with contextlib.suppress(OSError), open(path, "w") as f:
        f.write("stop\n")


def holders(lab: Lab) -> dict[str, list[str]]:
    vips = (lab.state.get("deployment") or {}).get("vips") or {
        "vrouter": lab.plan.vip_management, "vrouter_pub": lab.plan.vip_public}
    return {name: vip_holders(lab, address) for name, address in vips.items()}


def current_holder(lab: Lab) -> str:
    where = holders(lab)
    nodes = {h for hs in where.values() for h in hs}
    if len(nodes) != 1 or any(len(h) != 1 for h in where.values()):
        raise InfraError(f"the VIPs are not held by exactly one controller: {where}")
    return nodes.pop()


def other_running_controller(lab: Lab, not_this: str) -> str:
    for node in lab.plan.controllers:
        if node.name != not_this and lab.node_running(node.name):
            return node.name
    raise InfraError("no other running controller")


def set_switch_port(lab: Lab, node: str, network: str | None, up: bool) -> None:
    """Link state of the node's veth end(s) in the switch namespace (the cables): one network,
    or every network of the node (None)."""
    ports = [p for p in lab.plan.node(node).ports if network is None or p.network == network]
    with IPRoute(netns=lab.plan.switch_netns) as ipr:
        for port in ports:
            idx = ipr.link_lookup(ifname=port.switch_ifname)
            if not idx:
                raise InfraError(f"no port {port.switch_ifname} in {lab.plan.switch_netns}")
            ipr.link("set", index=idx[0], state="up" if up else "down")


def hard_kill(lab: Lab, node: str) -> None:
    """A power-off: the node's cables first (a dead machine is silent at once), then every
    process (SIGKILL of the anchor) and its network namespace. Killing first would let the
    dying namespace answer packets for a moment: its conntrack table goes before its addresses
    when the kernel dismantles it, and a packet for a flow of the VIP then gets a reset — that
    is an artefact of the lab, not what a crashed router does."""
    set_switch_port(lab, node, None, False)
    lab.power_off(node)


def _pid_ns(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return None


def node_processes(lab: Lab, node: str) -> list[tuple[int, str]]:
    """(pid, comm) of every process in the node's PID namespace (machine PIDs)."""
    ns = _pid_ns(lab.anchor_pid(node))
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _pid_ns(int(entry)) == ns:
            try:
                with open(f"/proc/{entry}/comm") as f:
                    out.append((int(entry), f.read().strip()))
            except OSError:
                continue
    return out


def conntrackd_pids(lab: Lab, node: str) -> list[int]:
    return [pid for pid, comm in node_processes(lab, node) if comm == "conntrackd"]


def set_standby(lab: Lab, node: str, on: bool, via: str) -> None:
    lab.exec_in(via, ["crm_attribute", "--type", "nodes", "--node", node, "--name", "standby",
                      "--update", "on" if on else "off"], timeout=60)


def wait_settled(lab: Lab, timeout: float = 180) -> None:
    """Quorate, each VIP on one controller, and every clone instance running on every running
    controller (a node just back must have its conntrackd before the next drill)."""
    from envrouter.lab.build import wait_converged

    wait_converged(lab, timeout=timeout)
    running = {n.name for n in lab.plan.controllers if lab.node_running(n.name)}

    def clones_everywhere() -> bool:
        view = best_view(lab)
        if view.error or not view.quorate:
            return False
        return all(running <= set(view.resources.get(r, []))
                   for r in ("vrouter", "conntrackd", "dns", "ntp", "ping_upstream"))

    wait_for("every clone instance running on every controller", clones_everywhere,
             timeout=timeout, interval=1.0)
    # and nothing left in flight: a drill that starts while a node just back still writes its
    # attributes (pingd, the promotion score) has its transition aborted and re-planned
    wait_for("every controller reaching the upstream (pingd > 0) and the DC idle",
             lambda: _attributes_ready(lab, running) and _dc_idle(lab), timeout=timeout,
             interval=1.0)


def _crm_xml(lab: Lab, argv: list[str]) -> ET.Element | None:
    via = next((n.name for n in lab.plan.controllers if lab.node_running(n.name)), None)
    if via is None:
        return None
    proc = lab.exec_in(via, argv, check=False, timeout=30)
    try:
        return ET.fromstring(proc.stdout) if proc.returncode == 0 else None
    except ET.ParseError:
        return None


def _attributes_ready(lab: Lab, running: set[str]) -> bool:
    root = _crm_xml(lab, ["crm_mon", "-1", "-A", "--output-as=xml"])
    if root is None:
        return False
    ready = set()
    for node in root.iter("node"):
        for attr in node.iter("attribute"):
            if attr.get("name") == "pingd" and (attr.get("value") or "0").isdigit() \
                    and int(attr.get("value") or "0") > 0:
                ready.add(node.get("name", ""))
    return running <= ready


def _dc_idle(lab: Lab) -> bool:
    dc = best_view(lab).dc
    if not dc:
        return False
    root = _crm_xml(lab, ["crmadmin", "-S", dc, "--output-as=xml", "-t", "5s"])
    return root is not None and any(el.get("state") == "S_IDLE" for el in root.iter())


# ----------------------------------------------------------------------------- faults


@dataclass
class Fault:
    inject: Callable[[], None]
    restore: Callable[[], None]
    # extra check once traffic resumed ('' = fine); e.g. conntrackd restarted
    check: Callable[[], str] = lambda: ""


def make_fault(lab: Lab, drill: str, holder: str) -> Fault:
    from envrouter.lab.build import power_on

    if drill == "hard-kill":
        return Fault(lambda: hard_kill(lab, holder), lambda: power_on(lab, holder, wait=False))
    if drill == "standby":
        via = other_running_controller(lab, holder)
        return Fault(lambda: set_standby(lab, holder, True, via),
                     lambda: set_standby(lab, holder, False, via))
    if drill == "partition":
        return Fault(lambda: set_switch_port(lab, holder, "management", False),
                     lambda: set_switch_port(lab, holder, "management", True))
    if drill == "upstream-link":
        return Fault(lambda: set_switch_port(lab, holder, "public", False),
                     lambda: set_switch_port(lab, holder, "public", True))
    if drill == "daemon-kill":
        before = conntrackd_pids(lab, holder)
        if not before:
            raise InfraError(f"no conntrackd runs on {holder}")

        def kill() -> None:
            for pid in before:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

        def restarted() -> str:
            try:
                wait_for(f"conntrackd restarted on {holder}",
                         lambda: [p for p in conntrackd_pids(lab, holder) if p not in before],
                         timeout=60, interval=0.5)
            except InfraError as exc:
                return str(exc)
            return ""

        return Fault(kill, lambda: None, restarted)
    raise ValidationError("drill", "name", f"unknown drill {drill!r} (one of {', '.join(DRILLS)})")


# ----------------------------------------------------------------------------- the drill


def run_drill(lab: Lab, drill: str, opts: DrillOptions | None = None,
              log: Callable[[str], None] = lambda s: None,
              plot: str | None = None) -> DrillReport:
    opts = opts or DrillOptions()
    if drill not in DRILLS:
        raise ValidationError("drill", "name", f"unknown drill {drill!r} (one of "
                              f"{', '.join(DRILLS)})")
    holder = current_holder(lab)
    dc = best_view(lab).dc
    fault = make_fault(lab, drill, holder)
    # under the upstream node's dir (the traffic server runs there): `lab down` removes it
    directory = os.path.join(lab.plan.node_dir("up"), "drills", f"{int(time.time())}-{drill}")
    shutil.rmtree(directory, ignore_errors=True)
    traffic = Traffic(lab, directory, opts)
    load = None
    if opts.connections:
        from envrouter.lab.scale import ConnectionLoad

        load = ConnectionLoad(lab, directory, opts.connections, churn_rate=opts.churn_rate,
                              udp_per_node=opts.udp_flows, log=log)
    log(f"{drill}: VIPs on {holder} (DC {dc}); starting traffic from "
        f"{', '.join(traffic.clients)}")
    notes: list[str] = []
    restored = False
    load_result = None
    if load is not None:
        try:
            if opts.on_phase:
                opts.on_phase("start")
            load.start(holder)
            if opts.on_phase:
                opts.on_phase("loaded")
            load.start_churn()
        except BaseException:
            load.stop()
            raise
    t_start = time.time()
    traffic.start()
    try:
        wait_for("traffic flowing before the fault", lambda: traffic.flowing(time.time() - 0.5),
                 timeout=30, interval=0.2)
        time.sleep(BASELINE)  # the baseline window of the measurement, not a wait
        t_start = time.time() - BASELINE
        log(f"{drill}: fault on {holder}")
        t_fault = time.time()
        fault.inject()
        moved_at = None
        expect_move = EXPECT_MOVE[drill]
        deadline = t_fault + RECOVERY_TIMEOUT
        while time.time() < deadline:
            where = holders(lab)
            nodes = {h for hs in where.values() for h in hs}
            if expect_move and moved_at is None and len(nodes) == 1 and holder not in nodes \
                    and all(len(h) == 1 for h in where.values()):
                moved_at = time.time()
            if (moved_at is not None or not expect_move) and traffic.flowing(t_fault + 0.2):
                break
            time.sleep(POLL)
        else:
            notes.append(f"traffic did not resume within {RECOVERY_TIMEOUT:.0f} s")
        if expect_move and moved_at is None:
            notes.append("the VIPs were never seen on another single controller")
        time.sleep(AFTER)  # traffic after the recovery, measured
        if why := fault.check():
            notes.append(why)
        holders_after = holders(lab)
        t_end = time.time()  # the end of the measured window: the clients stop from here on
        if load is not None:
            load_result = load.check(t_fault, holder).to_dict()
            if opts.on_phase:
                opts.on_phase("checked")
        server, clients, pings = traffic.stop()
        if opts.restore:
            log(f"{drill}: restoring {holder}")
            fault.restore()
            restored = True
    finally:
        if not restored:
            _touch(f"{directory}/stop")
            _touch(f"{directory}/stop-server")
            if load is not None:
                load.stop()
            if opts.restore:
                with contextlib.suppress(Exception):
                    fault.restore()
    report = analyse(drill, holder, dc, holders_after, expect_move, t_start, t_fault,
                     t_end, moved_at, server, clients, pings, notes)
    report.load = load_result
    with open(f"{directory}/report.json", "w") as f:
        json.dump(report.to_dict(), f, indent=2)
    from envrouter.lab.timeline import write_drill_timeline

    write_drill_timeline(directory, report.to_dict(), server, clients, pings, t_start, plot,
                         [os.path.join(lab.plan.node_dir(n.name), "log", "pacemaker",
                                       "pacemaker.log") for n in lab.plan.controllers])
    if opts.restore:
        log(f"{drill}: waiting for the lab to settle")
        wait_settled(lab)
    return report


def analyse(drill: str, holder: str, dc: str | None, holders_after: dict[str, list[str]],
            expect_move: bool, t_start: float, t_fault: float, t_end: float,
            moved_at: float | None, server: dict[str, Any], clients: dict[str, Any],
            pings: dict[str, str], notes: list[str]) -> DrillReport:
    """Pure: the report from the records."""
    flows: list[FlowResult] = []
    server_tcp = {rec["flow"]: rec for rec in server.get("tcp", [])}
    for rec in (r for c in clients.values() for r in c["flows"]):
        if rec["kind"] == "tcp":
            flows.append(tcp_result(rec, server_tcp.get(rec["flow"]), t_start, t_fault, t_end))
        else:
            flows.append(udp_result(rec, t_start, t_fault, t_end))
    gap_ms, lost, sent = 0.0, 0, 0
    for name, text in sorted(pings.items()):
        ping = parse_ping(text)
        flows.append(icmp_result(name, ping, t_start, t_fault, t_end))
        gap_ms = max(gap_ms, longest_gap(ping.times, t_start, t_end).seconds * 1000)
        lost += ping.lost
        sent += ping.transmitted
    return DrillReport(
        drill=drill, holder_before=holder, holders_after=holders_after,
        expect_move=expect_move, t_fault=t_fault, t_end=t_end,
        vips_moved_after_ms=None if moved_at is None else round((moved_at - t_fault) * 1000, 1),
        longest_gap_ms=round(gap_ms, 1), packets_lost=lost, packets_sent=sent, flows=flows,
        dc_before=dc, notes=notes,
    )


def run_drills(lab: Lab, names: list[str], opts: DrillOptions | None = None,
               log: Callable[[str], None] = lambda s: None,
               plot: str | None = None) -> list[DrillReport]:
    """`plot`: also write each drill's timeline there (`envrouter.lab.timeline.plot_path`)."""
    from envrouter.lab.timeline import plot_path

    reports = []
    wait_settled(lab)
    for name in names:
        reports.append(run_drill(lab, name, opts, log,
                                 plot and plot_path(plot, name, len(names) > 1)))
    return reports


# ----------------------------------------------------------------------------- memory


def controller_processes(lab: Lab, node: str) -> list[Proc]:
    """Every process of the node (its PID namespace) with its RSS and age."""
    ns = _pid_ns(lab.anchor_pid(node))
    clk = os.sysconf("SC_CLK_TCK")
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or _pid_ns(int(entry)) != ns:
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
            with open(f"/proc/{entry}/stat") as f:
                start = int(f.read().rsplit(")", 1)[1].split()[19])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError, IndexError):
            continue
        rss = int(status.get("VmRSS", "0 kB").split()[0]) if "VmRSS" in status else 0
        ns_pid = int(status.get("NSpid", entry).split()[-1])
        out.append(Proc(int(entry), ns_pid, status.get("Name", "").strip(), cmd, rss,
                        uptime - start / clk, int(status.get("PPid", "0").strip() or 0)))
    return out
