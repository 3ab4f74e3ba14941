"""Lab nodes (effects): the switch namespace, node namespaces with their anchors, veth wiring,
power-off/power-on, processes, and a state file from which everything can be removed.

Every namespace, anchor and host-side process is recorded in ``<state_dir>/state.json`` as soon
as it exists, so `teardown` works after a crash of `lab up` itself.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from pyroute2 import IPRoute, NetlinkError, netns

from envrouter import prerequisites
from envrouter.agent.netlink import in_netns
from envrouter.agent.ovs import set_tx_checksum
from envrouter.errors import InfraError
from envrouter.files import write_atomic
from envrouter.lab.topology import (
    CREATABLE_MOUNT_POINTS,
    NODE_SBIN,
    PRIVATE_DIRS,
    SHARED_WHEN_INSTALLED,
    LabNode,
    LabPlan,
    plan_lab,
)
from envrouter.lab.waiting import wait_for

NSENTER = "nsenter"
IFA_F_NODAD = 0x02  # linux/if_addr.h


def check_prerequisites() -> None:
    """Root and the programs of packaging/tools.tsv, checked before anything is created."""
    if os.geteuid() != 0:
        raise InfraError("the lab needs root (it creates network namespaces)")
    missing = prerequisites.missing(("runtime", "lab"))
    if missing:
        raise InfraError("the lab cannot start: "
                         + prerequisites.describe_missing(missing, "make deps-runtime"))
    warning = prerequisites.conntrackd_warning()
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


def _read_cmdline(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None


def _record_alive(rec: dict[str, Any] | None) -> bool:
    """A recorded process (pid + command line) still running as that command."""
    return bool(rec) and _read_cmdline(int(rec["pid"])) == rec["cmdline"]  # type: ignore[index]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_dead(pid: int, timeout: float) -> bool:
    def dead() -> bool:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child
        return not _alive(pid)

    with contextlib.suppress(InfraError):
        wait_for(f"process {pid} gone", dead, timeout=timeout, interval=0.05)
    return not _alive(pid)


def kill_recorded(
    pid: int, cmdline: str, *, sig: int = signal.SIGKILL, timeout: float = 10
) -> bool:
    """Kill `pid` only if it is still the process we started (same command line)."""
    if _read_cmdline(pid) != cmdline:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    if not _wait_dead(pid, timeout) and sig != signal.SIGKILL:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_dead(pid, timeout)
    return True


class Lab:
    """A lab on this machine, described by its plan and its state file."""

    def __init__(self, plan: LabPlan) -> None:
        self.plan = plan
        self.state: dict[str, Any] = {
            "plan": {
                "controllers": len(plan.controllers),
                "computes": len(plan.computes),
                "prefix": plan.prefix,
                "state_dir": plan.state_dir,
                "bridge_kind": plan.bridge_kind,
                "ipv6": plan.ipv6,
            },
            "netns": [],
            "anchors": {},
            "processes": {},
            "phase": "creating",
            "deployment": None,
        }
        self._popen: dict[str, subprocess.Popen] = {}

    # --- state -----------------------------------------------------------------------------
    @classmethod
    def load(cls, state_dir: str) -> Lab:
        path = os.path.join(state_dir, "state.json")
        try:
            with open(path) as f:
                state = json.load(f)
        except FileNotFoundError as exc:
            raise InfraError(f"no lab state in {state_dir} (is the lab up?)") from exc
        p = state["plan"]
        lab = cls(
            plan_lab(
                p["controllers"], p["computes"], prefix=p["prefix"], state_dir=p["state_dir"],
                bridge_kind=p.get("bridge_kind", "linux"),
                ipv6=p.get("ipv6", False),  # a state written before the dual-stack lab
            )
        )
        lab.state = state
        return lab

    def save(self) -> None:
        """Write the state file. Several processes share it (the lab's power switch powers
        nodes on and off beside a drill or a test): under a lock, a node's anchor and a host
        process that another process recorded and that are alive are kept — only one anchor
        per node can be alive, so the living record is the true one."""
        os.makedirs(self.plan.state_dir, exist_ok=True)
        with open(self.plan.state_file + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            disk = self._read_disk()
            for section in ("anchors", "processes"):
                mine = self.state.setdefault(section, {})
                for name, rec in (disk.get(section) or {}).items():
                    if not _record_alive(mine.get(name)) and _record_alive(rec):
                        mine[name] = rec
            # 0600: it holds the lab's admin API token
            write_atomic(self.plan.state_file, json.dumps(self.state, indent=2), 0o600)

    def refresh(self) -> None:
        """Take what other processes wrote into the state file since it was loaded (the
        deployment, a node's agent), keeping our own living anchors and processes."""
        disk = self._read_disk()
        for key, value in disk.items():
            if key in ("anchors", "processes"):
                mine = self.state.setdefault(key, {})
                for name, rec in (value or {}).items():
                    if not _record_alive(mine.get(name)) and _record_alive(rec):
                        mine[name] = rec
            else:
                self.state[key] = value

    def _read_disk(self) -> dict[str, Any]:
        try:
            with open(self.plan.state_file) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def _anchor_record(self, node: str) -> dict[str, Any] | None:
        """The node's living anchor: ours, or one another process (the power switch) started
        since we loaded the state."""
        rec = self.state["anchors"].get(node)
        if _record_alive(rec):
            return rec
        disk = (self._read_disk().get("anchors") or {}).get(node)
        if _record_alive(disk):
            self.state["anchors"][node] = disk
            return disk
        return None

    def plan_dict(self) -> dict[str, Any]:
        return asdict(self.plan)

    # --- processes ---------------------------------------------------------------------------
    def anchor_pid(self, node: str) -> int:
        rec = self._anchor_record(node)
        if rec is None:
            raise InfraError(f"node {node} is not running (no anchor process)")
        return int(rec["pid"])

    def node_running(self, node: str) -> bool:
        return self._anchor_record(node) is not None

    def nsenter_argv(self, node: str, argv: Sequence[str]) -> list[str]:
        pid = str(self.anchor_pid(node))
        return [NSENTER, "-t", pid, "-m", "-n", "-u", "-p", "--", *argv]

    def exec_in(
        self,
        node: str,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 60,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside the node (its network, mount, UTS and PID namespaces)."""
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.run(
            self.nsenter_argv(node, argv), capture_output=True, text=True, timeout=timeout,
            input=input, env=full_env, stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise InfraError(
                f"{node}: {' '.join(argv)} exited {proc.returncode}: "
                f"{(proc.stderr or proc.stdout).strip()[-800:]}"
            )
        return proc

    def spawn_in(
        self, node: str, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None,
        new_session: bool = False,
    ) -> subprocess.Popen:
        """Start a long-running process in the node; output goes to <node dir>/<name>.out.
        It dies with the node's anchor (PID namespace)."""
        log = open(os.path.join(self.plan.node_dir(node), f"{name}.out"), "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            self.nsenter_argv(node, argv), stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
            start_new_session=new_session,
        )
        log.close()
        self._popen[f"{node}/{name}"] = proc
        return proc

    def spawn_host(self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None
                   ) -> subprocess.Popen:
        """Start a lab process in the machine's own namespaces (the control plane), recorded."""
        log = open(os.path.join(self.plan.state_dir, f"{name}.log"), "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})}, start_new_session=True,
        )
        log.close()
        # its command line once it has exec'd (recorded: a later kill checks it is the same)
        with contextlib.suppress(InfraError):
            wait_for(f"{name}'s command line", lambda: _read_cmdline(proc.pid), timeout=5,
                     interval=0.01)
        cmdline = _read_cmdline(proc.pid) or ""
        self.state["processes"][name] = {"pid": proc.pid, "cmdline": cmdline}
        self.save()
        self._popen[name] = proc
        return proc

    def stop_host(self, name: str) -> None:
        rec = self.state["processes"].pop(name, None)
        if rec:
            kill_recorded(rec["pid"], rec["cmdline"], sig=signal.SIGTERM)
            self.save()

    # --- namespaces and wiring ---------------------------------------------------------------
    def _record_netns(self, name: str) -> None:
        if name not in self.state["netns"]:
            self.state["netns"].append(name)
            self.save()

    def _create_netns(self, name: str) -> None:
        self._record_netns(name)
        netns.create(name)
        with IPRoute(netns=name) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")

    def create_switch(self) -> None:
        sw = self.plan.switch_netns
        self._create_netns(sw)
        with IPRoute(netns=sw) as ipr:
            for net in self.plan.networks:
                _ensure_bridge(ipr, net.switch_bridge)

    def create_node(self, node: LabNode) -> None:
        self._prepare_node_dir(node)
        self._create_netns(node.netns)
        self._start_anchor(node)
        self._wire(node)

    def _prepare_node_dir(self, node: LabNode) -> None:
        d = self.plan.node_dir(node.name)
        # /run is volatile on a real machine: stale pid/lock files must not survive a power-off
        shutil.rmtree(os.path.join(d, "run"), ignore_errors=True)
        shared = SHARED_WHEN_INSTALLED if self.state.get("envrouter") else ()
        for sub, _ in PRIVATE_DIRS:
            if sub in shared:  # no source dir: the anchor leaves the machine's in place
                shutil.rmtree(os.path.join(d, sub), ignore_errors=True)
                continue
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        os.makedirs(os.path.join(d, "run", "netns"), exist_ok=True)
        os.makedirs(os.path.join(d, "root"), exist_ok=True)  # the agent's --root
        for sub in ("log/corosync", "log/crmsh", "log/envrouter"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        owned = [(os.path.join(d, "log", "pacemaker"), 0o770),
                 (os.path.join(d, "log", "pacemaker", "bundles"), 0o770),
                 (os.path.join(d, "lib-pacemaker"), 0o750)]
        owned += [(os.path.join(d, "lib-pacemaker", s), 0o750)
                  for s in ("cib", "pengine", "blackbox", "cores")]
        for p, mode in owned:
            os.makedirs(p, exist_ok=True)
            shutil.chown(p, "hacluster", "haclient")
            os.chmod(p, mode)
        os.chmod(os.path.join(d, "etc-corosync"), 0o755)
        if node.kind == "controller":
            # the lab's fence agent, shown in the node's /usr/sbin by the anchor (overlay)
            from envrouter.lab.fence_agent import NAME, wrapper_text

            os.makedirs(os.path.join(d, NODE_SBIN), exist_ok=True)
            agent = os.path.join(d, NODE_SBIN, NAME)
            with open(agent, "w") as f:
                f.write(wrapper_text(sys.executable))
            os.chmod(agent, 0o755)

    def _start_anchor(self, node: LabNode) -> None:
        d = self.plan.node_dir(node.name)
        for _, target in PRIVATE_DIRS:
            if not os.path.isdir(target):
                if target not in CREATABLE_MOUNT_POINTS:
                    raise InfraError(f"{target} is missing (its Debian package is not installed?)"
                                     " — install them with `make deps-runtime`")
                os.makedirs(target, exist_ok=True)
        ready = os.path.join(d, "anchor.ready")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(ready)
        log = open(os.path.join(d, "anchor.log"), "ab")  # noqa: SIM115
        parent = subprocess.Popen(
            ["ip", "netns", "exec", node.netns, "unshare", "--mount", "--uts", "--pid", "--fork",
             "--mount-proc", "--propagation", "private",
             sys.executable, "-m", "envrouter.lab.anchor", d, node.name],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._popen[f"{node.name}/unshare"] = parent
        what, anchor_log = f"the anchor of node {node.name}", os.path.join(d, "anchor.log")

        def child() -> int | None:
            try:
                with open(f"/proc/{parent.pid}/task/{parent.pid}/children") as f:
                    kids = f.read().split()
            except OSError:
                return None
            return int(kids[0]) if kids else None

        anchor = wait_for(f"{what} started", child, timeout=30, interval=0.05, proc=parent,
                          log=anchor_log)
        # record at once: a crash from here on still finds it
        self.state["anchors"][node.name] = {"pid": anchor, "cmdline": _read_cmdline(anchor) or ""}
        self.save()
        wait_for(f"{what} ready", lambda: os.path.exists(ready), timeout=30, interval=0.05,
                 proc=parent, log=anchor_log)
        # the cmdline is final once python runs the module (after unshare's exec)
        self.state["anchors"][node.name] = {"pid": anchor, "cmdline": _read_cmdline(anchor)}
        self.save()

    def _wire(self, node: LabNode) -> None:
        sw = self.plan.switch_netns
        for port in node.ports:
            with IPRoute(netns=sw) as ipr:
                for stale in ipr.link_lookup(ifname=port.switch_ifname):
                    ipr.link("del", index=stale)
                ipr.link("add", ifname=port.switch_ifname, kind="veth",
                         peer={"ifname": port.ifname, "net_ns_fd": node.netns})
                idx = ipr.link_lookup(ifname=port.switch_ifname)[0]
                br = ipr.link_lookup(ifname=port.switch_bridge)[0]
                ipr.link("set", index=idx, master=br, state="up")
        for port in node.ports:
            if self.on_ovs(node, port.network):
                # the switch's veth feeds the controller's OVS userspace datapath: it must
                # send finished checksums (envrouter.agent.ovs; a real NIC always does)
                in_netns(sw, lambda ifname=port.switch_ifname: set_tx_checksum(ifname, False))
        with IPRoute(netns=node.netns) as ipr:
            for port in node.ports:
                idx = ipr.link_lookup(ifname=port.ifname)[0]
                if self.on_ovs(node, port.network):
                    # the port goes on an OVS bridge once ovs-vswitchd runs (envrouter.lab.ovs)
                    ipr.link("set", index=idx, state="up")
                    continue
                if port.node_bridge:
                    br = _ensure_bridge(ipr, port.node_bridge)
                    ipr.link("set", index=idx, master=br, state="up")
                    dev = br
                else:
                    ipr.link("set", index=idx, state="up")
                    dev = idx
                _ensure_addr(ipr, dev, port.address, port.prefixlen)
                if port.address6:
                    _ensure_addr(ipr, dev, port.address6, port.prefixlen6)
            lo = ipr.link_lookup(ifname="lo")[0]
            for addr in node.loopback_addresses:
                _ensure_addr(ipr, lo, addr, 128 if ":" in addr else 32)
            if node.default_gateway:
                ipr.route("replace", dst="0.0.0.0/0", gateway=node.default_gateway)

    def on_ovs(self, node: LabNode, network: str) -> bool:
        return (self.plan.bridge_kind == "ovs" and node.kind == "controller"
                and network in ("management", "public"))

    # --- power -------------------------------------------------------------------------------
    def power_off(self, name: str) -> None:
        """A crash: SIGKILL the anchor (the kernel kills the whole PID namespace), then delete
        the node's netns so its addresses (a VIP) vanish like on a dead machine."""
        node = self.plan.node(name)
        self._anchor_record(name)  # the living one, also if another process started it
        rec = self.state["anchors"].pop(name, None)
        if rec:
            if _read_cmdline(rec["pid"]) == rec["cmdline"]:
                _kill_pid_namespace(rec["pid"])
            kill_recorded(rec["pid"], rec["cmdline"])
            parent = self._popen.pop(f"{name}/unshare", None)
            if parent is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    parent.wait(10)
        for key in [k for k in self._popen if k.startswith(f"{name}/")]:
            proc = self._popen.pop(key)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        if node.netns in netns.listnetns():
            netns.remove(node.netns)
        self.save()

    def power_on(self, name: str) -> None:
        """Recreate the node's netns, anchor and wiring (its disks — the node dir — survive, its
        /run does not). Services are started by the caller (`envrouter.lab.build.start_node`)."""
        node = self.plan.node(name)
        if self.node_running(name):
            raise InfraError(f"node {name} is already running")
        self.create_node(node)


def _ensure_bridge(ipr: IPRoute, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        # multicast snooping off: corosync/conntrackd multicast must flood
        ipr.link("add", ifname=name, kind="bridge", br_stp_state=0, br_forward_delay=0,
                 br_mcast_snooping=0)
        found = ipr.link_lookup(ifname=name)
    ipr.link("set", index=found[0], state="up")
    return found[0]


def _ensure_addr(ipr: IPRoute, index: int, address: str, prefixlen: int) -> None:
    """The address on the link (present: fine). An IPv6 one without duplicate address
    detection: usable at once, as a deployment tool's static address would be after boot."""
    extra = {"flags": IFA_F_NODAD} if ":" in address else {}
    try:
        ipr.addr("add", index=index, address=address, prefixlen=prefixlen, **extra)
    except NetlinkError as exc:
        if exc.code != errno.EEXIST:
            raise


def pid_ns_inode(pid: int) -> int | None:
    """The inode of the process's PID namespace (None: it is gone)."""
    try:
        return os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return None


def pid_ns_pids(ns: int | None) -> list[int]:
    """Every process (machine PID) in the PID namespace `ns` (`pid_ns_inode`)."""
    if ns is None:
        return []
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and pid_ns_inode(int(e)) == ns]


def stat_field(pid: int, index: int) -> int | None:
    """A numeric field of /proc/PID/stat, counted after the command name (0: the state, 1: the
    parent, 19: the start time in clock ticks); None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[index])
    except (OSError, ValueError, IndexError):
        return None


def pid_namespace_members(anchor: int) -> tuple[list[int], list[int]]:
    """(every process of the anchor's PID namespace, their parents outside it — the `nsenter`
    and `unshare` processes that started them from the machine's namespaces)."""
    members = pid_ns_pids(pid_ns_inode(anchor))
    inside = set(members)
    outside = {p for p in (stat_field(m, 1) for m in members) if p and p not in inside}
    return members, sorted(outside)


def continue_stopped(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def _kill_pid_namespace(anchor: int) -> None:
    """SIGKILL every process of the anchor's PID namespace (the anchor too), then SIGCONT them
    and their parents outside it. The parents matter: util-linux's nsenter stops itself when
    the child it waits for is stopped (job control), so after the hang drill's SIGSTOP the
    nsenter of corosync and pacemakerd sat stopped and never reaped their killed children —
    and a PID namespace whose init is gone dies only once every member is reaped: the node
    took tens of seconds to die."""
    members, parents = pid_namespace_members(anchor)
    for pid in members:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    continue_stopped(members + parents)


def _netns_inode(name: str) -> int | None:
    try:
        return os.stat(f"/run/netns/{name}").st_ino
    except OSError:
        return None


def _pids_in_netns(inodes: set[int]) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                pids.append(int(entry))
        except OSError:
            continue
    return pids


def teardown(state_dir: str, prefix: str) -> list[str]:
    """Remove everything a lab with this state dir and prefix made, even half-built or crashed:
    recorded host processes and anchors (by PID, command line checked), any process still
    inside one of the prefix's namespaces, the namespaces, the node dirs and the state file.
    Mounts live in the anchors' mount namespaces and die with them. Returns what was removed."""
    removed: list[str] = []
    state: dict[str, Any] = {}
    state_file = os.path.join(state_dir, "state.json")
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        with open(state_file) as f:
            state = json.load(f)
    for name, rec in state.get("processes", {}).items():
        if kill_recorded(rec["pid"], rec["cmdline"], sig=signal.SIGTERM):
            removed.append(f"process {name} ({rec['pid']})")
    # the power switch of this state dir, also if `up` was killed before it was recorded
    for entry in os.listdir("/proc"):
        cmd = _read_cmdline(int(entry)) if entry.isdigit() else None
        if cmd and cmd.split(" ")[1:4] == ["-m", "envrouter.lab.power_switch",
                                           state_dir.rstrip("/")] \
                and kill_recorded(int(entry), cmd, sig=signal.SIGTERM):
            removed.append(f"process power-switch ({entry})")
    for name, rec in state.get("anchors", {}).items():
        if kill_recorded(rec["pid"], rec["cmdline"]):
            removed.append(f"node {name} (anchor {rec['pid']})")
    prefixes = {prefix, state.get("plan", {}).get("prefix") or prefix}
    # recorded namespaces, and any with the lab's prefix (a crash before they were recorded)
    names = set(state.get("netns", []))
    names |= {n for n in netns.listnetns() if any(n.startswith(p) for p in prefixes)}
    names = {n for n in names if any(n.startswith(p) for p in prefixes)}
    inodes = {i for i in (_netns_inode(n) for n in names) if i is not None}
    if inodes:
        for pid in _pids_in_netns(inodes):
            # only processes living inside the lab's own network namespaces
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_dead(pid, 5)
            removed.append(f"process {pid} left in a lab namespace")
    for name in sorted(names):
        if name in netns.listnetns():
            netns.remove(name)
            removed.append(f"netns {name}")
    for sub in ("nodes", "server"):
        path = os.path.join(state_dir, sub)
        if os.path.isdir(path):
            shutil.rmtree(path)
            removed.append(path)
    for fname in ("state.json", "state.json.tmp", "state.json.lock", "server.log", "relay.log",
                  "power.sock", "power-switch.log", "power-events.jsonl"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(state_dir, fname))
    with contextlib.suppress(OSError):
        for fname in os.listdir(state_dir):
            if fname.startswith("state.json.") and fname.endswith(".tmp"):
                os.unlink(os.path.join(state_dir, fname))
    with contextlib.suppress(OSError):
        os.rmdir(state_dir)
    return removed
