"""The Pacemaker resource layout of the vrouter, generated from the deployment document (pure).

Names (docs/ha.md): primitives ``vrouter``, ``vips`` (every VIP: management and public, IPv4
and IPv6), ``conntrackd``, ``dns``, ``ntp``, ``ping_upstream``, ``uplink``; a clone of X is
``X-clone``; every constraint id starts with ``envrouter-``. These fixed names are how
`envrouter.ha.cib` recognises what it owns (mark and sweep).

Constraints, and why:
- the VIPs are one resource (one holder for both roles and both families: one conntrackd
  table, one place the nodes' gateways are; a switchover is one stop and one start), with the
  vrouter clone and started after it (mandatory);
- conntrackd's promoted instance with the management VIP. The new holder must know the flows
  before traffic arrives: its peers write them into its kernel table as they arrive
  (`envrouter.services.conntrackd.EXTERNAL_CACHE` off); with an external cache the VIP agent
  commits it (``conntrackd -c``, parameter ``conntrackd_conf``) right before it adds the
  address. Either way no order
  chains the VIP start behind demote (old holder) and promote (new holder) — that chain of
  agent runs was most of a switchover's outage. promote runs in the same transition, in
  parallel. A conntrackd restart on the holder (kill -9 drill)
  does not restart the VIPs: the kernel's conntrack table, not the daemon, carries the flows
  meanwhile. The VIPs lead and conntrackd follows them (not the other way round) for the same
  reason. No notifications (notify=false): each would add a round of agent runs on every
  controller to every promote/demote, for nothing the FTFW sync does not already do;
- dns and ntp clones with the vrouter clone, after it; all clones interleaved, so one node's
  restart never restarts the others' instances;
- ping_upstream (ocf:pacemaker:ping) against the public gateway on every controller; a node whose
  ``pingd`` is undefined or <= 0 may not hold the VIPs;
- on a planned move, each VIP stop before the old holder's other stops and conntrackd's demote
  (optional, one-way): the VIP stop runs alone there, nothing aborts the transition before
  the VIP start is dispatched;
- every fencing device the CIB has (found by `envrouter ha apply`, not named by the document)
  starts after the VIP starts and stops after the VIP stops in a transition that has both
  (optional, one-way): a standby that moves devices does not start them beside the VIPs;
- resource-stickiness so the VIPs do not fail back needlessly;
- the VIPs mildly prefer a node that is not the DC
  (score below the stickiness): a crash of a holder that is also the DC costs a DC election
  before anything is scheduled.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from envrouter.agent.desired import host_port
from envrouter.document import DeploymentDocument, DocVrouter
from envrouter.errors import ValidationError
from envrouter.ha.ocf_base import DEFAULT_DOCUMENT, PROVIDER
from envrouter.ha.ocf_vip import address_entry, addresses_param

VROUTER = "vrouter"
CONNTRACKD = "conntrackd"
DNS = "dns"
NTP = "ntp"
PING = "ping_upstream"
PING_ATTRIBUTE = "pingd"
UPLINK = "uplink"
UPLINK_ATTRIBUTE = "envrouter_uplink"
CONSTRAINT_PREFIX = "envrouter-"


def clone_id(primitive: str) -> str:
    return f"{primitive}-clone"


# The one primitive that carries every VIP of the vrouter, both roles and both families
# (ocf:envrouter:vip, parameter ``addresses``): they always share one holder, and a switchover
# is one stop and one start instead of one per VIP (docs/ha.md, "One resource for the VIPs").
VIPS = "vips"

# every top-level resource id the layout can produce: what cib.py may replace or remove (the
# one-VIP primitives of the layouts before 2026-12-03, ``vip__<name>``, are owned through their
# provider and swept by the next apply)
OWNED_RESOURCE_IDS = frozenset(
    {clone_id(VROUTER), clone_id(CONNTRACKD), clone_id(DNS), clone_id(NTP), clone_id(PING),
     clone_id(UPLINK), VIPS}
)


@dataclass(frozen=True)
class LayoutOptions:
    document_path: str = DEFAULT_DOCUMENT
    stonith_enabled: bool = True
    resource_stickiness: int = 100
    migration_threshold: int = 3
    failure_timeout: str = "60s"
    no_quorum_policy: str = "stop"
    ping_dampen: str = "2s"
    ping_interval: str = "2s"
    vip_monitor_interval: str = "2s"
    # Pacemaker throttles its actions (one at a time) when a node's load passes load-threshold
    # (default 80% of the CPUs): a busy controller then moves the VIPs in several seconds
    # instead of a fraction of one. A router's actions are light; do not throttle them.
    load_threshold: str = "1000%"
    # The DC dispatches at most node-action-limit actions to a node at a time (default: twice
    # its cores). A switchover puts the four VIP stops (dual stack), the fence devices' moves
    # and the monitors' cancels on the old holder, and the four VIP starts, their first
    # monitors and the fence devices' starts on the new one: on a two-core controller the last
    # VIP (the public IPv6 one, last in the graph) waited for a free slot, its start dispatched
    # up to 0.3 s after its stop's result (docs/ha.md, "Where a switchover's time goes"). A
    # router's actions are light: let every action of a transition run at once.
    node_action_limit: str = "32"
    # The DC's controller sleeps a whole second when the CIB it fetched for the scheduler comes
    # back while its own updates are still pending — which is what happens when it schedules at
    # once after a node loss (it is still recording the loss). transition-delay debounces the
    # scheduler run: 100 ms after the last event, its updates are done. Measured: hard kills of
    # 1.03 or 2.06 s (about half each) became 1.08-1.14 s; a switchover's outage is unchanged
    # (the delay comes before the VIP stop, not between stop and start).
    transition_delay: str = "100ms"
    extra_cluster_options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Layout:
    resources: list[ET.Element]
    constraints: list[ET.Element]
    cluster_options: dict[str, str]  # crm_config, cib-bootstrap-options
    rsc_defaults: dict[str, str]
    def with_fencing_devices(self, devices: Iterable[str]) -> Layout:
        """The layout with the orders that keep the fencing devices found in the CIB out of
        the VIPs' way (`fencing_device_orders`): what `envrouter ha apply` applies."""
        return replace(self, constraints=[*self.constraints, *fencing_device_orders(devices)])


