"""plan(desired, observed) -> ordered steps. Pure: no kernel, no files, no processes.

Every step is small plain data with a sentence for the operator. The plan simulates the state
its own steps create (a link made now is down and unenslaved), so one plan takes the node from
any state, including one a killed apply left behind, to the desired one.
"""

from __future__ import annotations

from dataclasses import dataclass

from envrouter.agent.desired import (
    OWNER_ALIAS,
    AddrSpec,
    DesiredState,
    NftTableSpec,
    ObservedState,
    RouteSpec,
    files_is_ours,
    fingerprint,
)
from envrouter.errors import ConflictError, InfraError


@dataclass(frozen=True)
class Step:
    op: str
    ns: str
    args: tuple
    description: str

    def __str__(self) -> str:
        return self.description


def _where(ns: str) -> str:
    return f"namespace {ns}" if ns else "host"


def _step(op: str, ns: str, args: tuple, text: str) -> Step:
    return Step(op, ns, args, f"{_where(ns)}: {text}")


def check_preconditions(d: DesiredState, o: ObservedState) -> None:
    """Errors that must stop an apply before it changes anything."""
    for b in d.bridges:
        if b.kind == "linux":
            link = o.links.get((b.ns, b.name))
            if link is None:
                raise InfraError(f"bridge {b.name!r} does not exist on this node")
            if link.kind != "bridge":
                raise InfraError(f"{b.name!r} is not a Linux bridge (kind {link.kind})")
        elif o.ovs_bridges is None or b.name not in o.ovs_bridges:
            raise InfraError(f"Open vSwitch bridge {b.name!r} does not exist on this node")
    ovs_ours = {p for ports in o.ovs_ports.values() for p in ports}
    own_ns = set(d.universe.namespaces)
    for ns, name in d.universe.owned_links:
        if ns in own_ns:
            continue
        link = o.links.get((ns, name))
        if (
            link is not None
            and link.alias != OWNER_ALIAS
            and not link.peer_ours
            and name not in ovs_ours
        ):
            raise ConflictError(
                f"link {name!r}",
                "name",
                f"exists on this node and is not envrouter's (no alias {OWNER_ALIAS!r}); "
                "rename or remove it",
            )
    for p in d.ovs_ports:
        link = o.links.get((p.host_ns, p.name))
        if link is not None and p.name not in o.ovs_ports.get(p.bridge, set()):
            raise ConflictError(
                f"link {p.name!r}", "name", "exists on this node and is not an envrouter OVS port"
            )


