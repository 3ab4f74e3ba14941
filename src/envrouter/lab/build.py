"""`lab up` / `lab down` (effects): the steps in order, each shown with Rich progress."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from rich.console import Console

from envrouter.errors import EnvrouterError, InfraError
from envrouter.lab import cluster, deploy, fence, ovs, power_switch, sshd, upstream
from envrouter.lab.nodes import Lab, check_prerequisites, teardown
from envrouter.lab.topology import LabPlan


class Steps:
    """One line per step: a spinner while it runs, then ok/FAILED with its duration."""

    def __init__(self, console: Console) -> None:
        self.console = console

    @contextlib.contextmanager
    def step(self, text: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            with self.console.status(f"{text} ..."):
                yield
        except BaseException:
            self.console.print(f"[red]FAILED[/red] {text} ({time.monotonic() - start:.1f} s)")
            raise
        self.console.print(f"[green]ok[/green]     {text} ({time.monotonic() - start:.1f} s)")

    def note(self, text: str) -> None:
        self.console.print(f"[yellow]note[/yellow]   {text}")


def start_node_services(lab: Lab, name: str) -> None:
    """What runs on a node after (re)boot: upstream servers, the gateway's NAT, the cluster."""
    kind = lab.plan.node(name).kind
    if kind == "upstream":
        upstream.start_upstream(lab)
    elif kind == "master":
        upstream.start_master(lab)
    elif kind == "controller" and lab.state.get("phase") != "creating":
        if lab.plan.bridge_kind == "ovs":
            ovs.start_ovs(lab, name)
        cluster.start_cluster_node(lab, name)
    if lab.state.get("sshd") and name in sshd.ssh_nodes(lab):
        sshd.start_sshd(lab, name)


def power_on(lab: Lab, name: str, *, wait: bool = True) -> None:
    """Power a node back on: namespaces, anchor, wiring, its daemons and its agent. With
    `wait`, return once the lab has converged again: a controller back online in a quorate
    cluster and (if deployed) each VIP held by exactly one controller."""
    lab.power_on(name)
    start_node_services(lab, name)
    dep = lab.state.get("deployment") or {}
    if name in dep.get("agents", {}):
        deploy.apply_agent(lab, name)
    if wait:
        wait_converged(lab)


def wait_converged(lab: Lab, timeout: float = cluster.QUORUM_TIMEOUT) -> None:
    """Every running controller online in a quorate cluster with a DC; if the cluster
    resources are deployed, each VIP held by exactly one controller's vrouter namespace."""
    running = [n.name for n in lab.plan.controllers if lab.node_running(n.name)]
    if running:
        cluster.wait_quorate(lab, running, timeout=timeout)
    if (lab.state.get("deployment") or {}).get("cluster_resources"):
        deploy.wait_vips_held(lab, timeout=timeout)


def check_installed() -> str:
    """The installed envrouter packages' version, or why `lab up --installed` cannot run."""
    import shutil
    import subprocess

    proc = subprocess.run(["dpkg-query", "-W", "-f", "${Version} ${db:Status-Status}\\n",
                           "envrouter", "envrouter-controller"], capture_output=True,
                          text=True, timeout=30)
    states = [line.split() for line in proc.stdout.splitlines()]
    if proc.returncode != 0 or len(states) != 2 or any(s[1:] != ["installed"] for s in states):
        raise InfraError("--installed needs the Debian packages envrouter and "
                         "envrouter-controller installed (`make deb`, then `apt-get install "
                         "./build/deb/envrouter_*.deb ./build/deb/envrouter-controller_*.deb`)")
    if shutil.which(deploy.INSTALLED[0]) is None:
        raise InfraError(f"{deploy.INSTALLED[0]} is missing although envrouter is installed")
    return states[0][0]


def lab_up(plan: LabPlan, console: Console, *, deploy_parts: bool = True,
           fencing: bool = True, installed: bool = False) -> Lab:
    steps = Steps(console)
    with steps.step("checking root and the Debian packages"):
        check_prerequisites()
        version = check_installed() if installed else None
    with steps.step(f"removing leftovers of an earlier lab ({plan.prefix}*, {plan.state_dir})"):
        teardown(plan.state_dir, plan.prefix)
    lab = Lab(plan)
    if version:
        # the nodes and the control plane run the package's envrouter and OCF agents
        lab.state["envrouter"] = list(deploy.INSTALLED)
        lab.state["installed"] = version
    lab.save()
    try:
        _build(lab, steps, deploy_parts, fencing)
    except BaseException as exc:  # Ctrl-C too: a half-built lab is never left behind
        steps.note("lab up failed: removing everything it made")
        teardown(plan.state_dir, plan.prefix)
        if isinstance(exc, (EnvrouterError, KeyboardInterrupt, SystemExit)):
            raise
        raise InfraError(f"lab up failed: {type(exc).__name__}: {exc}") from exc
    return lab