def _nvset(parent: ET.Element, tag: str, owner: str, pairs: dict[str, str]) -> None:
    if not pairs:
        return
    kind = tag
    nvs = ET.SubElement(parent, tag, id=f"{owner}-{kind}")
    for name, value in pairs.items():
        ET.SubElement(nvs, "nvpair", id=f"{owner}-{kind}-{name}", name=name, value=value)


# Pacemaker records every action as "pending" in the CIB before it runs it (record-pending,
# on by default since 2.1), then its result: two CIB updates per action, each a message through
# corosync applied by every node's CIB daemon and read by the DC. In a switchover the VIP stop's
# result queued behind the pending records of the actions dispatched with it. The pending
# record only lets crm_mon show "Starting"/"Stopping"; without it a transition writes half as
# much (measured: 14 instead of 18-21 CIB updates in a standby's first 0.9 s; docs/ha.md).
NO_PENDING_RECORD = {"record-pending": "false"}


def _ops(prim: ET.Element, ops: list[dict[str, str]]) -> None:
    el = ET.SubElement(prim, "operations")
    for op in ops:
        role = op.get("role", "")
        oid = f"{prim.get('id')}-{op['name']}-interval-{op.get('interval', '0s')}"
        if role:
            oid += f"-{role.lower()}"
        ET.SubElement(el, "op", id=oid, **{"interval": "0s", **op, **NO_PENDING_RECORD})


def _primitive(rid: str, cls: str, provider: str | None, type_: str, params: dict[str, str],
               ops: list[dict[str, str]]) -> ET.Element:
    attrs = {"id": rid, "class": cls, "type": type_}
    if provider:
        attrs["provider"] = provider
    prim = ET.Element("primitive", attrs)
    _nvset(prim, "instance_attributes", rid, params)
    _ops(prim, ops)
    return prim


def _clone(prim: ET.Element, meta: dict[str, str]) -> ET.Element:
    cid = clone_id(prim.get("id", ""))
    clone = ET.Element("clone", id=cid)
    _nvset(clone, "meta_attributes", cid, meta)
    clone.append(prim)
    return clone


def _start_stop(start: str = "60s", stop: str = "60s") -> list[dict[str, str]]:
    return [{"name": "start", "timeout": start}, {"name": "stop", "timeout": stop}]


