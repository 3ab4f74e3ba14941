"""The write paths and loaders: rules + IPAM + the database.

Every write runs the domain rules (`envrouter.model.rules`) first, then takes the allocation
lock (`lock_environment`) before it reads which addresses are held, so two concurrent requests
can never pick the same free address; the unique constraint (network_id, address) stays as
the last guard. Functions flush but never commit: the caller owns the transaction.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from envrouter.db.tables import (
    ADDRESS_HOST,
    ADDRESS_NAMESPACE,
    ADDRESS_VIP,
    AddressRow,
    EnvironmentRow,
    IpRangeRow,
    NetworkRow,
    NodeRow,
    VipRow,
    VrouterSettingsRow,
)
from envrouter.errors import ConflictError, NotFoundError, ValidationError
from envrouter.model import rules
from envrouter.model.entities import (
    VIP_FAMILIES,
    VIP_MANAGEMENT,
    VIP_MANAGEMENT6,
    VIP_NETWORK_ROLES,
    VIP_PUBLIC,
    Environment,
    IpRange,
    Network,
    Node,
    Vip,
    VrouterSettings,
)
from envrouter.model.ipam import Allocator, check_user_address, ensure_capacity
from envrouter.model.names import CONTROLLER, DEFAULT_NODE_STATUS

# ---------------------------------------------------------------------------------- locking


def lock_environment(session: Session, env_id: int) -> None:
    """Serialise every allocation of one environment.

    PostgreSQL: row locks on the environment and its networks (SELECT ... FOR UPDATE, in id
    order so two writers never deadlock). SQLite: write sessions already began with
    BEGIN IMMEDIATE (see envrouter.db.engine), which holds the database's write lock."""
    if session.get_bind().dialect.name == "sqlite":
        return
    locked = session.execute(
        select(EnvironmentRow.id).where(EnvironmentRow.id == env_id).with_for_update()
    ).all()
    if not locked:  # deleted by a writer we waited for
        raise NotFoundError("environment", env_id)
    session.execute(
        select(NetworkRow.id)
        .where(NetworkRow.environment_id == env_id)
        .order_by(NetworkRow.id)
        .with_for_update()
    ).all()


def _locked(session: Session, cls: type, row_id: int, kind: str) -> Any:
    """The row `row_id` of `cls` (a table with environment_id) read again after its
    environment's lock is held: a writer we waited for may have changed or deleted it."""
    row = session.get(cls, row_id)
    if row is None:
        raise NotFoundError(kind, row_id)
    lock_environment(session, row.environment_id)
    if session.get_bind().dialect.name != "sqlite":
        row = session.get(cls, row_id, populate_existing=True)
        if row is None:
            raise NotFoundError(kind, row_id)
    return row


def _locked_environment(session: Session, env_id: int) -> EnvironmentRow:
    get_environment_row(session, env_id)
    lock_environment(session, env_id)
    row = session.get(EnvironmentRow, env_id, populate_existing=True)
    if row is None:
        raise NotFoundError("environment", env_id)
    return row


# ------------------------------------------------------------------------------------ rules


Problem = tuple[str, str, str]


def environment_problems(session: Session, env_id: int) -> set[Problem]:
    """Every rule that spans objects, on the environment as this session sees it (pending
    changes flushed): what the enabled vrouter needs of the networks, and which nodes hold an
    address their roles do not allow. Two queries."""
    settings = session.get(VrouterSettingsRow, env_id)
    out: set[Problem] = set()
    nets = session.execute(
        select(
            NetworkRow.name,
            NetworkRow.role,
            NetworkRow.gateway,
            NetworkRow.cidr,
            NetworkRow.cidr6,
            NetworkRow.gateway6,
        ).where(NetworkRow.environment_id == env_id)
    ).all()
    if settings is not None and settings.enabled:
        out.update(
            rules.vrouter_requirements(
                True,
                [(n.name, n.role, n.gateway, n.cidr) for n in nets],
                ipv6=bool(settings.ipv6),
                networks6=[(n.name, n.role, n.cidr6, n.gateway6) for n in nets],
            )
        )
    if any(n.role == "public" for n in nets):
        held: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for hostname, roles, net_name, net_role in session.execute(
            select(NodeRow.hostname, NodeRow.roles, NetworkRow.name, NetworkRow.role)
            .join(AddressRow, AddressRow.node_id == NodeRow.id)
            .join(NetworkRow, NetworkRow.id == AddressRow.network_id)
            .where(
                NodeRow.environment_id == env_id,
                NetworkRow.role == "public",
                AddressRow.kind == ADDRESS_HOST,
            )
        ).all():
            held.setdefault((hostname, roles), []).append((net_name, net_role))
        for (hostname, roles), addrs in held.items():
            out.update(rules.node_address_problems(hostname, roles.split(","), addrs))
    return out


def check_rules(session: Session, env_id: int, before: set[Problem], obj: str, field: str) -> None:
    """Run by every write path after its changes: refuse a write that breaks a rule that held
    before it (a rule broken already, by an older version, does not block unrelated writes).
    The error names what the request touched (`obj`, `field`) and says where the cause is."""
    session.flush()
    new = sorted(environment_problems(session, env_id) - before)
    if not new:
        return
    p_obj, p_field, reason = new[0]
    if p_obj == "environment" or p_obj == obj:
        where = ""
    else:
        where = f" ({p_obj}: {p_field})"
    raise ConflictError(
        obj,
        field,
        f"{reason}{where}, and the vrouter is enabled: disable it first "
        "(vrouter settings enabled: false)"
        if "vrouter" in reason
        else f"{reason}{where}",
    )


def bump_revision(session: Session, env_id: int) -> None:
    """Every write to an environment bumps its revision: cached documents of older revisions
    are never served again."""
    session.execute(
        update(EnvironmentRow)
        .where(EnvironmentRow.id == env_id)
        .values(revision=EnvironmentRow.revision + 1)
    )


