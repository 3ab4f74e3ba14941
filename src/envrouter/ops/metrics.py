"""The controller's Prometheus metrics, built from one Status (pure: no I/O).

`registry_for(status, reasons)` returns a fresh CollectorRegistry holding one custom collector
that yields the same facts `envrouter status` shows; `render(registry)` gives the text format
node_exporter's textfile collector reads. Counters that the daemons count (conntrackd's
packets and errors, dnsmasq's hits) are exported as counters, so Prometheus' rate() works and
"sync errors growing" is an alert rule, not state kept here. A value that could not be asked is
left out (absent), never exported as 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from envrouter.ops.model import Status

PREFIX = "envrouter"

T = TypeVar("T")


def _g(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)


def _c(name: str, doc: str, labels: list[str] | None = None) -> CounterMetricFamily:
    return CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)


def _gauge(name: str, doc: str, labels: list[str] | None = None, *, value: float,
           at: list[str] | None = None) -> GaugeMetricFamily:
    """A gauge family with one sample: `value` at the label values `at`."""
    m = _g(name, doc, labels)
    m.add_metric(at or [], value)
    return m


def _per_item(
    items: Iterable[T],
    labels: list[str],
    at: Callable[[T], list[str]],
    columns: list[tuple[Callable[..., Metric], str, str, Callable[[T], Any]]],
) -> Iterator[Metric]:
    """One family per column (`_g` or `_c`, name, doc, the item's value), one sample per item
    at the label values `at(item)`; an item whose value is None is left out of that family."""
    items = list(items)
    for make, name, doc, value in columns:
        m = make(name, doc, labels)
        for item in items:
            v = value(item)
            if v is not None:
                m.add_metric(at(item), v)
        yield m


def _by_label(make: Callable[..., Metric], name: str, doc: str, label: str,
              samples: list[tuple[str, float | None]]) -> Metric:
    """A family of one label, one sample per (label value, value); a None value is left out."""
    m = make(name, doc, [label])
    for at, value in samples:
        if value is not None:
            m.add_metric([at], value)
    return m


def _singles(make: Callable[..., Metric],
             rows: list[tuple[str, str, float | None]]) -> Iterator[Metric]:
    """A family of one unlabelled sample per row (name, doc, value); a None value is left out."""
    for name, doc, value in rows:
        if value is not None:
            m = make(name, doc)
            m.add_metric([], value)
            yield m


def _flag(value: bool | None) -> int | None:
    return None if value is None else (1 if value else 0)


class StatusCollector(Collector):
    def __init__(self, status: Status, reasons: list[str]) -> None:
        self.status = status
        self.reasons = reasons

    def collect(self) -> Iterator[Metric]:  # noqa: C901 - one flat list of families
        st = self.status
        node = st.node
        yield _gauge("degraded",
                     "1 if `envrouter status` would report this controller degraded", ["node"],
                     value=1 if self.reasons else 0, at=[node])
        yield _gauge("degraded_reasons", "number of reasons this controller is degraded", ["node"],
                     value=len(self.reasons), at=[node])
        yield _gauge("status_collected_timestamp_seconds",
                     "when these metrics were collected", ["node"],
                     value=st.collected_at, at=[node])
        yield _gauge("namespace_present",
                     "the vrouter namespace exists on this node", ["node", "namespace"],
                     value=1 if st.namespace_present else 0, at=[node, st.namespace])

        c = st.cluster
        yield _gauge("cluster_available", "crm_mon answered on this node", ["node"],
                     value=1 if c.available else 0, at=[node])
        if c.available:
            if c.quorate is not None:
                yield _gauge("cluster_quorate",
                             "the cluster partition of this node has quorum", ["node"],
                             value=1 if c.quorate else 0, at=[node])
            yield _gauge("cluster_is_dc", "this node is the Designated Controller", ["node"],
                         value=1 if c.dc == node else 0, at=[node])
            yield from _per_item(c.nodes, ["member"], lambda n: [n.name], [
                (_g, "cluster_node_online", "a cluster member is online",
                 lambda n: _flag(n.online)),
                (_g, "cluster_node_standby", "a cluster member is in standby",
                 lambda n: _flag(n.standby)),
            ])
            run = _g("resource_running", "a resource instance is active on a member "
                     "(role Started or Promoted/Unpromoted)", ["resource", "member", "role"])
            fail = _g("resource_failed", "a resource instance is failed on a member",
                      ["resource", "member"])
            for r in c.resources:
                if r.active and r.node:
                    run.add_metric([r.top_id, r.node, r.role], 1)
                if r.failed:
                    fail.add_metric([r.top_id, r.node or ""], 1)
            yield run
            yield fail
            inst = _g("resource_instances_running", "active instances of each resource of the "
                      "layout", ["resource"])
            for rid in st.expected_resources:
                inst.add_metric([rid], len(c.active_nodes(rid)) if rid in c.top_ids else 0)
            yield inst
            m = _g("resource_failures", "failed operations Pacemaker remembers",
                   ["resource", "member", "task"])
            for f in c.failures:
                m.add_metric([f.resource, f.node, f.task], 1)
            yield m

        yield from _per_item(st.vips, ["vip", "address"], lambda v: [v.name, v.address], [
            (_g, "vip_held", "the VIP's address is in this node's vrouter namespace (kernel)",
             lambda v: _flag(v.here)),
            (_g, "vip_pacemaker_nodes", "on how many members Pacemaker runs the VIP",
             lambda v: len(v.pacemaker_nodes)),
            (_g, "vip_pacemaker_here", "Pacemaker runs the VIP on this node",
             lambda v: _flag(node in v.pacemaker_nodes)),
        ])

        ct = st.conntrackd
        if ct is not None:
            yield _gauge("conntrackd_up", "conntrackd answers on its control socket",
                         value=1 if ct.answering else 0)
            if ct.promoted_marker is not None:
                yield _gauge("conntrackd_promoted",
                             "the conntrackd OCF agent marked this instance promoted",
                             value=1 if ct.promoted_marker else 0)
            if ct.stats is not None:
                x = ct.stats
                yield _by_label(_g, "conntrackd_cache_entries",
                                "active entries in conntrackd's caches", "cache",
                                [("internal", x.internal_active),
                                 ("external", x.external_active)])
                yield _by_label(_c, "conntrackd_cache_failures", "failed cache operations",
                                "cache", [("internal", x.internal_failed),
                                          ("external", x.external_failed)])
                yield _by_label(_c, "conntrackd_sync_packets", "sync packets", "direction",
                                [("sent", x.packets_sent), ("received", x.packets_recv)])
                yield _by_label(_c, "conntrackd_sync_bytes", "sync bytes", "direction",
                                [("sent", x.bytes_sent), ("received", x.bytes_recv)])
                yield _by_label(_c, "conntrackd_sync_errors", "sync errors by kind", "kind",
                                [("send", x.errors_send), ("receive", x.errors_recv),
                                 ("malformed", x.malformed_msgs),
                                 ("lost", x.lost_msgs if x.lost_counted else None),
                                 ("receive_buffer", x.rcvbuf_errors)])
                yield from _singles(_c, [
                    ("conntrackd_kernel_resyncs", "resyncs with the kernel table",
                     x.kernel_resyncs),
                    ("conntrackd_netlink_overruns", "netlink event overruns", x.netlink_overruns),
                ])
        t = st.conntrack
        if t is not None and t.entries is not None:
            yield from _singles(_g, [
                ("conntrack_entries", "entries in the namespace's conntrack (NAT) table",
                 t.entries),
                ("conntrack_max", "nf_conntrack_max as seen in the namespace", t.max),
            ])

        d = st.dns
        if d is not None:
            yield _gauge("dns_up", "dnsmasq answers on the namespace's management address",
                         value=1 if d.answering else 0)
            yield from _singles(_g, [
                ("dns_cache_size", "dnsmasq's cache size (entries)", d.cache_size)])
            yield from _singles(_c, [
                ("dns_cache_hits", "answers from the cache", d.hits),
                ("dns_cache_misses", "queries forwarded upstream", d.misses),
                ("dns_cache_insertions", "cache insertions", d.insertions),
                ("dns_cache_evictions", "cache evictions of live entries", d.evictions),
            ])
            yield from _per_item(d.upstreams, ["upstream"], lambda u: [u.address], [
                (_g, "dns_upstream_reachable", "the upstream answers a probe from the namespace",
                 lambda u: _flag(u.reachable)),
                (_c, "dns_upstream_queries", "queries dnsmasq sent to the upstream",
                 lambda u: u.queries),
                (_c, "dns_upstream_failed_queries", "queries the upstream failed (dnsmasq)",
                 lambda u: u.failed),
            ])

        n = st.ntp
        if n is not None:
            yield _gauge("ntp_up", "chronyd answers on its command socket",
                         value=1 if n.answering else 0)
            if n.tracking is not None:
                tr = n.tracking
                yield from _singles(_g, [
                    ("ntp_stratum", "chronyd's stratum", tr.stratum),
                    ("ntp_offset_seconds", "last measured offset of the local clock",
                     tr.last_offset),
                    ("ntp_system_time_offset_seconds", "chronyd's current correction",
                     tr.system_time_offset),
                    ("ntp_root_dispersion_seconds", "root dispersion", tr.root_dispersion),
                    ("ntp_root_delay_seconds", "root delay", tr.root_delay),
                    ("ntp_synchronised", "leap status is not 'Not synchronised'",
                     1 if tr.synchronised else 0),
                    ("ntp_local_reference", "serving its own clock (local stratum / orphan)",
                     1 if tr.local_reference else 0),
                ])
            if n.answering:  # sources are only known from a daemon that answered
                yield _by_label(_g, "ntp_sources_reachable", "reachable NTP sources", "kind", [
                    ("upstream", sum(1 for s in n.sources if s.upstream and s.reachable)),
                    ("peer", sum(1 for s in n.sources if not s.upstream and s.reachable))])
                m = _g("ntp_source_reach", "the source's 8-bit reach register (255 = last 8 polls "
                       "answered)", ["source", "kind"])
                for s in n.sources:
                    m.add_metric([s.address, "upstream" if s.upstream else "peer"], s.reach)
                yield m


def registry_for(status: Status, reasons: list[str]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(status, reasons))
    return registry


def render(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()