def _colocation(cid: str, rsc: str, with_rsc: str, *, rsc_role: str | None = None) -> ET.Element:
    attrs = {"id": CONSTRAINT_PREFIX + cid, "rsc": rsc, "with-rsc": with_rsc,
             "score": "INFINITY"}
    if rsc_role:
        attrs["rsc-role"] = rsc_role
    return ET.Element("rsc_colocation", attrs)


def _order(oid: str, first: str, then: str, *, first_action: str = "start",
           then_action: str = "start", kind: str = "Mandatory",
           symmetrical: bool = True) -> ET.Element:
    attrs = {"id": CONSTRAINT_PREFIX + oid, "first": first, "first-action": first_action,
             "then": then, "then-action": then_action, "kind": kind}
    if not symmetrical:
        attrs["symmetrical"] = "false"
    return ET.Element("rsc_order", attrs)


def _vip_stops_first(vip: str, then: str, then_action: str = "stop") -> ET.Element:
    """On a planned move (standby, a controller leaving, its uplink lost) the old holder's other
    actions wait for the VIP's stop: the VIP stop, the first half of the outage, then runs
    alone on that node instead of beside demote and the dns/ntp stops (Python agent starts
    that made a 5 ms ``ip addr del`` take 16-292 ms in the lab); and the uplink stop, whose
    attribute deletion aborts the transition in flight (an aborted transition dispatches
    nothing new until every action in flight has finished and the scheduler has run again),
    is dispatched only with the VIP start. Optional and one-way: it orders only a transition
    that has both actions, never blocks one, and cannot close a loop with the symmetric orders
    ``vrouter-clone`` -> VIP / dns / ntp / conntrackd (ordering after the VIP *start* instead
    does, when the vrouter restarts in place: an invalid transition)."""
    return _order(f"{vip}-stops-before-{then}-{then_action}", vip, then, first_action="stop",
                  then_action=then_action, kind="Optional", symmetrical=False)


def _needs_upstream(vip: str) -> ET.Element:
    lid = f"{CONSTRAINT_PREFIX}{vip}-needs-upstream"
    loc = ET.Element("rsc_location", id=lid, rsc=vip)
    rule = ET.SubElement(loc, "rule", id=f"{lid}-rule", score="-INFINITY", **{"boolean-op": "or"})
    ET.SubElement(rule, "expression", id=f"{lid}-undefined", attribute=PING_ATTRIBUTE,
                  operation="not_defined")
    ET.SubElement(rule, "expression", id=f"{lid}-zero", attribute=PING_ATTRIBUTE,
                  operation="lte", value="0", type="integer")
    return loc


def _needs_uplink(vip: str) -> ET.Element:
    """Banned where the public bridge's uplink has no carrier (attribute written by
    ocf:envrouter:uplink at once on a link change). Only a defined 0 bans: a node where the
    agent is not running has no say here (the ping rule still applies)."""
    lid = f"{CONSTRAINT_PREFIX}{vip}-needs-uplink"
    loc = ET.Element("rsc_location", id=lid, rsc=vip)
    rule = ET.SubElement(loc, "rule", id=f"{lid}-rule", score="-INFINITY")
    ET.SubElement(rule, "expression", id=f"{lid}-down", attribute=UPLINK_ATTRIBUTE,
                  operation="lte", value="0", type="integer")
    return loc