def _flush(session: Session, obj: str, field: str) -> None:
    try:
        session.flush()
    except IntegrityError as exc:
        raise ConflictError(obj, field, f"conflicts with what is stored: {exc.orig}") from exc


# ---------------------------------------------------------------------------------- loading


Table = TypeVar("Table")
E = TypeVar("E")


def _found(kind: str, key: object, row: Table | None) -> Table:
    if row is None:
        raise NotFoundError(kind, key)
    return row


def get_environment_row(session: Session, env_id: int) -> EnvironmentRow:
    return _found("environment", env_id, session.get(EnvironmentRow, env_id))


def environment_by_name(session: Session, name: str) -> EnvironmentRow:
    return _found("environment", name, session.scalars(
        select(EnvironmentRow).where(EnvironmentRow.name == name)).first())


def get_network_row(session: Session, network_id: int) -> NetworkRow:
    return _found("network", network_id, session.get(NetworkRow, network_id))


def get_node_row(session: Session, node_id: int) -> NodeRow:
    return _found("node", node_id, session.get(NodeRow, node_id))


def node_by_hostname(session: Session, hostname: str) -> NodeRow:
    return _found("node", hostname, session.scalars(
        select(NodeRow).where(NodeRow.hostname == hostname.lower())).first())


def _is_ipv6(address: str) -> bool:
    return ":" in address


def _from_columns(cls: type[E], row: object, **given: object) -> E:
    """The entity `cls` (a dataclass) of a row: each field not `given` is the row's column of
    the same name."""
    columns = {f.name: getattr(row, f.name) for f in dataclasses.fields(cls)
               if f.name not in given}
    return cls(**columns, **given)


def network_entity(row: NetworkRow) -> Network:
    ranges = [IpRange(r.start_address, r.end_address) for r in row.ranges]
    return _from_columns(Network, row, ranges=tuple(r for r in ranges if not _is_ipv6(r.start)),
                         ranges6=tuple(r for r in ranges if _is_ipv6(r.start)))


def _families(net: NetworkRow | Network) -> tuple[int, ...]:
    """The address families a network hands out: IPv4, and IPv6 when it has an IPv6 prefix."""
    return (4, 6) if net.cidr6 else (4,)


def _settings_entity(env: EnvironmentRow, row: VrouterSettingsRow | None) -> VrouterSettings:
    base = {
        "dns_list": tuple(json.loads(env.dns_list or "[]")),
        "ntp_list": tuple(json.loads(env.ntp_list or "[]")),
        "domain": env.domain,
    }
    if row is None:
        return VrouterSettings(**base)
    return _from_columns(VrouterSettings, row, ipv6=bool(row.ipv6), **base)


def network_rows(session: Session, env_id: int) -> list[NetworkRow]:
    """The environment's networks with their ranges (one query each), by id."""
    return list(session.scalars(
        select(NetworkRow)
        .where(NetworkRow.environment_id == env_id)
        .options(selectinload(NetworkRow.ranges))
        .order_by(NetworkRow.id)
    ).all())


def load_environment(session: Session, env_id: int) -> Environment:
    """The environment without its nodes, in a constant number of queries."""
    env = get_environment_row(session, env_id)
    nets = network_rows(session, env_id)
    settings = session.get(VrouterSettingsRow, env_id)
    vip_rows = session.execute(
        select(VipRow, AddressRow.address)
        .join(AddressRow, AddressRow.vip_id == VipRow.id)
        .where(VipRow.environment_id == env_id)
        .order_by(VipRow.id)
    ).all()
    return Environment(
        id=env.id,
        name=env.name,
        ha=env.ha,
        networks=tuple(network_entity(n) for n in nets),
        settings=_settings_entity(env, settings),
        vips=tuple(
            Vip(v.name, v.network_id, v.namespace, address, v.user_defined)
            for v, address in vip_rows
        ),
    )


def _node_entities(session: Session, node_rows: Sequence[NodeRow]) -> list[Node]:
    ids = [n.id for n in node_rows]
    if not ids:
        return []
    rows = session.execute(
        select(
            AddressRow.node_id, AddressRow.network_id, AddressRow.address, AddressRow.kind
        ).where(AddressRow.node_id.in_(ids))
    ).all()
    return _nodes_with_addresses(node_rows, rows)


def _nodes_with_addresses(
    node_rows: Sequence[NodeRow], address_rows: Iterable[tuple[int, int, str, str]]
) -> list[Node]:
    """Nodes from their rows and their address rows (node id, network id, address, kind)."""
    host: dict[int, dict[int, str]] = {n.id: {} for n in node_rows}
    host6: dict[int, dict[int, str]] = {n.id: {} for n in node_rows}
    namespace: dict[int, str] = {}
    for node_id, network_id, address, kind in address_rows:
        if kind == ADDRESS_NAMESPACE:
            namespace[node_id] = address
        elif _is_ipv6(address):
            host6[node_id][network_id] = address
        else:
            host[node_id][network_id] = address
    return [
        Node(
            id=n.id,
            hostname=n.hostname,
            roles=n.role_list,
            status=n.status,
            addresses=host[n.id],
            namespace_address=namespace.get(n.id),
            addresses6=host6[n.id],
        )
        for n in node_rows
    ]


def load_nodes(session: Session, env_id: int) -> list[Node]:
    """Every node of the environment with its addresses: two queries whatever the count."""
    rows = session.scalars(
        select(NodeRow).where(NodeRow.environment_id == env_id).order_by(NodeRow.id)
    ).all()
    if not rows:
        return []
    addr_rows = session.execute(
        select(AddressRow.node_id, AddressRow.network_id, AddressRow.address, AddressRow.kind)
        .join(NodeRow, NodeRow.id == AddressRow.node_id)
        .where(NodeRow.environment_id == env_id)
    ).all()
    return _nodes_with_addresses(rows, addr_rows)


