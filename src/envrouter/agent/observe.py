"""Read the kernel (pyroute2), nftables (`nft -j`), sysctls, OVS and files into the plain data
shape of the desired state. Reads only; never changes anything."""

from __future__ import annotations

import os

from envrouter.agent import netlink as nl
from envrouter.agent.desired import (
    AddrSpec,
    DesiredState,
    ObservedLink,
    ObservedState,
    RouteSpec,
)
from envrouter.agent.nftables.kernel import observe_tables
from envrouter.agent.ovs import (
    USERSPACE_DATAPATHS,
    datapaths,
    list_bridges,
    list_ports,
    tx_checksum,
)
from envrouter.files import read_file


def relevant_namespaces(state: DesiredState) -> set[str]:
    """Every namespace observe reads: the host ("" or a named one) and ours."""
    u = state.universe
    relevant = {ns for ns, _ in u.owned_links} | {b.ns for b in state.bridges}
    relevant |= set(u.route_namespaces) | {ns for ns, _, _ in u.nft_tables}
    relevant |= {s.ns for s in state.sysctls} | {ns for ns, _ in state.up}
    return relevant


def observe(state: DesiredState, link: nl.Netlink) -> ObservedState:
    u = state.universe
    obs = ObservedState()
    present = nl.list_netns()
    namespaces = {ns for ns in u.namespaces if ns in present and nl.netns_valid(ns)}
    obs.broken_namespaces = {ns for ns in u.namespaces if ns in present} - namespaces
    obs.namespaces = namespaces
    live = {ns for ns in relevant_namespaces(state)
            if ns == "" or ns in namespaces or _is_host(ns, state)}
    owned_links = set(u.owned_links)
    owned_devs = set(u.owned_devs)
    names_by_index: dict[str, dict[int, str]] = {}
    for ns in sorted(live):
        links = link.links(ns)
        by_index = {lk["index"]: lk["name"] for lk in links}
        names_by_index[ns] = by_index
        for lk in links:
            key = (ns, lk["name"])
            master = by_index.get(lk["master"]) if lk["master"] else None
            peer_ours = False
            if (
                key in owned_links
                and lk["alias"] is None
                and lk["kind"] == "veth"
                and lk["peer_nsid"] is not None
                and ns not in namespaces
            ):
                # an apply killed between creating a veth and marking it: ours if its peer
                # is in our namespace
                peer_ours = any(
                    lk["peer_nsid"] == link.nsid_of(ns, own) for own in sorted(namespaces)
                )
            obs.links[key] = ObservedLink(
                ns, lk["name"], lk["kind"], lk["alias"], master, lk["up"], peer_ours
            )
            if ns in namespaces and lk["name"] != "lo" and key not in owned_links:
                # a link we did not make inside our namespace: a foreign object
                if not any(key == (v.ns, v.host_name) for v in state.veths):
                    obs.foreign_in_namespace.add(key)
        devs = {d for n, d in owned_devs if n == ns}
        if devs:
            for idx, address, plen in link.addresses(ns):
                dev = by_index.get(idx)
                if dev in devs:
                    obs.addresses.add(AddrSpec(ns, dev, address, plen))
        if ns in u.route_namespaces:
            for r in link.routes(ns, (nl.RTPROT_ENVROUTER,)):
                obs.routes.add(
                    RouteSpec(
                        ns, r["dst"], r["gateway"] or "", by_index.get(r["oif"], ""), r["metric"]
                    )
                )
    # sysctls: one thread per namespace reads them all
    by_ns: dict[str, list[str]] = {}
    for s in state.sysctls:
        by_ns.setdefault(s.ns, []).append(s.key)
    for ns, keys in by_ns.items():
        if ns not in live:
            continue
        values = nl.in_netns(ns, lambda keys=keys: [nl.read_sysctl(k) for k in keys])
        for k, v in zip(keys, values, strict=True):
            obs.sysctls[(ns, k)] = v
    # nftables
    tables_by_ns: dict[str, set[tuple[str, str]]] = {}
    for ns, family, name in u.nft_tables:
        tables_by_ns.setdefault(ns, set()).add((family, name))
    for ns, names in tables_by_ns.items():
        if ns not in live:
            continue
        for (family, name), fp in observe_tables(ns, names).items():
            obs.nft[(ns, family, name)] = fp
    # OVS
    if u.ovs_bridges:
        host = state.bridges[0].ns if state.bridges else ""
        obs.ovs_bridges = list_bridges(host)
        present = [br for br in u.ovs_bridges if br in obs.ovs_bridges]
        for br in present:
            obs.ovs_ports[br] = list_ports(host, br)
        if present:
            obs.ovs_datapaths, obs.ovs_userspace_tso = datapaths(host, present)
        obs.ovs_feeders = _ovs_feeders(state, obs, link, host)
    # files
    for path in u.files:
        obs.files[path] = read_file(path)
    return obs


def _ovs_feeders(state: DesiredState, obs: ObservedState, link: nl.Netlink,
                 host: str) -> dict[tuple[str, str], tuple[str, bool]]:
    """Only on userspace-datapath bridges: the agent's internal ports, and for each veth port
    of the bridge whose peer is in the node's namespace, that peer (what the node's stack
    sends into it reaches OVS)."""
    feeders: dict[tuple[str, str], tuple[str, bool]] = {}
    netdev = {br for br, dp in obs.ovs_datapaths.items() if dp in USERSPACE_DATAPATHS}
    if not netdev:
        return feeders

    def read(ns: str, name: str, bridge: str) -> None:
        feeders[(ns, name)] = (bridge, nl.in_netns(ns, lambda: tx_checksum(name)))

    for x in state.ovs_ports:
        if x.bridge in netdev and (x.ns, x.name) in obs.links:
            read(x.ns, x.name, x.bridge)
    host_links = {lk["name"]: lk for lk in link.links(host)}
    by_index = {lk["index"]: lk["name"] for lk in host_links.values()}
    for br in sorted(netdev):
        for port in sorted(obs.ovs_ports.get(br, set())):
            lk = host_links.get(port)
            if lk is None or lk["kind"] != "veth" or lk["peer_nsid"] is not None:
                continue  # not a veth, or its peer is in another namespace: out of reach
            peer = by_index.get(lk["link"])
            if peer is not None:
                read(host, peer, br)
    return feeders


def _is_host(ns: str, state: DesiredState) -> bool:
    """A named host namespace (host_netns) is not ours but must be read."""
    return ns not in state.universe.namespaces and os.path.exists(nl.netns_path(ns))
