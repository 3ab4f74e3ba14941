"""Is this controller's vrouter degraded, and why (pure).

`assess(status)` returns one short sentence per problem, most fundamental first (the cluster,
then the resources, then this node's daemons); an empty list means healthy. `envrouter status`
exits non-zero with these reasons on one line; `envrouter metrics` exports their count.

What counts as degraded, and why:
- no quorum / no DC / a node offline, unclean or in standby: the cluster can no longer move the
  VIPs freely (standby is deliberate, but the redundancy is still gone while it lasts);
- a resource of the layout missing from the CIB, an instance failed, unmanaged or blocked, a
  clone not running on a node where Pacemaker may run it, the VIPs' resource running nowhere or
  twice, conntrackd promoted anywhere but where the VIPs are;
- the kernel disagreeing with Pacemaker about a VIP on this node (split brain or a lost address);
- on this node, a daemon Pacemaker believes started that does not answer; conntrackd's sync
  errors growing since the previous sample; the conntrack table nearly full; a DNS upstream
  that does not answer from the namespace; NTP with no reachable upstream source or not
  synchronised.
Past operation failures that Pacemaker already recovered are shown, not counted: they expire
with failure-timeout.
"""

from __future__ import annotations

from envrouter.ha.layout import CONNTRACKD, DNS, NTP, VROUTER, clone_id
from envrouter.ops.model import (
    ClusterState,
    ConntrackdStatus,
    ConntrackTable,
    DnsStatus,
    NtpStatus,
    Status,
    VipStatus,
)

CONNTRACK_FULL_RATIO = 0.9
CLONE_SUFFIX = clone_id("")


def _cluster_reasons(c: ClusterState) -> list[str]:
    if not c.available:
        return [f"cluster: not available ({c.error})"]
    out = []
    if c.quorate is False:
        out.append("cluster: no quorum")
    if c.dc is None:
        out.append("cluster: no DC elected")
    if c.maintenance_mode:
        out.append("cluster: maintenance-mode is on (resources unmanaged)")
    for n in c.nodes:
        if not n.online:
            out.append(f"cluster: node {n.name} offline")
        elif n.unclean:
            out.append(f"cluster: node {n.name} unclean")
        elif n.standby:
            out.append(f"cluster: node {n.name} in standby")
        elif n.maintenance:
            out.append(f"cluster: node {n.name} in maintenance")
    return out


def _resource_reasons(st: Status) -> list[str]:
    c = st.cluster
    if not c.available:
        return []
    out = []
    eligible = [n.name for n in c.nodes if n.eligible]
    for rid in st.expected_resources:
        if rid not in c.top_ids:
            out.append(f"resource {rid}: not configured (envrouter ha apply)")
            continue
        for inst in c.instances(rid):
            where = f" on {inst.node}" if inst.node else ""
            if inst.failed:
                out.append(f"resource {inst.id}: failed{where}")
            if not inst.managed:
                out.append(f"resource {inst.id}: unmanaged{where}")
            if inst.blocked:
                out.append(f"resource {inst.id}: blocked{where}")
        if rid.endswith(CLONE_SUFFIX):
            running = set(c.active_nodes(rid))
            missing = [n for n in eligible if n not in running]
            if missing:
                how = ("stopped (target-role=Stopped)"
                       if any(i.target_role == "Stopped" for i in c.instances(rid))
                       else "not running")
                out.append(f"resource {rid}: {how} on {', '.join(missing)}")
    # one sentence per resource, naming every VIP it carries (one resource carries them all)
    by_resource: dict[str, list[VipStatus]] = {}
    for vip in st.vips:
        if vip.resource in c.top_ids:
            by_resource.setdefault(vip.resource, []).append(vip)
    for rid, vips in by_resource.items():
        nodes = vips[0].pacemaker_nodes
        what = f"VIP {rid} ({', '.join(v.address for v in vips)})"
        if not nodes:
            stopped = any(i.target_role == "Stopped" for i in c.instances(rid))
            out.append(f"{what}: "
                       f"{'stopped (target-role=Stopped)' if stopped else 'not running'}")
        elif len(nodes) > 1:
            out.append(f"{what}: running on {' and '.join(nodes)}")
    cclone = clone_id(CONNTRACKD)
    if cclone in st.expected_resources and cclone in c.top_ids:
        promoted = c.active_nodes(cclone, role="Promoted")
        vip_nodes = sorted({n for v in st.vips for n in v.pacemaker_nodes})
        if not promoted:
            out.append("resource conntrackd: promoted nowhere")
        elif len(vip_nodes) == 1 and promoted != vip_nodes:
            out.append(f"resource conntrackd: promoted on {', '.join(promoted)} but the VIPs "
                       f"are on {vip_nodes[0]}")
    return out


