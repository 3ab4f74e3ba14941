"""plan(desired, observed) -> ordered steps. Pure: no kernel, no files, no processes.

Every step is small typed data (envrouter.agent.steps) with a sentence for the operator. The
plan simulates the state its own steps create (a link made now is down and unenslaved), so one
plan takes the node from any state, including one a killed apply left behind, to the desired
one. One planner per kind of resource, called in a fixed order (`PLANNERS`): removals first,
then the namespace, links, addresses, routes, nftables, sysctls and files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from envrouter.agent.desired import (
    OWNER_ALIAS,
    USERSPACE_DATAPATHS,
    DesiredState,
    ObservedLink,
    ObservedState,
    RouteSpec,
    files_is_ours,
)
from envrouter.agent.nftables.render import fingerprint
from envrouter.agent.steps import (
    AddAddr,
    AddRoute,
    AddVeth,
    CreateNetns,
    DelAddr,
    DeleteNetns,
    DeleteNft,
    DelLink,
    DelRoute,
    KeepNetns,
    LoadNft,
    MoveLink,
    OvsAddPort,
    OvsDelPort,
    RemoveFile,
    SetAlias,
    SetMaster,
    SetSysctl,
    SetTxChecksum,
    SetUp,
    Step,
    WriteFile,
)
from envrouter.errors import ConflictError, InfraError


def _where(ns: str) -> str:
    return f"namespace {ns}" if ns else "host"


def _said(ns: str, text: str) -> str:
    return f"{_where(ns)}: {text}"


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


@dataclass
class _Plan:
    """The plan being built, and what its earlier steps already decided."""

    d: DesiredState
    o: ObservedState
    steps: list[Step] = field(default_factory=list)
    gone_ns: set[str] = field(default_factory=set)  # namespaces this plan deletes
    gone_links: set[tuple[str, str]] = field(default_factory=set)
    # links this plan creates or moves into their namespace: a new device starts with its
    # namespace's defaults, whatever the device of that name said when it was observed
    made_links: set[tuple[str, str]] = field(default_factory=set)
    fresh: bool = False  # the namespace is created by this plan: nothing in it yet

    def add(self, step: Step) -> None:
        self.steps.append(step)

    def link(self, ns: str, name: str) -> ObservedLink | None:
        """The link as it will be when this plan's earlier steps are done."""
        if (ns, name) in self.gone_links or ns in self.gone_ns:
            return None
        if self.created(ns):
            return None
        return self.o.links.get((ns, name))

    def live(self, ns: str) -> bool:
        return ns not in self.gone_ns

    def created(self, ns: str) -> bool:
        """`ns` is the namespace this plan creates: nothing observed is in it."""
        return self.fresh and ns == self.d.namespace

    def seen_in(self, ns: str) -> bool:
        """What was observed in `ns` still holds (not deleted nor created by this plan)."""
        return self.live(ns) and not self.created(ns)


def plan_removals(p: _Plan) -> None:
    """Namespaces and links the agent owns that should not exist (teardown, stale, or of the
    other bridge kind)."""
    d, o, u = p.d, p.o, p.d.universe
    for ns in u.namespaces:
        if ns in o.namespaces and ns != d.namespace:
            foreign = sorted(n for s, n in o.foreign_in_namespace if s == ns)
            if not foreign:
                p.gone_ns.add(ns)
    wanted_links = {(v.ns, v.name) for v in d.veths} | {(v.host_ns, v.host_name) for v in d.veths}
    wanted_links |= {(x.ns, x.name) for x in d.ovs_ports}
    for br in u.ovs_bridges:
        for port in sorted(o.ovs_ports.get(br, set())):
            if not any(x.bridge == br and x.name == port for x in d.ovs_ports):
                if any(name == port for _, name in u.owned_links):
                    p.add(OvsDelPort(ns="", bridge=br, port=port,
                                     description=_said("", f"remove OVS port {port} from {br}")))
                    p.gone_links |= {(ns, port) for ns, name in u.owned_links if name == port}
    for ns, name in sorted(u.owned_links):
        link = o.links.get((ns, name))
        if link is None or (ns, name) in wanted_links or (ns, name) in p.gone_links:
            continue
        if ns in p.gone_ns:
            continue
        if ns not in u.namespaces and link.alias != OWNER_ALIAS and not link.peer_ours:
            continue  # foreign: never touched (preconditions refused a clash already)
        p.add(DelLink(ns=ns, name=name, description=_said(ns, f"delete link {name}")))
        p.gone_links.add((ns, name))
    for ns in sorted(p.gone_ns):
        p.add(DeleteNetns(ns="", name=ns, description=_said("", f"delete network namespace {ns}")))
    for ns in sorted(set(u.namespaces) - p.gone_ns):
        if ns in o.namespaces and ns != d.namespace:
            foreign = sorted(n for s, n in o.foreign_in_namespace if s == ns)
            p.add(KeepNetns(ns="", name=ns, description=_said(
                "", f"keep network namespace {ns}: it holds foreign links {', '.join(foreign)}")))


