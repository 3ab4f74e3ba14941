"""An environment described in YAML: import and export (see examples/environment.yaml)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from envrouter.db.tables import NodeRow
from envrouter.errors import ValidationError
from envrouter.model import service
from envrouter.model.entities import VIP_NETWORK_ROLES

TOP_KEYS = {"name", "ha", "networks", "nodes", "vrouter", "vips"}


def _check_keys(obj: str, data: Any, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ValidationError(obj, "(document)", "expected a mapping")
    for key in data:
        if key not in allowed:
            raise ValidationError(
                obj, str(key), f"unknown key; known: {', '.join(sorted(allowed))}"
            )
    return data


def import_environment(session: Session, data: Any) -> int:
    """Create the environment described by `data` (parsed YAML); returns its id.

    Order: environment, networks, settings (without `enabled`), nodes, user-defined VIPs,
    automatic VIPs (when `vips` lists them or the vrouter is enabled), then `enabled`."""
    data = _check_keys("environment file", data, TOP_KEYS)
    env = service.create_environment(session, data.get("name"), bool(data.get("ha", False)))
    for i, net in enumerate(data.get("networks") or []):
        _check_keys(
            f"networks[{i}]", net, {"name", "role", "cidr", "gateway", "vlan", "bridge", "ranges"}
        )
        service.create_network(session, env.id, net)
    settings = dict(
        _check_keys(
            "vrouter", data.get("vrouter") or {}, set(service.VrouterSettings.__dataclass_fields__)
        )
    )
    enabled = settings.pop("enabled", False)
    if settings:
        service.put_settings(session, env.id, settings)
    specs = []
    for i, node in enumerate(data.get("nodes") or []):
        _check_keys(f"nodes[{i}]", node, {"hostname", "roles", "status", "addresses"})
        specs.append(node)
    if specs:
        service.create_nodes(session, env.id, specs)
    vips = _check_keys("vips", data.get("vips") or {}, set(VIP_NETWORK_ROLES))
    for name, spec in vips.items():
        if isinstance(spec, Mapping):
            address, automatic = spec.get("address"), not spec.get("user_defined", True)
        else:
            address, automatic = spec, False
        if address:
            service.set_vip(session, env.id, name, address, automatic=automatic)
    if vips or enabled:
        service.reserve_vips(session, env.id)
    if enabled:
        service.put_settings(session, env.id, {"enabled": True})
    return env.id


def export_environment(session: Session, env_id: int) -> dict[str, Any]:
    env_row = service.get_environment_row(session, env_id)
    env = service.load_environment(session, env_id)
    node_rows = session.scalars(
        select(NodeRow).where(NodeRow.environment_id == env_id).order_by(NodeRow.id)
    ).all()
    addrs = service.node_addresses_public(session, node_rows)
    s = env.settings
    out: dict[str, Any] = {
        "name": env_row.name,
        "ha": env_row.ha,
        "networks": [
            {
                "name": n.name,
                "role": n.role,
                "cidr": n.cidr,
                "gateway": n.gateway,
                "vlan": n.vlan,
                "bridge": n.bridge,
                "ranges": [{"start": r.start, "end": r.end} for r in n.ranges],
            }
            for n in env.networks
        ],
        "vrouter": {
            "enabled": s.enabled,
            "dns_list": list(s.dns_list),
            "ntp_list": list(s.ntp_list),
            "domain": s.domain,
            "nat": s.nat,
            "conntrack_sync": s.conntrack_sync,
            "bridge_kind": s.bridge_kind,
            "host_link_cidr": s.host_link_cidr,
            "namespace": s.namespace,
        },
        "nodes": [
            {
                "hostname": r.hostname,
                "roles": list(r.role_list),
                "status": r.status,
                "addresses": addrs[r.id]["addresses"],
            }
            for r in node_rows
        ],
    }
    if env.vips:
        out["vips"] = {
            v.name: {"address": v.address, "user_defined": v.user_defined} for v in env.vips
        }
    return out
