"""The real deployment path in the lab (effects): the control plane serves (SQLite under the
state dir, 127.0.0.1), the lab creates the environment through the REST API, and each node's
agent fetches its own document from the API and applies it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Any

import httpx

from envrouter.errors import InfraError
from envrouter.ha.ocf_base import DEFAULT_DOCUMENT
from envrouter.lab.nodes import Lab
from envrouter.lab.topology import LabPlan
from envrouter.lab.waiting import wait_for

RELAY_PORT = 8000  # the control plane as the nodes see it: http://<admin gateway>:8000
ENVROUTER = [sys.executable, "-m", "envrouter.cli.main"]
INSTALLED = ["/usr/bin/envrouter"]  # `lab up --installed`: the Debian package's command


def envrouter_argv(lab: Lab) -> list[str]:
    """The envrouter command the lab runs, in its nodes and for its control plane: the
    installed package's (`lab up --installed`) or this one's."""
    return list(lab.state.get("envrouter") or ENVROUTER)


def _placeholder(group: str) -> bool:
    proc = subprocess.run([*ENVROUTER, group, "--help"], capture_output=True, text=True,
                          timeout=60)
    return proc.returncode != 0 or "Not built yet" in proc.stdout


def missing_parts() -> list[str]:
    """The parts of the deployment path that are not built yet (empty = all there)."""
    missing = []
    for group, what in (("serve", "control plane (envrouter serve)"),
                        ("token", "tokens (envrouter token)"),
                        ("agent", "node agent (envrouter agent)")):
        if _placeholder(group):
            missing.append(what)
    return missing


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def db_url(lab: Lab) -> str:
    return f"sqlite:///{lab.plan.state_dir}/server/envrouter.db"


def serve_argv(plan: LabPlan, port: int, url: str,
               envrouter: list[str] | None = None) -> list[str]:
    """`envrouter serve` of the lab (with `envrouter`, the command `envrouter_argv` chose): the
    live cluster state, each controller's health and the drills (under the upstream node,
    where `lab drill` writes them) for the UI."""
    return [
        *(envrouter or ENVROUTER), "serve", "--host", "127.0.0.1", "--port", str(port),
        "--database-url", url,
        "--cluster-command", f"{sys.executable} -m envrouter.lab.crm_mon {plan.state_dir}",
        # every 10 s, not the default 5: each poll runs `envrouter status` on every controller
        "--status-command", f"{sys.executable} -m envrouter.lab.ops_status {plan.state_dir}",
        "--status-interval", "10",
        "--drills-dir", os.path.join(plan.node_dir("up"), "drills"),
    ]


def start_control_plane(lab: Lab) -> dict[str, Any]:
    plan = lab.plan
    os.makedirs(f"{plan.state_dir}/server", exist_ok=True)
    url = db_url(lab)
    env = {"ENVROUTER_DATABASE_URL": url}
    ENVROUTER = envrouter_argv(lab)  # noqa: N806
    mig = subprocess.run([*ENVROUTER, "db", "upgrade", "--database-url", url],
                         capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    if mig.returncode != 0:
        raise InfraError(f"envrouter db upgrade: {(mig.stderr or mig.stdout).strip()[-500:]}")
    tok = subprocess.run([*ENVROUTER, "token", "create", "--name", "lab-admin",
                          "--database-url", url], capture_output=True, text=True,
                         env={**os.environ, **env}, timeout=60)
    if tok.returncode != 0:
        raise InfraError(f"envrouter token create: {tok.stderr.strip()[-500:]}")
    token = tok.stdout.strip().splitlines()[-1].split()[-1]
    port = _free_port()
    server = lab.spawn_host("server", serve_argv(plan, port, url, ENVROUTER), env=env)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for("control plane /healthz", healthy, timeout=60, proc=server,
             log=f"{plan.state_dir}/server.log")
    master = plan.node("master")
    admin_gw = master.address("admin")
    lab.spawn_host("relay", [sys.executable, "-m", "envrouter.lab.relay",
                             "--netns", f"/run/netns/{master.netns}",
                             "--listen", f"{admin_gw}:{RELAY_PORT}",
                             "--target", f"127.0.0.1:{port}"])
    node_url = f"http://{admin_gw}:{RELAY_PORT}"
    wait_for("control plane reachable from the nodes",
             lambda: lab.exec_in("cmp1" if plan.computes else plan.controllers[0].name,
                                 ["curl", "-sf", "--max-time", "2", f"{node_url}/healthz"],
                                 check=False).returncode == 0,
             timeout=30)
    info = {"url": base, "node_url": node_url, "token": token, "db_url": url}
    lab.state["deployment"] = {"control_plane": info, "agents": {}, "vips": {}}
    lab.save()
    return info


def _call(client: httpx.Client, method: str, path: str, body: Any = None) -> Any:
    resp = client.request(method, path, json=body)
    if resp.status_code >= 400:
        raise InfraError(f"API {method} {path}: {resp.status_code} {resp.text[:500]}")
    return resp.json() if resp.content else None


def create_environment(lab: Lab, info: dict[str, Any]) -> dict[str, str]:
    """Environment, networks, vrouter settings, VIPs and nodes with the topology's addresses."""
    plan = lab.plan
    headers = {"Authorization": f"Bearer {info['token']}"}
    with httpx.Client(base_url=info["url"] + "/api/v1", headers=headers, timeout=30) as c:
        env = _call(c, "POST", "/environments", {"name": plan.env_name, "ha": True})
        eid = env["id"]
        for net in plan.networks:
            body: dict[str, Any] = {
                "name": net.name, "role": net.role, "cidr": net.cidr,
                "ranges": [{"start": s, "end": e} for s, e in net.ranges],
            }
            if net.gateway:
                body["gateway"] = net.gateway
            if net.cidr6:
                body["cidr6"] = net.cidr6
                body["ranges6"] = [{"start": s, "end": e} for s, e in net.ranges6]
                if net.gateway6:
                    body["gateway6"] = net.gateway6
            _call(c, "POST", f"/environments/{eid}/networks", body)
        # dual stack: the nodes ask the VIPs over both families, and the namespaces forward to
        # the upstream's IPv4 address (AAAA records included): only the holder of the public
        # IPv6 VIP has an IPv6 route upstream (the host link is IPv4 only, docs/index.md), so an
        # IPv6 upstream would be unreachable from the others' namespaces
        _call(c, "PUT", f"/environments/{eid}/vrouter", {
            "enabled": True, "dns_list": [plan.upstream_dns], "ntp_list": [plan.upstream_ntp],
            "domain": plan.zone, "nat": True, "conntrack_sync": True,
            "bridge_kind": plan.bridge_kind, "ipv6": plan.ipv6,
        })
        _call(c, "PUT", f"/environments/{eid}/vips/vrouter", {"address": plan.vip_management})
        _call(c, "PUT", f"/environments/{eid}/vips/vrouter_pub", {"address": plan.vip_public})
        if plan.vip_management6 and plan.vip_public6:
            _call(c, "PUT", f"/environments/{eid}/vips/vrouter6",
                  {"address": plan.vip_management6})
            _call(c, "PUT", f"/environments/{eid}/vips/vrouter_pub6",
                  {"address": plan.vip_public6})
        _call(c, "POST", f"/environments/{eid}/vrouter/reserve-vips")
        for node in plan.deployed_nodes:
            _call(c, "POST", f"/environments/{eid}/nodes", {
                "hostname": node.name, "roles": list(node.roles), "status": "ready",
                "addresses": {p.network: p.address for p in node.ports},
                "addresses6": {p.network: p.address6 for p in node.ports if p.address6},
            })
        vips = {v["name"]: v["address"] for v in _call(c, "GET", f"/environments/{eid}/vips")}
    lab.state["deployment"]["environment_id"] = eid
    lab.state["deployment"]["vips"] = vips
    lab.save()
    return vips