def plan(d: DesiredState, o: ObservedState) -> list[Step]:
    check_preconditions(d, o)
    steps: list[Step] = []
    add = steps.append
    u = d.universe
    gone_ns: set[str] = set()  # namespaces this plan deletes: skip everything inside
    gone_links: set[tuple[str, str]] = set()

    # ---- namespaces that should not exist (teardown)
    for ns in u.namespaces:
        if ns in o.namespaces and ns != d.namespace:
            foreign = sorted(n for s, n in o.foreign_in_namespace if s == ns)
            if not foreign:
                gone_ns.add(ns)
    # ---- links that should not exist (stale, or of the other bridge kind)
    wanted_links = {(v.ns, v.name) for v in d.veths} | {(v.host_ns, v.host_name) for v in d.veths}
    wanted_links |= {(p.ns, p.name) for p in d.ovs_ports}
    for br in u.ovs_bridges:
        for port in sorted(o.ovs_ports.get(br, set())):
            if not any(p.bridge == br and p.name == port for p in d.ovs_ports):
                if any(name == port for _, name in u.owned_links):
                    add(_step("ovs_del_port", "", (br, port), f"remove OVS port {port} from {br}"))
                    gone_links |= {(ns, port) for ns, name in u.owned_links if name == port}
    for ns, name in sorted(u.owned_links):
        link = o.links.get((ns, name))
        if link is None or (ns, name) in wanted_links or (ns, name) in gone_links:
            continue
        if ns in gone_ns:
            continue
        if ns not in u.namespaces and link.alias != OWNER_ALIAS and not link.peer_ours:
            continue  # foreign: never touched (preconditions refused a clash already)
        add(_step("del_link", ns, (name,), f"delete link {name}"))
        gone_links.add((ns, name))
    for ns in sorted(gone_ns):
        add(_step("delete_netns", "", (ns,), f"delete network namespace {ns}"))
    for ns in sorted(set(u.namespaces) - gone_ns):
        if ns in o.namespaces and ns != d.namespace:
            foreign = sorted(n for s, n in o.foreign_in_namespace if s == ns)
            add(
                Step(
                    "keep_netns",
                    "",
                    (ns,),
                    f"host: keep network namespace {ns}: it holds foreign links "
                    f"{', '.join(foreign)}",
                )
            )

    # ---- the namespace
    fresh = False
    for ns in sorted(o.broken_namespaces):
        add(
            _step(
                "delete_netns",
                "",
                (ns,),
                f"remove {ns}: a name without a namespace behind it (an interrupted create)",
            )
        )
    if d.namespace and d.namespace not in o.namespaces:
        add(_step("create_netns", "", (d.namespace,), f"create network namespace {d.namespace}"))
        fresh = True

    def link(ns: str, name: str):
        if (ns, name) in gone_links or ns in gone_ns:
            return None
        if fresh and ns == d.namespace:
            return None
        return o.links.get((ns, name))

    # ---- veth pairs: created in one message, each end in its namespace, then both marked
    # with the alias; a host end left unmarked by a kill is recognised by its peer
    for v in d.veths:
        ns_end = link(v.ns, v.name)
        host_in_ns = link(v.ns, v.host_name)
        host_end = link(v.host_ns, v.host_name)
        if ns_end is not None and ns_end.kind != "veth":
            add(_step("del_link", v.ns, (v.name,), f"delete link {v.name} (not a veth)"))
            ns_end = None
        if ns_end is None or (host_in_ns is None and host_end is None):
            if ns_end is not None:
                add(_step("del_link", v.ns, (v.name,), f"delete veth {v.name} (peer lost)"))
            if host_end is not None:
                add(
                    _step(
                        "del_link",
                        v.host_ns,
                        (v.host_name,),
                        f"delete veth {v.host_name} (peer lost)",
                    )
                )
            if host_in_ns is not None:
                add(_step("del_link", v.ns, (v.host_name,), f"delete veth {v.host_name}"))
            add(
                _step(
                    "add_veth",
                    v.ns,
                    (v.name, v.host_ns, v.host_name),
                    f"create veth pair {v.name}/{v.host_name} ({v.host_name} on "
                    f"{_where(v.host_ns)})",
                )
            )
            if v.master:
                add(
                    _step(
                        "set_master",
                        v.host_ns,
                        (v.host_name, v.master),
                        f"enslave {v.host_name} to {v.master}",
                    )
                )
            add(_step("set_up", v.host_ns, (v.host_name,), f"set {v.host_name} up"))
            add(_step("set_up", v.ns, (v.name,), f"set {v.name} up"))
            continue
        if ns_end.alias != OWNER_ALIAS:
            add(_step("set_alias", v.ns, (v.name,), f"mark {v.name} as envrouter's"))
        if host_end is not None and host_end.alias != OWNER_ALIAS:
            add(
                _step(
                    "set_alias",
                    v.host_ns,
                    (v.host_name,),
                    f"mark {v.host_name} as envrouter's",
                )
            )
        if host_in_ns is not None:
            if host_in_ns.alias != OWNER_ALIAS:
                add(_step("set_alias", v.ns, (v.host_name,), f"mark {v.host_name} as envrouter's"))
            add(
                _step(
                    "move_link",
                    v.ns,
                    (v.host_name, v.host_ns),
                    f"move {v.host_name} to {_where(v.host_ns)}",
                )
            )
            master, up = None, False
        else:
            assert host_end is not None
            master, up = host_end.master, host_end.up
        if v.master and master != v.master:
            add(
                _step(
                    "set_master",
                    v.host_ns,
                    (v.host_name, v.master),
                    f"enslave {v.host_name} to {v.master}",
                )
            )
        if not up:
            add(_step("set_up", v.host_ns, (v.host_name,), f"set {v.host_name} up"))
        if not ns_end.up:
            add(_step("set_up", v.ns, (v.name,), f"set {v.name} up"))

    # ---- OVS internal ports: created on the bridge (appear on the host), moved in
    for p in d.ovs_ports:
        ports = o.ovs_ports.get(p.bridge, set())
        ns_end = link(p.ns, p.name)
        host_end = link(p.host_ns, p.name)
        if ns_end is not None and ns_end.kind == "veth":
            add(_step("del_link", p.ns, (p.name,), f"delete veth {p.name} (now an OVS port)"))
            ns_end = None
        create = p.name not in ports or (ns_end is None and host_end is None)
        if create:
            if p.name in ports:
                add(
                    _step(
                        "ovs_del_port",
                        p.host_ns,
                        (p.bridge, p.name),
                        f"remove OVS port {p.name} from {p.bridge} (its device is gone)",
                    )
                )
            add(
                _step(
                    "ovs_add_port",
                    p.host_ns,
                    (p.bridge, p.name),
                    f"add OVS internal port {p.name} to {p.bridge}",
                )
            )
        if create or ns_end is None:
            add(_step("move_link", p.host_ns, (p.name, p.ns), f"move {p.name} to {_where(p.ns)}"))
            add(_step("set_alias", p.ns, (p.name,), f"mark {p.name} as envrouter's"))
            add(_step("set_up", p.ns, (p.name,), f"set {p.name} up"))
            continue
        if ns_end.alias != OWNER_ALIAS:
            add(_step("set_alias", p.ns, (p.name,), f"mark {p.name} as envrouter's"))
        if not ns_end.up:
            add(_step("set_up", p.ns, (p.name,), f"set {p.name} up"))

    for ns, dev in d.up:
        lk = link(ns, dev)
        if lk is None or not lk.up:
            add(_step("set_up", ns, (dev,), f"set {dev} up"))

    def live(ns: str) -> bool:
        return ns not in gone_ns

    # ---- addresses
    observed_addr = set() if fresh else o.addresses
    observed_addr = {a for a in observed_addr if (a.ns, a.dev) not in gone_links}
    protected = {(a.ns, a.dev, a.address) for a in d.protected}
    for a in sorted(observed_addr - set(d.addresses)):
        if (a.ns, a.dev, a.address) in protected or not live(a.ns):
            continue
        add(
            _step(
                "del_addr",
                a.ns,
                (a.dev, a.address, a.prefixlen),
                f"remove stale address {a.address}/{a.prefixlen} from {a.dev}",
            )
        )
    for a in d.addresses:
        if a not in observed_addr:
            add(
                _step(
                    "add_addr",
                    a.ns,
                    (a.dev, a.address, a.prefixlen),
                    f"add {a.address}/{a.prefixlen} to {a.dev}",
                )
            )

    # ---- routes
    observed_routes = {r for r in o.routes if live(r.ns) and not (fresh and r.ns == d.namespace)}

    def matches(want: RouteSpec, have: RouteSpec) -> bool:
        return (want.ns, want.dst, want.gateway, want.metric) == (
            have.ns,
            have.dst,
            have.gateway,
            have.metric,
        ) and (not want.dev or want.dev == have.dev)

    for r in sorted(observed_routes):
        if (r.ns, r.dev) in gone_links:
            continue
        if not any(matches(w, r) for w in d.routes):
            add(_step("del_route", r.ns, (r,), f"remove stale route {r.dst} via {r.gateway}"))
    for w in d.routes:
        if not any(matches(w, r) for r in observed_routes):
            text = f"route {w.dst} via {w.gateway}" + (f" dev {w.dev}" if w.dev else "")
            text += f" metric {w.metric}" if w.metric else ""
            add(_step("add_route", w.ns, (w,), text))

    # ---- nftables (before sysctls: loading a NAT table brings conntrack's sysctls)
    wanted_tables = {(t.ns, t.family, t.name): t for t in d.nft}
    for key in u.nft_tables:
        ns, family, name = key
        if key in o.nft and key not in wanted_tables and live(ns):
            add(_step("delete_nft", ns, (family, name), f"delete nftables table {family} {name}"))
    for key, t in wanted_tables.items():
        have = None if (fresh and key[0] == d.namespace) else o.nft.get(key)
        want = fingerprint(t)
        if have != want:
            # a table that is absent is loaded without the delete preamble: still one
            # transaction, and the kernel skips unregistering hooks it never had
            add(
                _step(
                    "load_nft",
                    t.ns,
                    (t, have is not None),
                    f"load nftables table {t.family} {t.name}",
                )
            )

    # ---- sysctls
    for s in d.sysctls:
        have = None if (fresh and s.ns == d.namespace) else o.sysctls.get((s.ns, s.key))
        if have != s.value:
            add(_step("set_sysctl", s.ns, (s.key, s.value), f"sysctl {s.key}={s.value}"))

    # ---- files
    wanted_files = {f.path: f.content for f in d.files}
    for path in u.files:
        have = o.files.get(path)
        if path in wanted_files:
            if have != wanted_files[path]:
                add(_step("write_file", "", (path, wanted_files[path]), f"write {path}"))
        elif files_is_ours(have):
            add(_step("remove_file", "", (path,), f"remove {path}"))
    return steps


__all__ = ["Step", "plan", "check_preconditions", "AddrSpec", "NftTableSpec"]
