"""Where the drills start from and return to (effects): who holds the VIPs, and the lab
settled (quorate, each VIP on one controller, every clone instance running on every running
controller, nothing in flight).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from envrouter.errors import InfraError
from envrouter.lab.cluster import best_view
from envrouter.lab.nodes import Lab
from envrouter.lab.status import vip_holders
from envrouter.lab.waiting import wait_for


def drill_vips(lab: Lab) -> dict[str, str]:
    return dict((lab.state.get("deployment") or {}).get("vips") or {
        "vrouter": lab.plan.vip_management, "vrouter_pub": lab.plan.vip_public})


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