def apply_agent(lab: Lab, name: str) -> None:
    dep = lab.state["deployment"]
    cp = dep["control_plane"]
    root = os.path.join(lab.plan.node_dir(name), "root")
    lab.exec_in(name, [*envrouter_argv(lab), "agent", "apply", "--server", cp["node_url"],
                       "--node", name, "--root", root, "--state-dir", "/var/lib/envrouter"],
                env={"ENVROUTER_TOKEN": cp["token"]}, timeout=300)
    dep["agents"][name] = "applied"
    lab.save()


def ha_missing() -> str | None:
    """None if the HA layer's commands exist (`envrouter ha install` and `ha apply`)."""
    for cmd in ("install", "apply"):
        proc = subprocess.run([*ENVROUTER, "ha", cmd, "--help"], capture_output=True, text=True,
                              timeout=60)
        if proc.returncode != 0:
            return f"HA layer (envrouter ha {cmd})"
    return None


def install_cluster_resources(lab: Lab, dc: str, *, stonith: bool = True) -> None:
    """The OCF agents on every controller (into the node's own OCF directory), then the
    Pacemaker layout from the DC's document; with `stonith`, fencing stays on (the lab's
    devices are configured first: `envrouter.lab.fence`)."""
    ENVROUTER = envrouter_argv(lab)  # noqa: N806
    for node in lab.plan.controllers:
        lab.exec_in(node.name, [*ENVROUTER, "ha", "install"], timeout=120)
    lab.exec_in(dc, [*ENVROUTER, "ha", "apply", "--document", DEFAULT_DOCUMENT,
                     "--stonith" if stonith else "--no-stonith"], timeout=300)
    lab.state["deployment"]["cluster_resources"] = "applied"
    lab.save()


def wait_vips_held(lab: Lab, timeout: float = 180) -> dict[str, str]:
    """Until each VIP is held by exactly one controller's vrouter namespace."""
    from envrouter.lab.status import vip_holders

    vips = lab.state["deployment"]["vips"]

    def held() -> dict[str, str] | None:
        where = {}
        for name, address in vips.items():
            holders = vip_holders(lab, address)
            if len(holders) != 1:
                return None
            where[name] = holders[0]
        return where

    return wait_for(f"VIPs {', '.join(vips.values())} held by one controller", held,
                    timeout=timeout, interval=1.0)
