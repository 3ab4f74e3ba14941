"""The drills' faults (effects): what each drill does to the VIP holder, how it is undone,
and what must be true once traffic resumed (a fenced node back, conntrackd restarted).

- hard-kill: power-off of the holder (its cables down in the switch, then SIGKILL of its anchor,
  i.e. every process of the node, and its netns deleted: links and addresses gone); powered on
  again after the report.
- standby: ``crm_attribute --node H --name standby --update on`` (a graceful move); unstandby
  after.
- partition: the holder's management port set down in the switch namespace: the holder is alone
  without quorum (no-quorum-policy=stop) and must give up the VIPs.
- daemon-kill: SIGKILL of conntrackd on the holder; Pacemaker restarts it.
- upstream-link: the holder's public port set down in the switch: ping_upstream moves the VIPs.
- hang: every process of the holder stopped (`envrouter.lab.hang`), resumed after a while.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from pyroute2 import IPRoute

from envrouter.errors import InfraError, ValidationError
from envrouter.lab import fence, power_switch
from envrouter.lab.hang import DEFAULT_SECONDS, Hang
from envrouter.lab.node_processes import conntrackd_pids
from envrouter.lab.nodes import Lab
from envrouter.lab.waiting import wait_for

FAULTS = ("hard-kill", "standby", "partition", "daemon-kill", "upstream-link", "hang")
# with fencing on, the survivors fence the holder in these drills (it is lost to them)
FENCED = ("hard-kill", "partition", "hang")
DEFAULT_HANG = DEFAULT_SECONDS


@dataclass
class Fault:
    inject: Callable[[], None]
    restore: Callable[[], None]
    # extra check once traffic resumed ('' = fine); e.g. conntrackd restarted
    check: Callable[[], str] = lambda: ""
    # the recovery is judged only from this long after the fault (hang: after the resume)
    settle_after: float = 0.0


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


def set_standby(lab: Lab, node: str, on: bool, via: str) -> None:
    lab.exec_in(via, ["crm_attribute", "--type", "nodes", "--node", node, "--name", "standby",
                      "--update", "on" if on else "off"], timeout=60)


def make_fault(lab: Lab, drill: str, holder: str, fencing: bool = False,
               hang_seconds: float = DEFAULT_HANG) -> Fault:
    fault = _make_fault(lab, drill, holder, hang_seconds)
    if fencing and drill in FENCED:
        fault.check = _fenced_check(lab, holder, fault.check)
    return fault


def _fenced_check(lab: Lab, node: str, then: Callable[[], str]) -> Callable[[], str]:
    """With fencing, the lost node must have been fenced (the fence agent asked the power
    switch to power it off) and be back (powered on again by the device's power cycle)."""
    since = time.time()
    old_anchor = lab.anchor_pid(node)

    def check() -> str:
        try:
            wait_for(f"{node} fenced (a power-off by {fence.AGENT})",
                     lambda: fence.fenced_since(lab, node, since), timeout=60, interval=0.5)
            wait_for(f"{node} powered on again by its fence device",
                     lambda: lab.node_running(node) and lab.anchor_pid(node) != old_anchor,
                     timeout=60, interval=0.2)
        except InfraError as exc:
            return str(exc)
        return then()

    return check


def _make_fault(lab: Lab, drill: str, holder: str, hang_seconds: float) -> Fault:
    if drill == "hard-kill":
        return Fault(lambda: power_switch.crash(lab, holder),
                     lambda: power_switch.ensure_on(lab, holder))
    if drill == "standby":
        via = other_running_controller(lab, holder)
        return Fault(lambda: set_standby(lab, holder, True, via),
                     lambda: set_standby(lab, holder, False, via))
    if drill == "partition":
        def heal() -> None:  # a fenced node comes back with its cables in
            power_switch.ensure_on(lab, holder)
            wait_for(f"{holder} powered on", lambda: lab.node_running(holder), timeout=60)
            set_switch_port(lab, holder, "management", True)

        return Fault(lambda: set_switch_port(lab, holder, "management", False), heal)
    if drill == "upstream-link":
        return Fault(lambda: set_switch_port(lab, holder, "public", False),
                     lambda: set_switch_port(lab, holder, "public", True))
    if drill == "hang":
        hung = Hang(lab, holder, hang_seconds)

        def wake() -> None:
            hung.resume()
            power_switch.ensure_on(lab, holder)

        return Fault(hung.inject, wake, settle_after=hang_seconds)
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
    raise ValidationError("drill", "name", f"unknown drill {drill!r} (one of {', '.join(FAULTS)})")