def load_controllers(session: Session, env_id: int) -> list[Node]:
    rows = session.scalars(
        select(NodeRow)
        .where(NodeRow.environment_id == env_id, NodeRow.roles.like("%controller%"))
        .order_by(NodeRow.id)
    ).all()
    return _node_entities(session, [r for r in rows if "controller" in r.role_list])


def load_node(session: Session, row: NodeRow) -> Node:
    return _node_entities(session, [row])[0]


def node_document(session: Session, node_row: NodeRow):  # noqa: ANN201
    """One node's document: a constant number of queries (the environment, the node, the
    controllers), then the pure builder."""
    from envrouter.model.documents import build_document

    env = load_environment(session, node_row.environment_id)
    node = load_node(session, node_row)
    controllers = load_controllers(session, node_row.environment_id)
    return build_document(env, node, controllers)


def environment_documents(session: Session, env_id: int):  # noqa: ANN201
    from envrouter.model.documents import build_documents

    env = load_environment(session, env_id)
    return build_documents(env, load_nodes(session, env_id))


def _holders(session: Session, env_id: int) -> dict[int, dict[str, str]]:
    """network id -> {address: who holds it} for the whole environment."""
    rows = session.execute(
        select(
            AddressRow.network_id,
            AddressRow.address,
            AddressRow.kind,
            NodeRow.hostname,
            VipRow.name,
        )
        .join(NetworkRow, NetworkRow.id == AddressRow.network_id)
        .outerjoin(NodeRow, NodeRow.id == AddressRow.node_id)
        .outerjoin(VipRow, VipRow.id == AddressRow.vip_id)
        .where(NetworkRow.environment_id == env_id)
    ).all()
    out: dict[int, dict[str, str]] = {}
    for network_id, address, kind, hostname, vip_name in rows:
        if kind == ADDRESS_VIP:
            who = f"VIP {vip_name!r}"
        elif kind == ADDRESS_NAMESPACE:
            who = f"the vrouter namespace of node {hostname!r}"
        else:
            who = f"node {hostname!r}"
        out.setdefault(network_id, {})[address] = who
    return out


# ------------------------------------------------------------------------------ environments


def create_environment(session: Session, name: Any, ha: Any = False) -> EnvironmentRow:
    name = rules.validate_environment_name(name)
    ha = rules.validate_bool("environment", "ha", ha)
    if session.scalars(select(EnvironmentRow.id).where(EnvironmentRow.name == name)).first():
        raise ConflictError(f"environment {name!r}", "name", "an environment has this name")
    row = EnvironmentRow(name=name, ha=ha, dns_list="[]", ntp_list="[]", domain=None)
    session.add(row)
    _flush(session, f"environment {name!r}", "name")
    return row


def update_environment(session: Session, env_id: int, changes: Mapping[str, Any]) -> EnvironmentRow:
    row = _locked_environment(session, env_id)
    bump_revision(session, env_id)
    if changes.get("name") is not None:
        name = rules.validate_environment_name(changes["name"])
        other = session.scalars(
            select(EnvironmentRow.id).where(
                EnvironmentRow.name == name, EnvironmentRow.id != env_id
            )
        ).first()
        if other:
            raise ConflictError(f"environment {name!r}", "name", "an environment has this name")
        row.name = name
    if changes.get("ha") is not None:
        row.ha = rules.validate_bool(f"environment {row.name!r}", "ha", changes["ha"])
    _flush(session, f"environment {row.name!r}", "name")
    return row


def delete_environment(session: Session, env_id: int) -> None:
    """Delete the environment with everything in it (networks, nodes, addresses, VIPs)."""
    row = _locked_environment(session, env_id)
    session.delete(row)
    session.flush()


