"""Where the drills start from and return to (effects): who holds the VIPs, and the lab
settled (quorate, each VIP on one controller, every clone instance running on every running
controller, nothing in flight).
"""

from __future__ import annotations

from envrouter.document import VIP_MANAGEMENT, VIP_PUBLIC
from envrouter.errors import InfraError
from envrouter.ha.layout import CONNTRACKD, DNS, NTP, PING, PING_ATTRIBUTE, VROUTER
from envrouter.lab.cluster import best_view
from envrouter.lab.nodes import Lab
from envrouter.lab.status import vip_holders
from envrouter.lab.waiting import wait_for
from envrouter.ops.parse import ParseError, parse_crmadmin_state


def drill_vips(lab: Lab) -> dict[str, str]:
    return dict((lab.state.get("deployment") or {}).get("vips") or {
        VIP_MANAGEMENT: lab.plan.vip_management, VIP_PUBLIC: lab.plan.vip_public})


def holders(lab: Lab) -> dict[str, list[str]]:
    return {name: vip_holders(lab, address) for name, address in drill_vips(lab).items()}


def current_holder(lab: Lab) -> str:
    where = holders(lab)
    nodes = {h for hs in where.values() for h in hs}
    if len(nodes) != 1 or any(len(h) != 1 for h in where.values()):
        raise InfraError(f"the VIPs are not held by exactly one controller: {where}")
    return nodes.pop()


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
                   for r in (VROUTER, CONNTRACKD, DNS, NTP, PING))

    wait_for("every clone instance running on every controller", clones_everywhere,
             timeout=timeout, interval=1.0)
    # and nothing left in flight: a drill that starts while a node just back still writes its
    # attributes (pingd, the promotion score) has its transition aborted and re-planned
    wait_for("every controller reaching the upstream (pingd > 0) and the DC idle",
             lambda: _nothing_in_flight(lab, running), timeout=timeout, interval=1.0)


def _nothing_in_flight(lab: Lab, running: set[str]) -> bool:
    view = best_view(lab)
    if view.error or not view.dc:
        return False
    return running <= reaching_upstream(view.attributes) \
        and _controller_state(lab, view.dc) == "S_IDLE"


def reaching_upstream(attributes: dict[str, dict[str, str]]) -> set[str]:
    """Pure: the nodes whose ping resource reaches the upstream (pingd > 0), from each node's
    attributes (a node without the attribute yet does not)."""
    return {node for node, attrs in attributes.items()
            if (value := attrs.get(PING_ATTRIBUTE, "")).isdigit() and int(value) > 0}


def _controller_state(lab: Lab, node: str) -> str | None:
    via = next((n.name for n in lab.plan.controllers if lab.node_running(n.name)), None)
    if via is None:
        return None
    proc = lab.exec_in(via, ["crmadmin", "-S", node, "--output-as=xml", "-t", "5s"],
                       check=False, timeout=30)
    try:
        return parse_crmadmin_state(proc.stdout) if proc.returncode == 0 else None
    except ParseError:
        return None
