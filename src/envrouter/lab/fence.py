"""Fencing in the lab: one Pacemaker stonith device per controller, driving the lab's fence
agent (`envrouter.lab.fence_agent`) against the lab's power switch
(`envrouter.lab.power_switch`). The XML is built here (pure); `configure` loads it (effects).

- device ``fence-<node>`` (class stonith, type fence_envrouter_lab): ``pcmk_host_list=<node>``,
  the switch's socket, ``method=cycle`` — the switch answers once the node is off and powers it
  on by itself, so a fencing is confirmed when the node is dead, not when it is back (an
  off-then-on reboot would hold the survivors' VIP start behind the power-on);
- a location constraint keeps each device off the node it fences (a node never runs the
  device that kills it; any other controller can fence it);
- ``stonith-enabled=true`` is then set by ``envrouter ha apply`` (without ``--no-stonith``).

Ids start with ``lab-``/``fence-``, not ``envrouter-``: `envrouter ha apply` owns only its own
elements and leaves these alone.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from envrouter.lab.fence_agent import NAME as AGENT
from envrouter.lab.nodes import Lab
from envrouter.lab.power_switch import power_events, socket_path

MONITOR_INTERVAL = "60s"


def device_id(node: str) -> str:
    return f"fence-{node}"


def constraint_id(node: str) -> str:
    return f"lab-fence-{node}-not-on-{node}"


def device_xml(node: str, socket: str, method: str = "cycle") -> ET.Element:
    rid = device_id(node)
    prim = ET.Element("primitive", {"id": rid, "class": "stonith", "type": AGENT})
    attrs = ET.SubElement(prim, "instance_attributes", id=f"{rid}-instance_attributes")
    for name, value in (("socket", socket), ("method", method), ("pcmk_host_list", node),
                        ("pcmk_host_check", "static-list")):
        ET.SubElement(attrs, "nvpair", id=f"{rid}-{name}", name=name, value=value)
    ops = ET.SubElement(prim, "operations")
    ET.SubElement(ops, "op", id=f"{rid}-monitor-{MONITOR_INTERVAL}", name="monitor",
                  interval=MONITOR_INTERVAL, timeout="20s")
    return prim


def constraint_xml(node: str) -> ET.Element:
    return ET.Element("rsc_location", {"id": constraint_id(node), "rsc": device_id(node),
                                       "node": node, "score": "-INFINITY"})


def configure(lab: Lab, via: str) -> None:
    """Create (or replace) the devices and their constraints in the CIB, from `via`."""
    sock = socket_path(lab.plan.state_dir)
    for node in lab.plan.controllers:
        for scope, el in (("resources", device_xml(node.name, sock)),
                          ("constraints", constraint_xml(node.name))):
            text = ET.tostring(el, encoding="unicode")
            exists = lab.exec_in(via, ["cibadmin", "--query", "--scope", scope, "--xpath",
                                       f"//*[@id='{el.get('id')}']"], check=False).returncode
            op = "--replace" if exists == 0 else "--create"
            lab.exec_in(via, ["cibadmin", op, "--scope", scope, "--xml-text", text],
                        timeout=60)
    lab.state["fencing"] = {"devices": [device_id(n.name) for n in lab.plan.controllers],
                            "agent": AGENT, "socket": sock}
    lab.save()


@dataclass(frozen=True)
class Device:
    id: str
    target: str
    running_on: list[str]


def devices(lab: Lab, resources: dict[str, list[str]]) -> list[Device]:
    """The lab's devices and where Pacemaker runs them (crm_mon's resources)."""
    return [Device(device_id(n.name), n.name, resources.get(device_id(n.name), []))
            for n in lab.plan.controllers if (lab.state.get("fencing") or {}).get("devices")]


def fenced_since(lab: Lab, target: str, since: float) -> list[dict[str, Any]]:
    """The power actions the lab's fence agent asked the switch for on `target` since then
    (the switch's own record: `envrouter.lab.power_switch.power_events`)."""
    return [e for e in power_events(lab.plan.state_dir)
            if e.get("plug") == target and e.get("t", 0) >= since
            and str(e.get("by") or "").startswith(AGENT)
            and e.get("action") in ("off", "cycle")]


def set_enabled(lab: Lab, enabled: bool) -> None:
    """stonith-enabled on the running cluster (the devices stay configured): how the bench
    measures the same lab with and without fencing."""
    via = next(n.name for n in lab.plan.controllers if lab.node_running(n.name))
    lab.exec_in(via, ["crm_attribute", "-t", "crm_config", "-n", "stonith-enabled", "-v",
                      "true" if enabled else "false"], timeout=60)