def plan_namespace(p: _Plan) -> None:
    for ns in sorted(p.o.broken_namespaces):
        p.add(DeleteNetns(ns="", name=ns, description=_said(
            "", f"remove {ns}: a name without a namespace behind it (an interrupted create)")))
    ns = p.d.namespace
    if ns and ns not in p.o.namespaces:
        p.add(CreateNetns(ns="", name=ns, description=_said("", f"create network namespace {ns}")))
        p.fresh = True


def _set_up(ns: str, name: str) -> SetUp:
    return SetUp(ns=ns, name=name, description=_said(ns, f"set {name} up"))


def _mark(ns: str, name: str) -> SetAlias:
    return SetAlias(ns=ns, name=name, description=_said(ns, f"mark {name} as envrouter's"))


def _enslave(ns: str, name: str, master: str) -> SetMaster:
    return SetMaster(ns=ns, name=name, master=master,
                     description=_said(ns, f"enslave {name} to {master}"))


def _del_link(ns: str, name: str, text: str) -> DelLink:
    return DelLink(ns=ns, name=name, description=_said(ns, text))


def plan_veths(p: _Plan) -> None:
    """Veth pairs: created in one message, each end in its namespace, then both marked with
    the alias; a host end left unmarked by a kill is recognised by its peer."""
    for v in p.d.veths:
        ns_end = p.link(v.ns, v.name)
        host_in_ns = p.link(v.ns, v.host_name)
        host_end = p.link(v.host_ns, v.host_name)
        if ns_end is not None and ns_end.kind != "veth":
            p.add(_del_link(v.ns, v.name, f"delete link {v.name} (not a veth)"))
            ns_end = None
        if ns_end is None or (host_in_ns is None and host_end is None):
            if ns_end is not None:
                p.add(_del_link(v.ns, v.name, f"delete veth {v.name} (peer lost)"))
            if host_end is not None:
                p.add(_del_link(v.host_ns, v.host_name, f"delete veth {v.host_name} (peer lost)"))
            if host_in_ns is not None:
                p.add(_del_link(v.ns, v.host_name, f"delete veth {v.host_name}"))
            p.made_links |= {(v.ns, v.name), (v.host_ns, v.host_name)}
            p.add(AddVeth(ns=v.ns, name=v.name, peer_ns=v.host_ns, peer=v.host_name,
                          description=_said(v.ns, f"create veth pair {v.name}/{v.host_name} "
                                            f"({v.host_name} on {_where(v.host_ns)})")))
            if v.master:
                p.add(_enslave(v.host_ns, v.host_name, v.master))
            p.add(_set_up(v.host_ns, v.host_name))
            p.add(_set_up(v.ns, v.name))
            continue
        if ns_end.alias != OWNER_ALIAS:
            p.add(_mark(v.ns, v.name))
        if host_end is not None and host_end.alias != OWNER_ALIAS:
            p.add(_mark(v.host_ns, v.host_name))
        if host_in_ns is not None:
            if host_in_ns.alias != OWNER_ALIAS:
                p.add(_mark(v.ns, v.host_name))
            p.add(MoveLink(ns=v.ns, name=v.host_name, to_ns=v.host_ns,
                           description=_said(v.ns, f"move {v.host_name} to {_where(v.host_ns)}")))
            master, up = None, False
        else:
            assert host_end is not None
            master, up = host_end.master, host_end.up
        if v.master and master != v.master:
            p.add(_enslave(v.host_ns, v.host_name, v.master))
        if not up:
            p.add(_set_up(v.host_ns, v.host_name))
        if not ns_end.up:
            p.add(_set_up(v.ns, v.name))