def _runs_here(st: Status, rid: str) -> bool:
    """Does Pacemaker run `rid` on this node? Without a cluster view, assume it should."""
    c = st.cluster
    if not c.available or rid not in c.top_ids:
        return not c.available
    return st.node in c.active_nodes(rid)


def _vip_reasons(st: Status) -> list[str]:
    out = []
    for vip in st.vips:
        if vip.here is None:
            continue
        says_here = st.node in vip.pacemaker_nodes
        if vip.here and not says_here and st.cluster.available:
            elsewhere = " ".join(vip.pacemaker_nodes) or "nowhere"
            out.append(f"VIP {vip.address}: configured in namespace {st.namespace} on {st.node} "
                       f"but Pacemaker runs {vip.resource} on {elsewhere} (split brain?)")
        elif says_here and not vip.here:
            out.append(f"VIP {vip.address}: Pacemaker runs {vip.resource} on {st.node} but "
                       f"the address is missing from namespace {st.namespace}")
    return out


def _conntrackd_reasons(st: Status, ct: ConntrackdStatus,
                        previous_sync_errors: int | None) -> list[str]:
    if not ct.answering:
        return [f"conntrackd: not answering on {st.node} ({ct.error})"]
    if ct.stats is not None and previous_sync_errors is not None:
        grown = ct.stats.sync_errors - previous_sync_errors
        if grown > 0:
            return [f"conntrackd: sync errors grew by {grown} since the previous check"]
    return []


def _table_reasons(table: ConntrackTable | None) -> list[str]:
    if table is None or table.entries is None or not table.max:
        return []
    if table.entries < CONNTRACK_FULL_RATIO * table.max:
        return []
    return [f"conntrack table: {table.entries} of {table.max} entries "
            f"({100 * table.entries // table.max} %)"]


def _dns_reasons(st: Status, dns: DnsStatus) -> list[str]:
    out = []
    if not dns.answering:
        out.append(f"dns: dnsmasq not answering on {dns.listen} ({dns.error})")
    for up in dns.upstreams:
        if up.reachable is False:
            out.append(f"dns: upstream {up.address} not answering from namespace "
                       f"{st.namespace}")
    return out


def _ntp_reasons(ntp: NtpStatus) -> list[str]:
    if not ntp.answering:
        return [f"ntp: chronyd not answering ({ntp.error})"]
    out = []
    upstreams = [s for s in ntp.sources if s.upstream]
    if upstreams and not ntp.reachable_upstreams:
        local = (f" (serving local stratum {ntp.tracking.stratum})"
                 if ntp.tracking and ntp.tracking.local_reference else "")
        out.append(f"ntp: no upstream source reachable{local}")
    if ntp.tracking is not None and not ntp.tracking.synchronised:
        out.append(f"ntp: not synchronised (leap status {ntp.tracking.leap_status}, "
                   f"stratum {ntp.tracking.stratum})")
    return out


def _daemon_reasons(st: Status, previous_sync_errors: int | None) -> list[str]:
    """The namespace and each daemon Pacemaker runs here (a daemon it stopped here is not
    expected to answer)."""
    out = []
    if _runs_here(st, clone_id(VROUTER)) and not st.namespace_present:
        out.append(f"namespace {st.namespace}: missing on {st.node}")
    ct = st.conntrackd
    if ct is not None and ct.configured and _runs_here(st, clone_id(CONNTRACKD)):
        out += _conntrackd_reasons(st, ct, previous_sync_errors)
    out += _table_reasons(st.conntrack)
    if st.dns is not None and _runs_here(st, clone_id(DNS)):
        out += _dns_reasons(st, st.dns)
    if st.ntp is not None and _runs_here(st, clone_id(NTP)):
        out += _ntp_reasons(st.ntp)
    return out


def assess(status: Status, previous_sync_errors: int | None = None) -> list[str]:
    """The reasons `status` is degraded; [] when healthy. `previous_sync_errors`, conntrackd's
    sync error count at the previous check of this node, lets growth be judged (a restarted
    daemon starts from 0 again: a smaller count is not growth)."""
    reasons: list[str] = []
    if status.document_error:
        reasons.append(f"document: {status.document_error}")
    reasons += _cluster_reasons(status.cluster)
    reasons += _resource_reasons(status)
    reasons += _vip_reasons(status)
    reasons += _daemon_reasons(status, previous_sync_errors)
    return reasons