def _build(lab: Lab, steps: Steps, deploy_parts: bool, fencing: bool) -> None:
    plan = lab.plan
    with steps.step(f"switch namespace {plan.switch_netns} (bridges "
                    f"{', '.join(n.switch_bridge for n in plan.networks)})"):
        lab.create_switch()
    for node in plan.nodes:
        with steps.step(f"node {node.name} ({node.kind}): netns {node.netns}, anchor, wiring"):
            lab.create_node(node)
    if plan.bridge_kind == "ovs":
        for node in plan.controllers:
            with steps.step(f"Open vSwitch on {node.name} (userspace datapath): "
                            "br-mgmt, br-ex"):
                ovs.start_ovs(lab, node.name)
    with steps.step("power switch (envrouter.lab.power_switch): the nodes' power, on a unix "
                    "socket in the state dir"):
        power_switch.start(lab)
    with steps.step("upstream: authoritative DNS, NTP server, HTTP echo server"):
        upstream.start_upstream(lab)
    with steps.step("admin gateway (master): forwarding + SNAT to upstream"):
        upstream.start_master(lab)
    with steps.step(f"cluster: corosync + pacemaker on "
                    f"{', '.join(n.name for n in plan.controllers)}, waiting for quorum and a DC"):
        cluster.start_cluster(lab)
    lab.state["phase"] = "cluster"
    lab.state["fencing_requested"] = fencing
    lab.save()
    if fencing:
        dc = cluster.best_view(lab).dc or plan.controllers[0].name
        with steps.step(f"fencing: a stonith device per controller ({fence.AGENT} against the "
                        f"power switch), stonith-enabled=true"):
            fence.configure(lab, dc)
            lab.exec_in(dc, ["crm_attribute", "-t", "crm_config", "-n", "stonith-enabled",
                             "-v", "true"], timeout=60)
    else:
        steps.note("fencing off (--no-fencing): stonith-enabled=false")
    if sshd.available():
        with steps.step("sshd on every node (the lab's own keys, for `upgrade --runner ssh`)"):
            sshd.start_all(lab)
    else:
        steps.note("no sshd on the nodes: openssh-server is not installed")
    missing = deploy.missing_parts() if deploy_parts else ["skipped (--no-deploy)"]
    if missing:
        steps.note("not deployed (control plane and agents): missing " + ", ".join(missing))
        lab.state["deployment"] = None
        lab.state["not_deployed_reason"] = ", ".join(missing)
    else:
        with steps.step("control plane: envrouter serve (SQLite), admin token, relay"):
            info = deploy.start_control_plane(lab)
        with steps.step("API: environment, networks, vrouter settings, VIPs, nodes"):
            deploy.create_environment(lab, info)
        for node in plan.deployed_nodes:
            with steps.step(f"agent apply on {node.name}"):
                deploy.apply_agent(lab, node.name)
        ha_missing = deploy.ha_missing()
        if ha_missing:
            steps.note(f"cluster resources not deployed: missing {ha_missing}")
            lab.state["not_deployed_reason"] = f"missing {ha_missing}"
        else:
            dc = cluster.best_view(lab).dc or plan.controllers[0].name
            with steps.step(f"cluster resources: OCF agents on every controller, Pacemaker "
                            f"layout applied on {dc} (fencing {'on' if fencing else 'off'})"):
                deploy.install_cluster_resources(lab, dc, stonith=fencing)
            with steps.step("waiting for the VIPs to start on one controller"):
                deploy.wait_vips_held(lab)
    lab.state["phase"] = "up"
    lab.save()


def lab_down(state_dir: str, prefix: str, console: Console) -> list[str]:
    steps = Steps(console)
    with steps.step("removing processes, namespaces and state"):
        removed = teardown(state_dir, prefix)
    return removed