def plan_ovs_ports(p: _Plan) -> None:
    """OVS internal ports: created on the bridge (they appear on the host), then moved in."""
    for x in p.d.ovs_ports:
        ports = p.o.ovs_ports.get(x.bridge, set())
        ns_end = p.link(x.ns, x.name)
        host_end = p.link(x.host_ns, x.name)
        if ns_end is not None and ns_end.kind == "veth":
            p.add(_del_link(x.ns, x.name, f"delete veth {x.name} (now an OVS port)"))
            ns_end = None
        create = x.name not in ports or (ns_end is None and host_end is None)
        if create:
            if x.name in ports:
                p.add(OvsDelPort(ns=x.host_ns, bridge=x.bridge, port=x.name, description=_said(
                    x.host_ns, f"remove OVS port {x.name} from {x.bridge} (its device is gone)")))
            p.add(OvsAddPort(ns=x.host_ns, bridge=x.bridge, port=x.name, description=_said(
                x.host_ns, f"add OVS internal port {x.name} to {x.bridge}")))
        if create or ns_end is None:
            p.made_links.add((x.ns, x.name))
            p.add(MoveLink(ns=x.host_ns, name=x.name, to_ns=x.ns,
                           description=_said(x.host_ns, f"move {x.name} to {_where(x.ns)}")))
            p.add(_mark(x.ns, x.name))
            p.add(_set_up(x.ns, x.name))
            continue
        if ns_end.alias != OWNER_ALIAS:
            p.add(_mark(x.ns, x.name))
        if not ns_end.up:
            p.add(_set_up(x.ns, x.name))


def plan_tx_checksum(p: _Plan) -> None:
    """A userspace OVS datapath (without its userspace TSO) sends packets on as it reads them,
    partial checksums unfinished (envrouter.agent.ovs): every device feeding it that the agent
    sees must have TX checksumming off. Nothing on a kernel datapath, where the kernel finishes
    checksums whatever the device."""
    if p.o.ovs_userspace_tso:
        return
    for (ns, name), (bridge, on) in sorted(p.o.ovs_feeders.items()):
        if on and p.o.ovs_datapaths.get(bridge) in USERSPACE_DATAPATHS and p.seen_in(ns) \
                and (ns, name) not in p.gone_links:
            p.add(SetTxChecksum(ns=ns, name=name, on=False, description=_said(
                ns, f"turn TX checksum offload off on {name} (it feeds {bridge}, a userspace "
                "datapath: partial checksums would leave unfinished)")))


def plan_links_up(p: _Plan) -> None:
    for ns, dev in p.d.up:
        lk = p.link(ns, dev)
        if lk is None or not lk.up:
            p.add(_set_up(ns, dev))


def plan_addresses(p: _Plan) -> None:
    """Stale addresses on the agent's devices go (never the HA layer's VIPs), desired ones
    are added."""
    d = p.d
    observed = set() if p.fresh else p.o.addresses
    observed = {a for a in observed if (a.ns, a.dev) not in p.gone_links}
    protected = {(a.ns, a.dev, a.address) for a in d.protected}
    for a in sorted(observed - set(d.addresses)):
        if (a.ns, a.dev, a.address) in protected or not p.live(a.ns):
            continue
        p.add(DelAddr(ns=a.ns, addr=a, description=_said(
            a.ns, f"remove stale address {a.address}/{a.prefixlen} from {a.dev}")))
    for a in d.addresses:
        if a not in observed:
            p.add(AddAddr(ns=a.ns, addr=a,
                          description=_said(a.ns, f"add {a.address}/{a.prefixlen} to {a.dev}")))


def _route_matches(want: RouteSpec, have: RouteSpec) -> bool:
    return (want.ns, want.dst, want.gateway, want.metric) == (
        have.ns,
        have.dst,
        have.gateway,
        have.metric,
    ) and (not want.dev or want.dev == have.dev)