def _avoid_dc(vip: str, stickiness: int) -> ET.Element:
    """A mild preference for a node that is not the DC (built-in attribute ``#is_dc``): if the
    VIP holder is also the DC, its crash costs a DC election before anything is scheduled (about
    a second more, measured). A bonus for the other nodes, not a penalty for the DC (a negative
    score would forbid the DC, e.g. the last node standing), and below the stickiness, so it
    only steers placements Pacemaker makes anyway (the first start, the choice of the new holder
    at a failover) and never moves the VIPs by itself when the DC changes."""
    lid = f"{CONSTRAINT_PREFIX}{vip}-avoids-dc"
    loc = ET.Element("rsc_location", id=lid, rsc=vip)
    rule = ET.SubElement(loc, "rule", id=f"{lid}-rule", score=str(max(1, stickiness // 2)))
    ET.SubElement(rule, "expression", id=f"{lid}-not-dc", attribute="#is_dc", operation="ne",
                  value="true")
    return loc


def fencing_device_orders(devices: Iterable[str]) -> list[ET.Element]:
    """The fencing devices' starts wait for the VIP start, and their stops for the VIP stop,
    in a transition that has both. A standby of the VIP holder moves the devices it ran in the
    switchover's own transition, and the new holder's executor and fencer then registered and
    started a device beside the VIP starts. With these orders, on one dual-stack lab, 10
    standbys each way, alternating: no VIP holder for 247 ms (median) instead of 353 ms, the
    longest ping gap 320 ms instead of 346 ms (docs/ha.md, "Fencing devices after the VIPs").
    Optional and one-way, like `_vip_stops_first`: they order, never forbid or move a device,
    so the last controller standing may run every device and a hard kill moves nothing it did
    not move before. The fencing itself does not wait: the fencer uses a device wherever it
    may run, started or not.

    One order per device and action. The CIB's schema refuses to delete a device an order
    names; `crm configure delete` deletes the device's orders with it."""
    return [_order(f"{VIPS}-{action}-before-{dev}", VIPS, dev, first_action=action,
                   then_action=action, kind="Optional", symmetrical=False)
            for dev in devices for action in ("start", "stop")]


def vip_addresses(vr: DocVrouter) -> str:
    """The VIP primitive's ``addresses``: every VIP of the document on its port, the public ones
    with their family's gateway; the public IPv4 VIP first (the agent adds them in one ``ip``
    run, and IPv4's outage ends with the public VIP)."""
    entries = [address_entry(vr.public_port, str(vr.vip_public.address), vr.vip_public.prefixlen,
                             str(vr.public_gateway)),
               address_entry(vr.management_port, str(vr.vip_management.address),
                             vr.vip_management.prefixlen)]
    if vr.vip_management6 is not None and vr.vip_public6 is not None:
        entries += [address_entry(vr.public_port, str(vr.vip_public6.address),
                                  vr.vip_public6.prefixlen, str(vr.public_gateway6)),
                    address_entry(vr.management_port, str(vr.vip_management6.address),
                                  vr.vip_management6.prefixlen)]
    return addresses_param(entries)


def build_layout(doc: DeploymentDocument, options: LayoutOptions | None = None) -> Layout:
    opts = options or LayoutOptions()
    vr = doc.vrouter
    if vr is None:
        raise ValidationError("deployment document", "vrouter",
                              "no vrouter section: nothing to lay out")
    doc_param = {"document": opts.document_path}
    interleave = {"interleave": "true"}
    resources: list[ET.Element] = []
    constraints: list[ET.Element] = []

    vrouter = _clone(_primitive(VROUTER, "ocf", PROVIDER, "vrouter", doc_param, [
        *_start_stop(), {"name": "monitor", "interval": "10s", "timeout": "30s"}]), interleave)
    resources.append(vrouter)
    vclone = clone_id(VROUTER)

    commit = {}
    from envrouter.services import conntrackd as ctd

    if vr.conntrack_sync and ctd.EXTERNAL_CACHE:  # else the peers' kernels have the flows
        commit = {"conntrackd_conf": str(ctd.paths_for(vr).file(ctd.CONF))}
    resources.append(_primitive(VIPS, "ocf", PROVIDER, "vip", {
        "namespace": vr.namespace, "addresses": vip_addresses(vr), **commit}, [
        *_start_stop("20s", "20s"),
        {"name": "monitor", "interval": opts.vip_monitor_interval, "timeout": "20s"}]))
    constraints.append(_colocation(f"{VIPS}-with-vrouter", VIPS, vclone))
    constraints.append(_order(f"vrouter-then-{VIPS}", vclone, VIPS))
    constraints.append(_needs_upstream(VIPS))
    constraints.append(_needs_uplink(VIPS))
    constraints.append(_avoid_dc(VIPS, opts.resource_stickiness))

    if vr.conntrack_sync:
        prim = _primitive(CONNTRACKD, "ocf", PROVIDER, "conntrackd", doc_param, [
            *_start_stop("30s", "30s"),
            {"name": "promote", "timeout": "30s"}, {"name": "demote", "timeout": "30s"},
            {"name": "monitor", "interval": "5s", "timeout": "20s", "role": "Promoted"},
            {"name": "monitor", "interval": "10s", "timeout": "20s", "role": "Unpromoted"}])
        resources.append(_clone(prim, {
            "promotable": "true", "promoted-max": "1", "promoted-node-max": "1",
            "clone-node-max": "1", "notify": "false", **interleave}))
        cclone = clone_id(CONNTRACKD)
        constraints.append(_colocation("conntrackd-with-vrouter", cclone, vclone))
        constraints.append(_order("vrouter-then-conntrackd", vclone, cclone))
        constraints.append(_colocation(f"conntrackd-promoted-with-{VIPS}", cclone, VIPS,
                                       rsc_role="Promoted"))

    for name in (DNS, NTP):
        resources.append(_clone(_primitive(name, "ocf", PROVIDER, name, doc_param, [
            *_start_stop("30s", "30s"),
            {"name": "monitor", "interval": "10s", "timeout": "20s"}]), interleave))
        constraints.append(_colocation(f"{name}-with-vrouter", clone_id(name), vclone))
        constraints.append(_order(f"vrouter-then-{name}", vclone, clone_id(name)))

    resources.append(_clone(_primitive(PING, "ocf", "pacemaker", "ping", {
        "host_list": str(vr.public_gateway), "multiplier": "1000", "name": PING_ATTRIBUTE,
        "dampen": opts.ping_dampen, "attempts": "2", "timeout": "1"}, [
        *_start_stop("30s", "30s"),
        {"name": "monitor", "interval": opts.ping_interval, "timeout": "10s"}]), interleave))

    exclude = [vr.public_port] if vr.bridge_kind == "ovs" else [host_port(vr.public_port)]
    resources.append(_clone(_primitive(UPLINK, "ocf", PROVIDER, UPLINK, {
        "bridge": vr.public_bridge, "exclude": " ".join(exclude), "name": UPLINK_ATTRIBUTE}, [
        *_start_stop("20s", "20s"),
        {"name": "monitor", "interval": "10s", "timeout": "20s"}]), interleave))

    later = [(clone_id(DNS), "stop"), (clone_id(NTP), "stop"), (clone_id(PING), "stop"),
             (clone_id(UPLINK), "stop")]
    if vr.conntrack_sync:
        # the old holder's conntrackd goes on originating the flows it forwards until the VIPs
        # have left it
        later.insert(0, (clone_id(CONNTRACKD), "demote"))
    constraints.extend(_vip_stops_first(VIPS, then, action) for then, action in later)

    cluster = {
        "stonith-enabled": "true" if opts.stonith_enabled else "false",
        "no-quorum-policy": opts.no_quorum_policy,
        "load-threshold": opts.load_threshold,
        "node-action-limit": opts.node_action_limit,
        "transition-delay": opts.transition_delay,
        **opts.extra_cluster_options,
    }
    defaults = {
        "resource-stickiness": str(opts.resource_stickiness),
        "migration-threshold": str(opts.migration_threshold),
        "failure-timeout": opts.failure_timeout,
    }
    return Layout(resources, constraints, cluster, defaults)


RSC_DEFAULTS_ID = "envrouter-rsc-defaults"


def rsc_defaults_element(values: dict[str, str]) -> ET.Element:
    """Resource defaults as the one meta_attributes set envrouter owns in rsc_defaults."""
    el = ET.Element("meta_attributes", id=RSC_DEFAULTS_ID)
    for name, value in values.items():
        ET.SubElement(el, "nvpair", id=f"{RSC_DEFAULTS_ID}-{name}", name=name, value=value)
    return el


def render_layout_xml(layout: Layout) -> str:
    """The layout as one readable XML document (for `envrouter ha layout`)."""
    root = ET.Element("envrouter-layout")
    crm = ET.SubElement(root, "crm_config")
    props = ET.SubElement(crm, "cluster_property_set", id="cib-bootstrap-options")
    for name, value in layout.cluster_options.items():  # what crm_attribute writes
        ET.SubElement(props, "nvpair", id=f"cib-bootstrap-options-{name}", name=name,
                      value=value)
    ET.SubElement(root, "rsc_defaults").append(rsc_defaults_element(layout.rsc_defaults))
    res = ET.SubElement(root, "resources")
    res.extend(layout.resources)
    con = ET.SubElement(root, "constraints")
    con.extend(layout.constraints)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"