def environment_counts(session: Session, env_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    ids = list(env_ids)
    out = {i: {"networks": 0, "nodes": 0, "vips": 0} for i in ids}
    if not ids:
        return out
    for table, key in ((NetworkRow, "networks"), (NodeRow, "nodes"), (VipRow, "vips")):
        for env_id, count in session.execute(
            select(table.environment_id, func.count())
            .where(table.environment_id.in_(ids))
            .group_by(table.environment_id)
        ).all():
            out[env_id][key] = count
    return out


# ---------------------------------------------------------------------------------- networks


def range_pairs(ranges: Any, obj: str, field: str = "ranges") -> list[tuple[Any, Any]]:
    if ranges is None:
        return []
    if not isinstance(ranges, (list, tuple)):
        raise ValidationError(obj, field, "expected a list of {start, end}")
    out = []
    for i, r in enumerate(ranges):
        if isinstance(r, Mapping):
            out.append((r.get("start"), r.get("end")))
        elif hasattr(r, "start") and hasattr(r, "end"):
            out.append((r.start, r.end))
        else:
            raise ValidationError(obj, f"{field}[{i}]", "expected {start, end}")
    return out


def validated_network(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A network as given (the API's body, an environment file's entry), validated; `where`
    names it in the errors about its ranges."""
    return rules.validate_network(
        name=data.get("name"),
        role=data.get("role"),
        cidr=data.get("cidr"),
        gateway=data.get("gateway"),
        vlan=data.get("vlan"),
        bridge=data.get("bridge"),
        ranges=range_pairs(data.get("ranges"), where),
        cidr6=data.get("cidr6"),
        gateway6=data.get("gateway6"),
        ranges6=range_pairs(data.get("ranges6"), where, "ranges6"),
    )


def _needs_address(net_role: str, roles: Sequence[str]) -> bool:
    """Every node gets an address on each network except public; controllers on public too."""
    return net_role != "public" or "controller" in roles


def create_network(session: Session, env_id: int, data: Mapping[str, Any]) -> NetworkRow:
    env = _locked_environment(session, env_id)
    before = environment_problems(session, env_id)
    bump_revision(session, env_id)
    fields = validated_network(data, f"network {data.get('name')!r}")
    obj = f"network {fields['name']!r}"
    existing = session.scalars(select(NetworkRow).where(NetworkRow.environment_id == env_id)).all()
    for other in existing:
        if other.name == fields["name"]:
            raise ConflictError(obj, "name", f"environment {env.name!r} has a network of this name")
        if fields["role"] in rules.SINGLE_ROLES and other.role == fields["role"]:
            raise ConflictError(
                obj,
                "role",
                f"environment {env.name!r} already has a {fields['role']} network "
                f"({other.name!r}); use role 'other' for more",
            )
    rules.check_networks_disjoint(obj, fields["cidr"], [(o.name, o.cidr) for o in existing])
    if fields["cidr6"]:
        rules.check_networks_disjoint(
            obj, fields["cidr6"], [(o.name, o.cidr6) for o in existing], "cidr6"
        )
    _check_host_link_clear(session, env_id, fields["cidr"], obj, "cidr")
    row = NetworkRow(
        environment_id=env_id,
        name=fields["name"],
        role=fields["role"],
        cidr=fields["cidr"],
        gateway=fields["gateway"],
        vlan=fields["vlan"],
        bridge=fields["bridge"],
        cidr6=fields["cidr6"],
        gateway6=fields["gateway6"],
        ranges=_range_rows(fields),
    )
    session.add(row)
    _flush(session, obj, "name")
    # Nodes that exist already get their address on the new network.
    for family in _families(row):
        _give_existing_nodes_addresses(session, row, family, obj)
    check_rules(session, env_id, before, obj, "role")
    return row


def _range_rows(fields: Mapping[str, Any]) -> list[IpRangeRow]:
    return [
        IpRangeRow(start_address=s, end_address=e)
        for s, e in [*fields["ranges"], *fields["ranges6"]]
    ]


def _give_existing_nodes_addresses(
    session: Session, row: NetworkRow, family: int, obj: str
) -> None:
    """Every node of the environment that needs an address of `family` on the network `row`
    and has none gets one (a network just created, or an IPv6 prefix just added)."""
    nodes = session.scalars(
        select(NodeRow)
        .where(NodeRow.environment_id == row.environment_id)
        .options(selectinload(NodeRow.addresses))
    ).all()
    wanting = [
        n
        for n in nodes
        if _needs_address(row.role, n.role_list)
        and not any(
            a.network_id == row.id
            and a.kind == ADDRESS_HOST
            and _is_ipv6(a.address) == (family == 6)
            for a in n.addresses
        )
    ]
    if not wanting:
        return
    pool = network_entity(row).pool(family)
    used = list(_holders(session, row.environment_id).get(row.id, {}))
    ensure_capacity(pool, used, len(wanting))
    alloc = Allocator(pool, used)
    for n in wanting:
        session.add(
            AddressRow(network_id=row.id, node_id=n.id, address=alloc.take(), kind=ADDRESS_HOST)
        )
    _flush(session, obj, "ranges6" if family == 6 else "ranges")


def update_network(session: Session, network_id: int, changes: Mapping[str, Any]) -> NetworkRow:
    row = _locked(session, NetworkRow, network_id, "network")
    before = environment_problems(session, row.environment_id)
    bump_revision(session, row.environment_id)
    obj = f"network {row.name!r}"
    for immutable in ("role", "cidr"):
        value = changes.get(immutable)
        if value is not None and value != getattr(row, immutable):
            raise ValidationError(
                obj, immutable, "cannot be changed; delete and recreate the network"
            )
    if "cidr6" in changes and row.cidr6 is not None and changes["cidr6"] != row.cidr6:
        raise ValidationError(
            obj, "cidr6", "cannot be changed once set; delete and recreate the network"
        )
    entity = network_entity(row)
    merged = {
        "name": row.name,
        "role": row.role,
        "cidr": row.cidr,
        "gateway": row.gateway,
        "vlan": row.vlan,
        "bridge": row.bridge,
        "ranges": [(r.start, r.end) for r in entity.ranges],
        "cidr6": row.cidr6,
        "gateway6": row.gateway6,
        "ranges6": [(r.start, r.end) for r in entity.ranges6],
    }
    for key in ("name", "gateway", "vlan", "bridge", "cidr6", "gateway6"):
        if key in changes:
            merged[key] = changes[key]
    for key in ("ranges", "ranges6"):
        if changes.get(key) is not None:
            merged[key] = range_pairs(changes[key], obj, key)
    fields = rules.validate_network(**merged)
    added6 = fields["cidr6"] is not None and row.cidr6 is None
    obj = f"network {fields['name']!r}"
    if fields["name"] != row.name:
        clash = session.scalars(
            select(NetworkRow.id).where(
                NetworkRow.environment_id == row.environment_id,
                NetworkRow.name == fields["name"],
            )
        ).first()
        if clash:
            raise ConflictError(obj, "name", "another network of the environment has this name")
    if added6:
        others = session.scalars(
            select(NetworkRow).where(
                NetworkRow.environment_id == row.environment_id, NetworkRow.id != row.id
            )
        ).all()
        rules.check_networks_disjoint(
            obj, fields["cidr6"], [(o.name, o.cidr6) for o in others], "cidr6"
        )
    for gw_field in ("gateway", "gateway6"):
        if fields[gw_field] and fields[gw_field] != getattr(row, gw_field):
            holder = _holders(session, row.environment_id).get(row.id, {}).get(fields[gw_field])
            if holder:
                raise ConflictError(obj, gw_field, f"{fields[gw_field]} is held by {holder}")
    row.name = fields["name"]
    row.gateway = fields["gateway"]
    row.vlan = fields["vlan"]
    row.bridge = fields["bridge"]
    row.cidr6 = fields["cidr6"]
    row.gateway6 = fields["gateway6"]
    if changes.get("ranges") is not None or changes.get("ranges6") is not None:
        row.ranges = _range_rows(fields)
    _flush(session, obj, "name")
    if added6:
        _give_existing_nodes_addresses(session, row, 6, obj)
    touched = next(
        (
            k
            for k in ("cidr6", "gateway", "gateway6", "ranges", "ranges6", "bridge", "vlan", "name")
            if k in changes
        ),
        "name",
    )
    check_rules(session, row.environment_id, before, obj, touched)
    return row


def delete_network(session: Session, network_id: int) -> None:
    """Delete a network with every address on it (nodes', namespaces', a VIP's). Refused while
    the enabled vrouter needs it (the management network, the public network)."""
    row = _locked(session, NetworkRow, network_id, "network")
    _delete_checked(session, row, f"network {row.name!r}", "role")


def _delete_checked(session: Session, row: NetworkRow | NodeRow, obj: str, field: str) -> None:
    """Delete a row of an environment (a new revision), refused (`obj`, `field`) if that
    breaks a rule the environment kept."""
    env_id = row.environment_id
    before = environment_problems(session, env_id)
    bump_revision(session, env_id)
    session.delete(row)
    session.flush()
    # the rows that go with it (database cascade: addresses, a network's VIPs): forget them
    session.expire_all()
    check_rules(session, env_id, before, obj, field)


# ------------------------------------------------------------------------------------- nodes


def _vips_reserved(session: Session, env_id: int) -> bool:
    return (
        session.scalars(
            select(VipRow.id).where(VipRow.environment_id == env_id, VipRow.name == VIP_MANAGEMENT)
        ).first()
        is not None
    )


def create_nodes(
    session: Session, env_id: int, specs: Sequence[Mapping[str, Any]]
) -> list[NodeRow]:
    """Create nodes and allocate their addresses in one locked transaction (also the bulk
    path: one read of the held addresses whatever the count)."""
    env = _locked_environment(session, env_id)
    before = environment_problems(session, env_id)
    bump_revision(session, env_id)
    networks = session.scalars(
        select(NetworkRow)
        .where(NetworkRow.environment_id == env_id)
        .options(selectinload(NetworkRow.ranges))
        .order_by(NetworkRow.id)
    ).all()
    by_name = {n.name: n for n in networks}
    mgmt = next((n for n in networks if n.role == "management"), None)
    holders = _holders(session, env_id)
    reserved = _vips_reserved(session, env_id)

    # fixed and needed addresses are keyed by (network id, family)
    prepared: list[tuple[str, tuple[str, ...], str, dict[tuple[int, int], str]]] = []
    fixed_ns: dict[str, str] = {}
    seen: set[str] = set()
    for spec in specs:
        if not isinstance(spec, Mapping):
            raise ValidationError("node", "(body)", "expected an object")
        hostname = rules.validate_hostname(spec.get("hostname"))
        obj = f"node {hostname!r}"
        if hostname in seen:
            raise ConflictError(obj, "hostname", "listed twice")
        seen.add(hostname)
        roles = rules.validate_roles(obj, _given(spec, "roles", []))
        status = rules.validate_status(obj, _given(spec, "status", DEFAULT_NODE_STATUS))
        fixed: dict[tuple[int, int], str] = {}
        for family, key in ((4, "addresses"), (6, "addresses6")):
            given = _given(spec, key, {})
            if not isinstance(given, Mapping):
                raise ValidationError(obj, key, "expected {network_name: address}")
            for net_name, address in given.items():
                field = f"{key}.{net_name}"
                net = by_name.get(net_name)
                if net is None:
                    raise ValidationError(
                        obj, field, f"environment {env.name!r} has no such network"
                    )
                if family == 6 and not net.cidr6:
                    raise ValidationError(
                        obj, field, f"network {net_name!r} has no IPv6 prefix (cidr6)"
                    )
                for p_obj, _p_field, reason in rules.node_address_problems(
                    hostname, roles, [(net.name, net.role)]
                ):
                    raise ValidationError(
                        p_obj,
                        field,
                        f"{reason}: give the node the role controller, or leave it out",
                    )
                held = holders.setdefault(net.id, {})
                text = check_user_address(
                    network_entity(net).pool(family), obj, field, address, held
                )
                held[text] = obj
                fixed[(net.id, family)] = text
        ns_given = _given(spec, "namespace_address", None)
        if ns_given is not None:
            if CONTROLLER not in roles:
                raise ValidationError(
                    obj, "namespace_address", "only controllers have a vrouter namespace address"
                )
            if mgmt is None:
                raise ValidationError(
                    obj, "namespace_address", f"environment {env.name!r} has no management network"
                )
            held = holders.setdefault(mgmt.id, {})
            ns_text = check_user_address(
                network_entity(mgmt).pool(), obj, "namespace_address", ns_given, held
            )
            held[ns_text] = f"the vrouter namespace of {obj}"
            fixed_ns[hostname] = ns_text
        prepared.append((hostname, roles, status, fixed))
    if seen:
        taken = session.scalars(select(NodeRow.hostname).where(NodeRow.hostname.in_(seen))).all()
        if taken:
            raise ConflictError(f"node {taken[0]!r}", "hostname", "a node has this hostname")

    # How many addresses each network must hand out, checked before taking any.
    need: dict[tuple[int, int], int] = {}
    for _hostname, roles, _status, fixed in prepared:
        for net in networks:
            for family in _families(net):
                if (net.id, family) not in fixed and _needs_address(net.role, roles):
                    need[(net.id, family)] = need.get((net.id, family), 0) + 1
        if reserved and mgmt is not None and CONTROLLER in roles and _hostname not in fixed_ns:
            need[(mgmt.id, 4)] = need.get((mgmt.id, 4), 0) + 1
    allocators: dict[tuple[int, int], Allocator] = {}
    for net in networks:
        for family in _families(net):
            if need.get((net.id, family)):
                pool = network_entity(net).pool(family)
                used = list(holders.get(net.id, {}))
                ensure_capacity(pool, used, need[(net.id, family)])
                allocators[(net.id, family)] = Allocator(pool, used)

    rows: list[NodeRow] = []
    for hostname, roles, status, fixed in prepared:
        node = NodeRow(
            environment_id=env_id, hostname=hostname, roles=",".join(roles), status=status
        )
        addresses = []
        for net in networks:
            for family in _families(net):
                if (net.id, family) in fixed:
                    address = fixed[(net.id, family)]
                elif _needs_address(net.role, roles):
                    address = allocators[(net.id, family)].take()
                else:
                    continue
                addresses.append(
                    AddressRow(network_id=net.id, address=address, kind=ADDRESS_HOST)
                )
        if mgmt is not None and hostname in fixed_ns:
            addresses.append(
                AddressRow(network_id=mgmt.id, address=fixed_ns[hostname], kind=ADDRESS_NAMESPACE)
            )
        elif reserved and mgmt is not None and CONTROLLER in roles:
            addresses.append(
                AddressRow(
                    network_id=mgmt.id,
                    address=allocators[(mgmt.id, 4)].take(),
                    kind=ADDRESS_NAMESPACE,
                )
            )
        node.addresses = addresses
        rows.append(node)
    session.add_all(rows)
    _flush(session, "node", "addresses")
    check_rules(session, env_id, before, "node", "addresses")
    return rows


def _given(spec: Mapping[str, Any], key: str, default: Any) -> Any:
    """A key of a node spec: absent or null is the default; anything else goes to the rules
    as it is (no truthiness: an empty string is refused, not replaced)."""
    value = spec.get(key)
    return default if value is None else value


def create_node(session: Session, env_id: int, spec: Mapping[str, Any]) -> NodeRow:
    return create_nodes(session, env_id, [spec])[0]


def update_node(session: Session, node_id: int, changes: Mapping[str, Any]) -> NodeRow:
    row = _locked(session, NodeRow, node_id, "node")
    before = environment_problems(session, row.environment_id)
    bump_revision(session, row.environment_id)
    obj = f"node {row.hostname!r}"
    if changes.get("hostname") is not None:
        hostname = rules.validate_hostname(changes["hostname"])
        if hostname != row.hostname:
            clash = session.scalars(select(NodeRow.id).where(NodeRow.hostname == hostname)).first()
            if clash:
                raise ConflictError(f"node {hostname!r}", "hostname", "a node has this hostname")
            row.hostname = hostname
    if changes.get("status") is not None:
        row.status = rules.validate_status(obj, changes["status"])
    if changes.get("roles") is not None:
        roles = rules.validate_roles(obj, changes["roles"])
        row.roles = ",".join(roles)
        _ensure_node_addresses(session, row)
    _flush(session, obj, "hostname")
    touched = next((k for k in ("roles", "status", "hostname") if k in changes), "hostname")
    check_rules(session, row.environment_id, before, obj, touched)
    return row


def _ensure_node_addresses(session: Session, row: NodeRow) -> None:
    """After a role change: allocate what the node now needs; a node that is no longer a
    controller gives back its public address and its vrouter namespace address."""
    env_id = row.environment_id
    networks = session.scalars(
        select(NetworkRow)
        .where(NetworkRow.environment_id == env_id)
        .options(selectinload(NetworkRow.ranges))
    ).all()
    roles = row.role_list
    have = {(a.network_id, a.kind, 6 if _is_ipv6(a.address) else 4) for a in row.addresses}
    holders = _holders(session, env_id)
    reserved = _vips_reserved(session, env_id)
    for net in networks:
        for family in _families(net):
            wants = []
            if (net.id, ADDRESS_HOST, family) not in have and _needs_address(net.role, roles):
                wants.append(ADDRESS_HOST)
            if (
                family == 4
                and net.role == "management"
                and reserved
                and "controller" in roles
                and (net.id, ADDRESS_NAMESPACE, 4) not in have
            ):
                wants.append(ADDRESS_NAMESPACE)
            if not wants:
                continue
            pool = network_entity(net).pool(family)
            used = list(holders.get(net.id, {}))
            ensure_capacity(pool, used, len(wants))
            alloc = Allocator(pool, used)
            for kind in wants:
                row.addresses.append(
                    AddressRow(network_id=net.id, address=alloc.take(), kind=kind)
                )
    if CONTROLLER not in roles:
        public_ids = {n.id for n in networks if n.role == "public"}
        for addr in list(row.addresses):
            if addr.kind == ADDRESS_NAMESPACE or (
                addr.kind == ADDRESS_HOST and addr.network_id in public_ids
            ):
                row.addresses.remove(addr)


def delete_node(session: Session, node_id: int) -> None:
    """Delete a node; its addresses go with it (released)."""
    row = _locked(session, NodeRow, node_id, "node")
    _delete_checked(session, row, f"node {row.hostname!r}", "id")


def node_addresses_public(session: Session, rows: Sequence[NodeRow]) -> dict[int, dict[str, Any]]:
    """{node id: {"addresses": {network name: address}, "addresses6": {...},
    "namespace_address": ...}} in one query."""
    ids = [r.id for r in rows]
    out: dict[int, dict[str, Any]] = {
        i: {"addresses": {}, "addresses6": {}, "namespace_address": None} for i in ids
    }
    if not ids:
        return out
    for node_id, net_name, address, kind in session.execute(
        select(AddressRow.node_id, NetworkRow.name, AddressRow.address, AddressRow.kind)
        .join(NetworkRow, NetworkRow.id == AddressRow.network_id)
        .where(AddressRow.node_id.in_(ids))
        .order_by(NetworkRow.id)
    ).all():
        if kind == ADDRESS_NAMESPACE:
            out[node_id]["namespace_address"] = address
        elif _is_ipv6(address):
            out[node_id]["addresses6"][net_name] = address
        else:
            out[node_id]["addresses"][net_name] = address
    return out


# -------------------------------------------------------------------------- vrouter settings


def get_settings(session: Session, env_id: int) -> VrouterSettings:
    env = get_environment_row(session, env_id)
    return _settings_entity(env, session.get(VrouterSettingsRow, env_id))


def _check_host_link_clear(session: Session, env_id: int, cidr: str, obj: str, field: str) -> None:
    import ipaddress

    row = session.get(VrouterSettingsRow, env_id)
    if row is None:
        return
    link = ipaddress.ip_network(row.host_link_cidr)
    net = ipaddress.ip_network(cidr)
    if net.version == link.version and net.overlaps(link):
        raise ValidationError(obj, field, f"{net} overlaps the vrouter host link {link}")


def put_settings(session: Session, env_id: int, changes: Mapping[str, Any]) -> VrouterSettings:
    """Merge `changes` into the settings, validate the whole, store. Reserves nothing."""
    import ipaddress

    env = _locked_environment(session, env_id)
    before = environment_problems(session, env_id)
    bump_revision(session, env_id)
    current = _settings_entity(env, session.get(VrouterSettingsRow, env_id, populate_existing=True))
    known = set(VrouterSettings.__dataclass_fields__)
    for key in changes:
        if key not in known:
            raise ValidationError("vrouter settings", key, "unknown setting")
    merged = {k: getattr(current, k) for k in known}
    merged.update({k: v for k, v in changes.items()})
    obj = "vrouter settings"
    new = VrouterSettings(
        enabled=rules.validate_bool(obj, "enabled", merged["enabled"]),
        dns_list=tuple(
            rules.validate_upstream_list("dns_list", merged["dns_list"], allow_names=False)
        ),
        ntp_list=tuple(
            rules.validate_upstream_list("ntp_list", merged["ntp_list"], allow_names=True)
        ),
        domain=rules.validate_domain(merged["domain"]),
        nat=rules.validate_bool(obj, "nat", merged["nat"]),
        conntrack_sync=rules.validate_bool(obj, "conntrack_sync", merged["conntrack_sync"]),
        bridge_kind=rules.validate_bridge_kind(merged["bridge_kind"]),
        host_link_cidr=rules.validate_host_link_cidr(merged["host_link_cidr"]),
        namespace=rules.validate_namespace(obj, merged["namespace"]),
        ipv6=rules.validate_ipv6(merged["ipv6"]),
        ipv6_egress=rules.validate_ipv6_egress(merged["ipv6_egress"]),
    )
    networks = session.scalars(select(NetworkRow).where(NetworkRow.environment_id == env_id)).all()
    link = ipaddress.ip_network(new.host_link_cidr)
    for net in networks:
        other = ipaddress.ip_network(net.cidr)
        if other.version == 4 and other.overlaps(link):
            raise ValidationError(
                obj, "host_link_cidr", f"{link} overlaps network {net.name!r} ({other})"
            )
    if new.enabled and (not current.enabled or (new.ipv6 and not current.ipv6)):
        field = "enabled" if not current.enabled else "ipv6"
        for p_obj, p_field, reason in rules.vrouter_requirements(
            True,
            [(n.name, n.role, n.gateway, n.cidr) for n in networks],
            ipv6=new.ipv6,
            networks6=[(n.name, n.role, n.cidr6, n.gateway6) for n in networks],
        ):
            where = "" if p_obj == "environment" else f" ({p_obj}: {p_field}): set it first"
            raise ValidationError(obj, field, f"{reason}{where}")
    env.dns_list = json.dumps(list(new.dns_list))
    env.ntp_list = json.dumps(list(new.ntp_list))
    env.domain = new.domain
    row = session.get(VrouterSettingsRow, env_id)
    if row is None:
        row = VrouterSettingsRow(environment_id=env_id)
        session.add(row)
    row.enabled = new.enabled
    row.nat = new.nat
    row.conntrack_sync = new.conntrack_sync
    row.bridge_kind = new.bridge_kind
    row.host_link_cidr = new.host_link_cidr
    row.namespace = new.namespace
    row.ipv6 = new.ipv6
    row.ipv6_egress = new.ipv6_egress
    for vip in session.scalars(select(VipRow).where(VipRow.environment_id == env_id)).all():
        vip.namespace = new.namespace
    session.flush()
    touched = next(iter(changes), "enabled")
    check_rules(session, env_id, before, obj, touched)
    return new


# -------------------------------------------------------------------------------------- VIPs


def list_vips(session: Session, env_id: int) -> list[dict[str, Any]]:
    get_environment_row(session, env_id)
    rows = session.execute(
        select(
            VipRow.name, NetworkRow.name, VipRow.namespace, AddressRow.address, VipRow.user_defined
        )
        .join(NetworkRow, NetworkRow.id == VipRow.network_id)
        .join(AddressRow, AddressRow.vip_id == VipRow.id)
        .where(VipRow.environment_id == env_id)
        .order_by(VipRow.id)
    ).all()
    return [
        {"name": n, "network": net, "namespace": ns, "address": a, "user_defined": u}
        for n, net, ns, a, u in rows
    ]


def _vip_network(session: Session, env_id: int, name: str) -> NetworkRow:
    role = VIP_NETWORK_ROLES[name]
    net = session.scalars(
        select(NetworkRow)
        .where(NetworkRow.environment_id == env_id, NetworkRow.role == role)
        .options(selectinload(NetworkRow.ranges))
    ).first()
    if net is None:
        raise ValidationError(f"VIP {name!r}", "network", f"the environment has no {role} network")
    if VIP_FAMILIES[name] == 6 and not net.cidr6:
        raise ValidationError(
            f"VIP {name!r}",
            "network",
            f"the {role} network {net.name!r} has no IPv6 prefix (cidr6) for an IPv6 VIP",
        )
    return net


def _vip_networks(session: Session, env_id: int) -> dict[str, NetworkRow]:
    """The networks of the VIPs to reserve: both IPv4 VIPs always (an error without their
    network), an IPv6 VIP when its network has an IPv6 prefix."""
    out = {}
    for name in VIP_NETWORK_ROLES:
        if VIP_FAMILIES[name] == 4:
            out[name] = _vip_network(session, env_id, name)
        else:
            net = out[VIP_MANAGEMENT if name == VIP_MANAGEMENT6 else VIP_PUBLIC]
            if net.cidr6:
                out[name] = net
    return out


def reserve_vips(session: Session, env_id: int) -> list[dict[str, Any]]:
    """Reserve the `vrouter` and `vrouter_pub` VIPs, their IPv6 twins `vrouter6` and
    `vrouter_pub6` where the network has an IPv6 prefix, and every controller's vrouter
    namespace address. Idempotent: what is held already is kept, so a second call returns the same
    addresses. A range too small is refused as a whole, saying how many addresses are missing."""
    _locked_environment(session, env_id)
    before = environment_problems(session, env_id)
    bump_revision(session, env_id)
    namespace = get_settings(session, env_id).namespace
    existing = {
        v.name: v for v in session.scalars(select(VipRow).where(VipRow.environment_id == env_id))
    }
    nets = _vip_networks(session, env_id)
    mgmt = nets[VIP_MANAGEMENT]
    controllers = [
        n
        for n in session.scalars(
            select(NodeRow)
            .where(NodeRow.environment_id == env_id)
            .options(selectinload(NodeRow.addresses))
        )
        if "controller" in n.role_list
    ]
    need_ns = [c for c in controllers if not any(a.kind == ADDRESS_NAMESPACE for a in c.addresses)]
    holders = _holders(session, env_id)
    # counted and allocated per (network id, family)
    need: dict[tuple[int, int], int] = {}
    for name, net in nets.items():
        if name not in existing:
            key = (net.id, VIP_FAMILIES[name])
            need[key] = need.get(key, 0) + 1
    if need_ns:
        need[(mgmt.id, 4)] = need.get((mgmt.id, 4), 0) + len(need_ns)
    by_id = {n.id: n for n in nets.values()}
    allocators: dict[tuple[int, int], Allocator] = {}
    for (net_id, family), count in need.items():
        pool = network_entity(by_id[net_id]).pool(family)
        used = list(holders.get(net_id, {}))
        ensure_capacity(pool, used, count)
        allocators[(net_id, family)] = Allocator(pool, used)
    for name, net in nets.items():
        if name in existing:
            continue
        vip = VipRow(
            environment_id=env_id,
            name=name,
            network_id=net.id,
            namespace=namespace,
            user_defined=False,
        )
        vip.address_row = AddressRow(
            network_id=net.id,
            address=allocators[(net.id, VIP_FAMILIES[name])].take(),
            kind=ADDRESS_VIP,
        )
        session.add(vip)
    for c in need_ns:
        c.addresses.append(
            AddressRow(
                network_id=mgmt.id, address=allocators[(mgmt.id, 4)].take(), kind=ADDRESS_NAMESPACE
            )
        )
    _flush(session, "VIPs", "address")
    check_rules(session, env_id, before, "VIPs", "address")
    return list_vips(session, env_id)


def set_vip(
    session: Session, env_id: int, name: str, address: Any, *, automatic: bool = False
) -> dict[str, Any]:
    """A user-defined VIP address (inside the CIDR, not the network, broadcast or gateway
    address, not held by a node or another VIP), or `None`: back to automatic."""
    obj = f"VIP {name!r}"
    if name not in VIP_NETWORK_ROLES:
        raise NotFoundError("VIP", name)
    _locked_environment(session, env_id)
    before = environment_problems(session, env_id)
    bump_revision(session, env_id)
    net = _vip_network(session, env_id, name)
    pool = network_entity(net).pool(VIP_FAMILIES[name])
    vip = session.scalars(
        select(VipRow).where(VipRow.environment_id == env_id, VipRow.name == name)
    ).first()
    held = _holders(session, env_id).get(net.id, {})
    own = f"VIP {name!r}"
    if address is None:
        current = vip.address_row.address if vip is not None and vip.address_row else None
        used = [a for a in held if a != current]
        if vip is not None and not vip.user_defined:
            return next(v for v in list_vips(session, env_id) if v["name"] == name)
        ensure_capacity(pool, used, 1)
        new_address = Allocator(pool, used).take()
        user_defined = False
    else:
        new_address = check_user_address(pool, obj, "address", address, held, own=own)
        # automatic: an address kept from an export, still marked automatic
        user_defined = not automatic
    if vip is None:
        vip = VipRow(
            environment_id=env_id,
            name=name,
            network_id=net.id,
            namespace=get_settings(session, env_id).namespace,
            user_defined=user_defined,
        )
        session.add(vip)
    vip.user_defined = user_defined
    if vip.address_row is None:
        vip.address_row = AddressRow(network_id=net.id, address=new_address, kind=ADDRESS_VIP)
    elif vip.address_row.address != new_address:
        # Free the old address first: the unique constraint sees rows, not intentions.
        session.delete(vip.address_row)
        session.flush()
        vip.address_row = AddressRow(network_id=net.id, address=new_address, kind=ADDRESS_VIP)
    _flush(session, obj, "address")
    check_rules(session, env_id, before, obj, "address")
    return next(v for v in list_vips(session, env_id) if v["name"] == name)