def plan_routes(p: _Plan) -> None:
    d = p.d
    observed = {r for r in p.o.routes if p.seen_in(r.ns)}
    for r in sorted(observed):
        if (r.ns, r.dev) in p.gone_links:
            continue
        if not any(_route_matches(w, r) for w in d.routes):
            p.add(DelRoute(ns=r.ns, route=r,
                           description=_said(r.ns, f"remove stale route {r.dst} via {r.gateway}")))
    for w in d.routes:
        if not any(_route_matches(w, r) for r in observed):
            text = f"route {w.dst} via {w.gateway}" + (f" dev {w.dev}" if w.dev else "")
            text += f" metric {w.metric}" if w.metric else ""
            p.add(AddRoute(ns=w.ns, route=w, description=_said(w.ns, text)))


def plan_nft(p: _Plan) -> None:
    """Tables owned whole: deleted when not desired, loaded when the fingerprint differs.
    (Before sysctls: loading a NAT table brings conntrack's sysctls.)"""
    wanted = {(t.ns, t.family, t.name): t for t in p.d.nft}
    for key in p.d.universe.nft_tables:
        ns, family, name = key
        if key in p.o.nft and key not in wanted and p.live(ns):
            p.add(DeleteNft(ns=ns, family=family, name=name,
                            description=_said(ns, f"delete nftables table {family} {name}")))
    for key, t in wanted.items():
        have = None if p.created(key[0]) else p.o.nft.get(key)
        if have != fingerprint(t):
            # a table that is absent is loaded without the delete preamble: still one
            # transaction, and the kernel skips unregistering hooks it never had
            p.add(LoadNft(ns=t.ns, table=t, replace=have is not None,
                          description=_said(t.ns, f"load nftables table {t.family} {t.name}")))


def _conf_key(key: str) -> tuple[str, str, str] | None:
    """A per-interface key as (family, interface, setting): net.ipv4.conf.vr-pub.rp_filter is
    ("ipv4", "vr-pub", "rp_filter"), the interface also "all" or "default"; else None."""
    parts = key.split(".")
    if len(parts) < 5 or parts[:3] not in (["net", "ipv4", "conf"], ["net", "ipv6", "conf"]):
        return None
    return parts[1], ".".join(parts[3:-1]), parts[-1]


def plan_sysctls(p: _Plan) -> None:
    """Each key whose value differs, in the desired order. A per-interface key is set even when
    it reads right: on an interface this plan makes (a new device starts with the namespace's
    defaults, whatever the old one said), and after a new `default` of its setting (the kernel
    copies a new default into every interface whose own value was never written; the desired
    state lists `default` before the interfaces)."""
    new_defaults: set[tuple[str, str, str]] = set()
    for s in p.d.sysctls:
        conf = _conf_key(s.key)
        forced = conf is not None and (
            (s.ns, conf[1]) in p.made_links or (s.ns, conf[0], conf[2]) in new_defaults)
        have = None if p.created(s.ns) or forced else p.o.sysctls.get((s.ns, s.key))
        if have != s.value:
            p.add(SetSysctl(ns=s.ns, key=s.key, value=s.value,
                            description=_said(s.ns, f"sysctl {s.key}={s.value}")))
            if conf is not None and conf[1] == "default":
                new_defaults.add((s.ns, conf[0], conf[2]))


def plan_files(p: _Plan) -> None:
    """Files are written when they differ; an undesired file is removed only if it is ours."""
    wanted = {f.path: f.content for f in p.d.files}
    for path in p.d.universe.files:
        have = p.o.files.get(path)
        if path in wanted:
            if have != wanted[path]:
                p.add(WriteFile(ns="", path=path, content=wanted[path],
                                description=_said("", f"write {path}")))
        elif files_is_ours(have):
            p.add(RemoveFile(ns="", path=path, description=_said("", f"remove {path}")))


# the order matters: a later planner sees what the earlier ones removed or created
PLANNERS: tuple[Callable[[_Plan], None], ...] = (
    plan_removals,
    plan_namespace,
    plan_veths,
    plan_ovs_ports,
    plan_tx_checksum,
    plan_links_up,
    plan_addresses,
    plan_routes,
    plan_nft,
    plan_sysctls,
    plan_files,
)


def plan(d: DesiredState, o: ObservedState) -> list[Step]:
    check_preconditions(d, o)
    p = _Plan(d, o)
    for planner in PLANNERS:
        planner(p)
    return p.steps


__all__ = ["Step", "plan", "check_preconditions", "PLANNERS"]
