"""`lab status` (effects: reads the lab): nodes, cluster, VIP holders and end-to-end checks
from a compute node, for each family (a dual-stack lab: IPv4 and IPv6). A check whose part is
not deployed says so; it never passes by default."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict
from typing import Any

from pyroute2 import IPRoute
from rich.console import Console
from rich.table import Table

from envrouter.document import VIP_MANAGEMENT, VIP_MANAGEMENT6, VIP_PUBLIC, VIP_PUBLIC6
from envrouter.ha.layout import VIPS
from envrouter.lab import fence
from envrouter.lab.cluster import best_view
from envrouter.lab.nodes import Lab
from envrouter.lab.topology import LabPlan, http_url

PASS, FAIL, NOT_DEPLOYED = "pass", "FAIL", "not deployed"
VROUTER_NS = "vrouter"


def vip_holders(lab: Lab, address: str, namespace: str = VROUTER_NS) -> list[str]:
    """Controllers whose vrouter namespace holds `address` (asked via netlink inside each
    controller's private namespace, reached through its anchor's mount namespace)."""
    holders = []
    for node in lab.plan.controllers:
        if not lab.node_running(node.name):
            continue
        path = f"/proc/{lab.anchor_pid(node.name)}/root/run/netns/{namespace}"
        if not os.path.exists(path):
            continue
        try:
            with IPRoute(netns=path) as ipr:
                if ipr.get_addr(address=address):
                    holders.append(node.name)
        except OSError:
            continue
    return holders


def _vrouter_present(lab: Lab) -> bool:
    return any(
        lab.node_running(n.name)
        and os.path.exists(f"/proc/{lab.anchor_pid(n.name)}/root/run/netns/{VROUTER_NS}")
        for n in lab.plan.controllers
    )


def _check(name: str, status: str, detail: str) -> dict[str, str]:
    return {"check": name, "status": status, "detail": detail}


def _families(plan: LabPlan) -> list[tuple[str, str, str, str, str]]:
    """(label, management VIP name, public VIP name, upstream HTTP address, DNS record type)
    of each family the lab serves; the IPv4 checks keep their names."""
    out = [("", VIP_MANAGEMENT, VIP_PUBLIC, plan.upstream_http, "A")]
    if plan.upstream_http6:
        out.append((" over IPv6", VIP_MANAGEMENT6, VIP_PUBLIC6, plan.upstream_http6, "AAAA"))
    return out


def run_checks(lab: Lab, deployed: bool, vips: dict[str, str]) -> list[dict[str, str]]:
    plan = lab.plan
    client = plan.computes[0].name if plan.computes else None
    names = [f"{what}{label}" for label, *_ in _families(plan) for what in (
        "ping management VIP", "DNS via the VIP", "NTP via the VIP",
        "HTTP via NAT (source seen upstream)")]
    if client is None:
        return [_check(n, NOT_DEPLOYED, "the lab has no compute node") for n in names]
    if not lab.node_running(client):
        return [_check(n, FAIL, f"{client} is powered off") for n in names]
    if not deployed:
        reason = lab.state.get("not_deployed_reason") or "the agents have not run"
        return [_check(f"{n} (from {client})", NOT_DEPLOYED, reason) for n in names]
    out = []
    for label, mgmt_name, pub_name, http, rtype in _families(plan):
        out += _family_checks(lab, client, label, vips.get(mgmt_name), vips.get(pub_name),
                              http, rtype)
    return out


def _family_checks(lab: Lab, client: str, label: str, vip: str | None, pub: str | None,
                   http: str, rtype: str) -> list[dict[str, str]]:
    """From `client`: the management VIP answers ping, DNS (the upstream's `rtype` record of
    www) and NTP, and the upstream sees its HTTP request from the public VIP (the NAT)."""
    plan = lab.plan
    names = ["ping management VIP", "DNS via the VIP", "NTP via the VIP",
             "HTTP via NAT (source seen upstream)"]
    if not vip:
        return [_check(f"{n}{label}", FAIL, "the control plane reports no management VIP")
                for n in names]
    out = []
    p = lab.exec_in(client, ["ping", "-c", "1", "-W", "2", vip], check=False)
    out.append(_check(f"ping management VIP{label} (from {client})",
                      PASS if p.returncode == 0 else FAIL, f"{vip}: exit {p.returncode}"))
    name = f"www.{plan.zone}"
    d = lab.exec_in(client, ["dig", "+short", "+time=2", "+tries=2", f"@{vip}", name, rtype],
                    check=False)
    answer = d.stdout.split()
    ok = http in answer
    out.append(_check(f"DNS via the VIP{label} (from {client})", PASS if ok else FAIL,
                      f"dig @{vip} {name} {rtype} -> "
                      f"{' '.join(answer) or d.stderr.strip()[-200:]}"))
    n = lab.exec_in(client, ["chronyd", "-Q", "-t", "12", f"server {vip} iburst maxsamples 1"],
                    check=False, timeout=30)
    text = n.stdout + n.stderr
    m = re.search(r"[Oo]ffset\s*=?\s*([-+]?[0-9.]+)\s*seconds", text) or re.search(
        r"System clock wrong by ([-+]?[0-9.]+) seconds", text)
    out.append(_check(f"NTP via the VIP{label} (from {client})",
                      PASS if n.returncode == 0 and m else FAIL,
                      f"offset {m.group(1)} s" if m else text.strip()[-200:]))
    h = lab.exec_in(client, ["curl", "-s", "--max-time", "5", http_url(http)], check=False)
    try:
        seen = json.loads(h.stdout)["source"]
    except (ValueError, KeyError, TypeError):
        seen = None
    out.append(_check(f"HTTP via NAT{label} (from {client})",
                      PASS if seen and seen == pub else FAIL,
                      f"upstream saw {seen or h.stderr.strip()[-200:] or 'nothing'} "
                      f"(expected the public VIP {pub})"))
    return out


def controller_health(lab: Lab, deployed: bool) -> list[dict[str, Any]]:
    """`envrouter status --json` run on every running controller: the same view an operator
    gets on a real controller (resources, conntrackd, DNS, NTP, NAT table)."""
    out: list[dict[str, Any]] = []
    for node in lab.plan.controllers:
        if not deployed or not lab.node_running(node.name):
            out.append({"node": node.name, "state": NOT_DEPLOYED if not deployed else "off",
                        "reasons": []})
            continue
        from envrouter.lab.deploy import envrouter_argv

        r = lab.exec_in(node.name, [*envrouter_argv(lab), "status",
                                    "--json"], check=False, timeout=90)
        try:
            data = json.loads(r.stdout)
        except ValueError:
            out.append({"node": node.name, "state": FAIL,
                        "reasons": [(r.stderr.strip() or "no output")[-300:]]})
            continue
        out.append({"node": node.name,
                    "state": FAIL if data.get("degraded") else PASS,
                    "reasons": list(data.get("reasons") or [])})
    return out


def collect_status(lab: Lab) -> dict[str, Any]:
    plan = lab.plan
    view = best_view(lab) if plan.controllers else None
    dep = lab.state.get("deployment") or {}
    deployed = bool(dep.get("agents")) and all(
        n.name in dep.get("agents", {}) for n in plan.deployed_nodes)
    nodes = []
    for node in plan.nodes:
        member = None
        if node.kind == "controller" and view is not None:
            member = ("online" if node.name in view.online else
                      "offline" if node.name in view.offline else "unknown")
        nodes.append({
            "name": node.name, "kind": node.kind, "roles": list(node.roles),
            "netns": node.netns, "running": lab.node_running(node.name),
            "addresses": {p.network: p.address for p in node.ports},
            "addresses6": {p.network: p.address6 for p in node.ports if p.address6},
            "cluster": member,
        })
    devices = fence.devices(lab, view.resources if view else {})
    if view is None or view.stonith_enabled is None:
        fencing = "unknown"
    elif view.stonith_enabled:
        fencing = "ON (stonith-enabled=true; devices: " + (", ".join(
            f"{d.id} for {d.target} on {' '.join(d.running_on) or 'nowhere'}" for d in devices)
            or "none") + ")"
    else:
        fencing = ("OFF (stonith-enabled=false: `lab up --no-fencing`; a hung controller can "
                   "hold the VIPs beside the new holder)")
    vips_cfg = dep.get("vips") or {}
    vips = []
    planned_vips = [(VIP_MANAGEMENT, plan.vip_management), (VIP_PUBLIC, plan.vip_public)]
    if plan.vip_management6 and plan.vip_public6:
        planned_vips += [(VIP_MANAGEMENT6, plan.vip_management6),
                         (VIP_PUBLIC6, plan.vip_public6)]
    for vname, planned in planned_vips:
        address = vips_cfg.get(vname, planned)
        if not deployed and not _vrouter_present(lab):
            holder: Any = NOT_DEPLOYED
        else:
            holders = vip_holders(lab, address)
            holder = holders if holders else "nowhere"
        crm = (view.resources.get(VIPS) if view else None) or []
        vips.append({"name": vname, "address": address, "holder": holder, "pacemaker": crm})
    return {
        "state_dir": plan.state_dir,
        "prefix": plan.prefix,
        "phase": lab.state.get("phase"),
        "control_plane": (dep.get("control_plane") or {}).get("url") if dep else None,
        "nodes": nodes,
        "cluster": asdict(view) if view else None,
        "fencing": fencing,
        "fence_devices": [asdict(d) for d in devices],
        "vips": vips,
        "checks": run_checks(lab, deployed, {v["name"]: v["address"] for v in vips}),
        "controllers": controller_health(lab, deployed),
    }


def degraded(status: dict[str, Any]) -> list[str]:
    """Why the lab is degraded ([] = healthy as far as it is deployed)."""
    out = [f"check {c['check']}: {c['detail']}" for c in status["checks"] if c["status"] == FAIL]
    out += [f"controller {h['node']}: {'; '.join(h['reasons'])}"
            for h in status.get("controllers") or [] if h["state"] == FAIL]
    for v in status["vips"]:
        if v["holder"] != NOT_DEPLOYED and (v["holder"] == "nowhere" or len(v["holder"]) != 1):
            out.append(f"VIP {v['name']} held by {v['holder']}")
    return out


def _style(status: str) -> str:
    return {PASS: "[green]pass[/green]", FAIL: "[red]FAIL[/red]"}.get(
        status, f"[yellow]{status}[/yellow]")


def print_status(status: dict[str, Any], console: Console) -> None:
    nodes = Table(title=f"lab nodes ({status['prefix']}*, {status['state_dir']})")
    for col in ("node", "kind", "roles", "power", "addresses", "cluster"):
        nodes.add_column(col)
    for n in status["nodes"]:
        nodes.add_row(n["name"], n["kind"], ",".join(n["roles"]) or "-",
                      "[green]on[/green]" if n["running"] else "[red]off[/red]",
                      " ".join(f"{k}={v}" for k, v in n["addresses"].items()),
                      n["cluster"] or "-")
    console.print(nodes)
    c = status["cluster"] or {}
    quorate = {True: "[green]yes[/green]", False: "[red]NO[/red]"}.get(c.get("quorate"), "unknown")
    console.print(f"cluster: quorate {quorate}, DC {c.get('dc') or '-'}, online "
                  f"{' '.join(c.get('online') or []) or '-'}, offline "
                  f"{' '.join(c.get('offline') or []) or '-'}"
                  + (f", error: {c['error']}" if c.get("error") else ""))
    console.print(f"fencing: {status['fencing']}")
    if status.get("control_plane"):
        console.print(f"control plane (UI/API): {status['control_plane']} — log in: "
                      f"`envrouter lab login` prints the login page and the admin token")
    vips = Table(title="VIPs")
    for col in ("VIP", "address", "held by (vrouter namespace)", "pacemaker says"):
        vips.add_column(col)
    for v in status["vips"]:
        holder = v["holder"]
        shown = (_style(NOT_DEPLOYED) if holder == NOT_DEPLOYED else
                 "[red]nowhere[/red]" if holder == "nowhere" else
                 (" ".join(holder) if len(holder) == 1 else f"[red]{' '.join(holder)}[/red]"))
        vips.add_row(v["name"], v["address"], shown, " ".join(v["pacemaker"]) or "-")
    console.print(vips)
    checks = Table(title="checks")
    for col in ("check", "result", "detail"):
        checks.add_column(col)
    for ch in status["checks"]:
        checks.add_row(ch["check"], _style(ch["status"]), ch["detail"])
    console.print(checks)
    # a title wider than this narrow table would wrap: print it as a line of its own
    console.print("envrouter status on each controller:")
    health = Table()
    for col in ("controller", "state", "reasons"):
        health.add_column(col)
    for h in status.get("controllers") or []:
        state = {PASS: "[green]healthy[/green]", FAIL: "[red]DEGRADED[/red]"}.get(
            h["state"], f"[yellow]{h['state']}[/yellow]")
        health.add_row(h["node"], state, "; ".join(h["reasons"]) or "-")
    console.print(health)


def status_json(status: dict[str, Any]) -> str:
    return json.dumps(status, indent=2)
