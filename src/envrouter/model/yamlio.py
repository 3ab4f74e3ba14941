"""An environment described in YAML: import and export (see examples/environment.yaml)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from envrouter.db.tables import EnvironmentRow, NetworkRow, NodeRow
from envrouter.errors import ValidationError
from envrouter.model import rules, service
from envrouter.model.entities import VIP_NETWORK_ROLES
from envrouter.model.rules import validate_bool

TOP_KEYS = {"name", "ha", "networks", "nodes", "vrouter", "vips"}
NETWORK_KEYS = {
    "name",
    "role",
    "cidr",
    "gateway",
    "vlan",
    "bridge",
    "ranges",
    "cidr6",
    "gateway6",
    "ranges6",
}
NODE_KEYS = {"hostname", "roles", "status", "addresses", "addresses6", "namespace_address"}


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
                **(
                    {
                        "cidr6": n.cidr6,
                        "gateway6": n.gateway6,
                        "ranges6": [{"start": r.start, "end": r.end} for r in n.ranges6],
                    }
                    if n.cidr6
                    else {}
                ),
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
            "ipv6": s.ipv6,
            "ipv6_egress": s.ipv6_egress,
        },
        "nodes": [
            {
                "hostname": r.hostname,
                "roles": list(r.role_list),
                "status": r.status,
                "addresses": addrs[r.id]["addresses"],
                **({"addresses6": addrs[r.id]["addresses6"]} if addrs[r.id]["addresses6"] else {}),
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


def _same_address(a: Any, b: Any) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except (TypeError, ValueError):
        return a == b


def apply_environment(session: Session, data: Any) -> int:
    """Make the environment named in `data` match it (created when it does not exist); returns
    its id. Declarative, in one transaction that the caller commits or rolls back:

    - an enabled vrouter is switched off for the duration and then set as the file says, so the
      steps in between may touch the networks it needs (nobody sees that state);
    - networks: those not in the file, or whose role or CIDR differ, are deleted (with their
      addresses), then the others updated and the new ones created;
    - nodes: those not in the file are deleted; roles and status are updated (addresses follow
      the roles); a node whose addresses in the file differ from what it holds is re-created;
    - settings: as the file says, a setting it leaves out goes back to its default;
    - VIPs: as `env import` does; a VIP the file does not mention is kept (it goes only with
      its network)."""
    spec = EnvironmentFile(data)
    name = rules.validate_environment_name(spec.name)
    row = session.scalars(select(EnvironmentRow).where(EnvironmentRow.name == name)).first()
    if row is None:
        return import_environment(session, data)
    env_id = row.id
    if service.get_settings(session, env_id).enabled:
        service.put_settings(session, env_id, {"enabled": False})
    if row.ha != spec.ha:
        service.update_environment(session, env_id, {"ha": spec.ha})
    _apply_networks(session, env_id, spec)
    _apply_nodes(session, env_id, spec)
    defaults = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in asdict(service.VrouterSettings()).items()
        if k != "enabled"
    }
    service.put_settings(session, env_id, {**defaults, **spec.settings})
    _apply_vips(session, env_id, spec)
    if spec.enabled:
        service.put_settings(session, env_id, {"enabled": True})
    return env_id


def _apply_networks(session: Session, env_id: int, spec: EnvironmentFile) -> None:
    rows = {
        n.name: n
        for n in session.scalars(
            select(NetworkRow)
            .where(NetworkRow.environment_id == env_id)
            .options(selectinload(NetworkRow.ranges))
        )
    }
    wanted: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for i, net in enumerate(spec.networks):
        norm = rules.validate_network(
            name=net.get("name"),
            role=net.get("role"),
            cidr=net.get("cidr"),
            gateway=net.get("gateway"),
            vlan=net.get("vlan"),
            bridge=net.get("bridge"),
            ranges=service.range_pairs(net.get("ranges"), f"networks[{i}]"),
            cidr6=net.get("cidr6"),
            gateway6=net.get("gateway6"),
            ranges6=service.range_pairs(net.get("ranges6"), f"networks[{i}]", "ranges6"),
        )
        wanted[norm["name"]] = (net, norm)
    kept: dict[str, NetworkRow] = {}
    for net_name, net_row in rows.items():
        want = wanted.get(net_name)
        # an IPv6 prefix may be added in place (the IPv4 addresses stay); changed or removed,
        # the network is re-created like one whose IPv4 prefix changed
        if (
            want is None
            or (want[1]["role"], want[1]["cidr"]) != (net_row.role, net_row.cidr)
            or (net_row.cidr6 is not None and want[1]["cidr6"] != net_row.cidr6)
        ):
            service.delete_network(session, net_row.id)
        else:
            kept[net_name] = net_row
    for net_name, (net, norm) in wanted.items():
        net_row = kept.get(net_name)
        if net_row is None:
            service.create_network(session, env_id, net)
            continue
        entity = service.network_entity(net_row)
        have = (
            net_row.gateway,
            net_row.vlan,
            net_row.bridge,
            [(r.start, r.end) for r in entity.ranges],
            net_row.gateway6,
            [(r.start, r.end) for r in entity.ranges6],
        )
        want_fields = ("gateway", "vlan", "bridge", "ranges", "gateway6", "ranges6")
        if have != tuple(norm[k] for k in want_fields) or norm["cidr6"] != net_row.cidr6:
            changes: dict[str, Any] = {
                "gateway": norm["gateway"],
                "vlan": norm["vlan"],
                "bridge": norm["bridge"],
                "ranges": [{"start": s, "end": e} for s, e in norm["ranges"]],
            }
            if norm["cidr6"]:
                changes["cidr6"] = norm["cidr6"]
                changes["gateway6"] = norm["gateway6"]
                changes["ranges6"] = [{"start": s, "end": e} for s, e in norm["ranges6"]]
            service.update_network(session, net_row.id, changes)


def _apply_nodes(session: Session, env_id: int, spec: EnvironmentFile) -> None:
    rows = {
        r.hostname: r
        for r in session.scalars(select(NodeRow).where(NodeRow.environment_id == env_id))
    }
    wanted = {rules.validate_hostname(n.get("hostname")): n for n in spec.nodes}
    for hostname, node_row in rows.items():
        if hostname not in wanted:
            service.delete_node(session, node_row.id)
    creates: list[dict[str, Any]] = []
    for hostname, node in wanted.items():
        node_row = rows.get(hostname)
        if node_row is None:
            creates.append(node)
            continue
        obj = f"node {hostname!r}"
        roles = rules.validate_roles(obj, node.get("roles") or [])
        status = node.get("status")
        changes: dict[str, Any] = {}
        if roles != node_row.role_list:
            changes["roles"] = list(roles)
        if status is not None and status != node_row.status:
            changes["status"] = status
        if changes:
            service.update_node(session, node_row.id, changes)
        held = service.node_addresses_public(session, [node_row])[node_row.id]
        differs = False
        for key in ("addresses", "addresses6"):
            given = node.get(key) or {}
            if not isinstance(given, Mapping):
                raise ValidationError(obj, key, "expected {network_name: address}")
            differs = differs or any(
                not _same_address(held[key].get(k), v) for k, v in given.items()
            )
        ns_given = node.get("namespace_address")
        if differs or (
            ns_given is not None and not _same_address(held["namespace_address"], ns_given)
        ):
            service.delete_node(session, node_row.id)
            creates.append(node)
    if creates:
        service.create_nodes(session, env_id, creates)
