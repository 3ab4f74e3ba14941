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
from envrouter.model.rules import validate_bool

TOP_KEYS = {"name", "ha", "networks", "nodes", "vrouter", "vips"}
NETWORK_KEYS = {"name", "role", "cidr", "gateway", "vlan", "bridge", "ranges"}
NODE_KEYS = {"hostname", "roles", "status", "addresses", "namespace_address"}


def _check_keys(obj: str, data: Any, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ValidationError(obj, "(document)", "expected a mapping")
    for key in data:
        if key not in allowed:
            raise ValidationError(
                obj, str(key), f"unknown key; known: {', '.join(sorted(allowed))}"
            )
    return data


def _list(obj: str, value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationError(
            "environment file", obj, f"expected a list, got {type(value).__name__}"
        )
    return value


def _mapping(obj: str, value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(
            "environment file", obj, f"expected a mapping, got {type(value).__name__}"
        )
    return value


class EnvironmentFile:
    """An environment file checked for shape (keys, lists, mappings, switches) before anything
    is written; the values themselves go to the domain rules."""

    def __init__(self, data: Any) -> None:
        data = _check_keys("environment file", data, TOP_KEYS)
        self.name = data.get("name")
        self.ha = validate_bool("environment file", "ha", data.get("ha", False))
        self.networks = [
            dict(_check_keys(f"networks[{i}]", net, NETWORK_KEYS))
            for i, net in enumerate(_list("networks", data.get("networks")))
        ]
        settings = dict(
            _check_keys(
                "vrouter",
                _mapping("vrouter", data.get("vrouter")),
                set(service.VrouterSettings.__dataclass_fields__),
            )
        )
        self.enabled = validate_bool("vrouter", "enabled", settings.pop("enabled", False))
        self.settings = settings
        self.nodes = [
            dict(_check_keys(f"nodes[{i}]", node, NODE_KEYS))
            for i, node in enumerate(_list("nodes", data.get("nodes")))
        ]
        vips = _check_keys("vips", _mapping("vips", data.get("vips")), set(VIP_NETWORK_ROLES))
        self.vips: dict[str, tuple[Any, bool]] = {}  # name -> (address or None, automatic)
        for name, spec in vips.items():
            if isinstance(spec, Mapping):
                _check_keys(f"vips.{name}", spec, {"address", "user_defined"})
                user_defined = validate_bool(
                    f"vips.{name}", "user_defined", spec.get("user_defined", True)
                )
                self.vips[name] = (spec.get("address"), not user_defined)
            else:
                self.vips[name] = (spec, False)


def import_environment(session: Session, data: Any) -> int:
    """Create the environment described by `data` (parsed YAML); returns its id.

    Order: environment, networks, settings (without `enabled`), nodes, user-defined VIPs,
    automatic VIPs (when `vips` lists them or the vrouter is enabled), then `enabled`."""
    spec = EnvironmentFile(data)
    env = service.create_environment(session, spec.name, spec.ha)
    for net in spec.networks:
        service.create_network(session, env.id, net)
    if spec.settings:
        service.put_settings(session, env.id, spec.settings)
    if spec.nodes:
        service.create_nodes(session, env.id, spec.nodes)
    _apply_vips(session, env.id, spec)
    if spec.enabled:
        service.put_settings(session, env.id, {"enabled": True})
    return env.id


def _apply_vips(session: Session, env_id: int, spec: EnvironmentFile) -> None:
    for name, (address, automatic) in spec.vips.items():
        if address is not None:
            service.set_vip(session, env_id, name, address, automatic=automatic)
    if spec.vips or spec.enabled:
        service.reserve_vips(session, env_id)


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
                **(
                    {"namespace_address": addrs[r.id]["namespace_address"]}
                    if addrs[r.id]["namespace_address"]
                    else {}
                ),
            }
            for r in node_rows
        ],
    }
    if env.vips:
        out["vips"] = {
            v.name: {"address": v.address, "user_defined": v.user_defined} for v in env.vips
        }
    return out
