"""The lab's Corosync/Pacemaker cluster across the controllers (effects), no systemd."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from envrouter.errors import InfraError
from envrouter.ha.corosync import make_authkey, render_corosync_conf
from envrouter.lab.nodes import Lab
from envrouter.lab.waiting import wait_for
from envrouter.ops.parse import ParseError, parse_crm_mon

QUORUM_TIMEOUT = 180.0  # s; a DC is elected after dc-deadtime (20 s) on a busy 2-core machine


@dataclass
class ClusterView:
    """What one controller's Pacemaker says (crm_mon, read by `envrouter.ops.parse`)."""

    asked: str | None = None
    quorate: bool | None = None
    dc: str | None = None
    online: list[str] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)
    stonith_enabled: bool | None = None
    resources: dict[str, list[str]] = field(default_factory=dict)  # resource id -> nodes
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)  # node -> name -> value
    error: str | None = None


def write_cluster_config(lab: Lab) -> None:
    plan = lab.plan
    conf = render_corosync_conf(plan.cluster_name, plan.corosync_nodes())
    key = make_authkey()
    for node in plan.controllers:
        etc = os.path.join(plan.node_dir(node.name), "etc-corosync")
        with open(os.path.join(etc, "corosync.conf"), "w") as f:
            f.write(conf)
        keyfile = os.path.join(etc, "authkey")
        fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o400)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        os.chmod(keyfile, 0o400)


def start_cluster_node(lab: Lab, name: str) -> None:
    """corosync -f, wait until it answers, then pacemakerd -f (both foreground, backgrounded)."""
    ndir = lab.plan.node_dir(name)
    coro = lab.spawn_in(name, "corosync", ["corosync", "-f"])
    wait_for(f"{name}: corosync", lambda: lab.exec_in(name, ["corosync-cfgtool", "-s"],
                                                      check=False).returncode == 0,
             timeout=30, proc=coro, log=f"{ndir}/log/corosync/corosync.log")
    lab.spawn_in(name, "pacemakerd", ["pacemakerd", "-f"], new_session=True,
                 env={"PCMK_logfile": "/var/log/pacemaker/pacemaker.log", "PCMK_debug": "no"})


def cluster_view(lab: Lab, name: str) -> ClusterView:
    view = ClusterView(asked=name)
    if not lab.node_running(name):
        view.error = f"{name} is powered off"
        return view
    proc = lab.exec_in(name, ["crm_mon", "-1", "--output-as=xml"], check=False, timeout=20)
    if proc.returncode != 0 or not proc.stdout.strip():
        text = (proc.stderr or proc.stdout).strip()[-300:]
        view.error = text or f"crm_mon exited {proc.returncode}"
        return view
    try:
        state = parse_crm_mon(proc.stdout)
    except ParseError as exc:
        view.error = str(exc)
        return view
    if not state.available:
        view.error = state.error
        return view
    view.quorate, view.dc, view.stonith_enabled = state.quorate, state.dc, state.stonith_enabled
    for node in state.nodes:
        (view.online if node.online else view.offline).append(node.name)
    view.resources = state.running_on()
    view.attributes = {n.name: n.attributes for n in state.nodes}
    return view


def best_view(lab: Lab) -> ClusterView:
    """Ask the DC if one is known (a node back from a crash answers from its stale CIB)."""
    views = [cluster_view(lab, n.name) for n in lab.plan.controllers]
    good = [v for v in views if v.error is None]
    if not good:
        return views[0] if views else ClusterView(error="no controllers")
    for v in good:
        if v.dc and v.dc != v.asked:
            dc_view = next((w for w in good if w.asked == v.dc), None)
            if dc_view is not None:
                return dc_view
    return next((v for v in good if v.dc == v.asked), good[0])


def wait_quorate(lab: Lab, expected: list[str], timeout: float = QUORUM_TIMEOUT) -> ClusterView:
    def ready() -> ClusterView | None:
        view = best_view(lab)
        if view.quorate and view.dc and set(expected) <= set(view.online):
            return view
        return None

    return wait_for(f"cluster quorate with a DC and {', '.join(expected)} online", ready,
                    timeout=timeout, interval=1.0)


def set_lab_properties(lab: Lab, name: str) -> None:
    # Fencing off until the lab's fence devices exist (`envrouter.lab.fence`, next step of
    # `lab up`; never with --no-fencing). `lab status` reports it.
    for args in (["-t", "crm_config", "-n", "stonith-enabled", "-v", "false"],
                 ["-t", "rsc_defaults", "-n", "resource-stickiness", "-v", "100"]):
        lab.exec_in(name, ["crm_attribute", *args], timeout=60)


def start_cluster(lab: Lab) -> ClusterView:
    write_cluster_config(lab)
    for node in lab.plan.controllers:
        start_cluster_node(lab, node.name)
    names = [n.name for n in lab.plan.controllers]
    view = wait_quorate(lab, names)
    if view.dc is None:
        raise InfraError("cluster has no DC")
    set_lab_properties(lab, view.dc)
    return view
