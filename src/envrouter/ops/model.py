"""What `envrouter status` and `envrouter metrics` know about one controller: plain data.

Every value here comes from a tool's own report (crm_mon, conntrackd, conntrack, chronyc,
dnsmasq) or from the kernel (netlink), parsed by `envrouter.ops.parse`; `None` means "could not
be asked" and is never replaced by a default that looks healthy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class NodeState:
    name: str
    online: bool
    standby: bool = False
    maintenance: bool = False
    unclean: bool = False
    pending: bool = False
    is_dc: bool = False
    # the node's transient and permanent attributes (crm_mon's node_attributes), e.g. pingd
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def eligible(self) -> bool:
        """Pacemaker may run resources here."""
        return self.online and not (self.standby or self.maintenance or self.unclean
                                    or self.pending)


@dataclass
class ResourceInstance:
    """One instance of a primitive as crm_mon shows it (a clone has one per node)."""

    id: str  # the primitive id, e.g. "dns"
    parent: str | None  # the clone/group id, e.g. "dns-clone"; None for a plain primitive
    agent: str
    role: str  # Started, Stopped, Promoted, Unpromoted, Starting, ...
    active: bool
    failed: bool
    managed: bool
    blocked: bool
    target_role: str | None
    node: str | None  # None when stopped

    @property
    def top_id(self) -> str:
        return self.parent or self.id


@dataclass
class OpFailure:
    """A failed operation Pacemaker remembers (until failure-timeout or a cleanup)."""

    resource: str
    node: str
    task: str
    exitcode: int
    exitstatus: str
    exitreason: str
    last_rc_change: str


@dataclass
class ClusterState:
    available: bool
    error: str | None = None
    quorate: bool | None = None
    dc: str | None = None
    stonith_enabled: bool | None = None
    maintenance_mode: bool | None = None
    nodes: list[NodeState] = field(default_factory=list)
    resources: list[ResourceInstance] = field(default_factory=list)
    failures: list[OpFailure] = field(default_factory=list)
    top_ids: list[str] = field(default_factory=list)  # clones, groups and lone primitives

    def node(self, name: str) -> NodeState | None:
        return next((n for n in self.nodes if n.name == name), None)

    def instances(self, top_id: str) -> list[ResourceInstance]:
        return [r for r in self.resources if r.top_id == top_id]

    def active_nodes(self, top_id: str, role: str | None = None) -> list[str]:
        return sorted(r.node for r in self.instances(top_id)
                      if r.active and r.node and (role is None or r.role == role))

    def running_on(self) -> dict[str, list[str]]:
        """Primitive id -> the nodes where an active instance runs (in crm_mon's order; an
        active primitive on no node has an empty list)."""
        out: dict[str, list[str]] = {}
        for r in self.resources:
            if r.active:
                out.setdefault(r.id, []).extend([r.node] if r.node else [])
        return out


@dataclass
class ConntrackdStats:
    """`conntrackd -s` (general) plus the counters of `conntrackd -s runtime`."""

    internal_active: int
    internal_created: int
    internal_failed: int  # created + updated + destroyed failures
    # with an external cache: its entries; without (DisableExternalCache On, the peers' flows
    # injected into the kernel table as they arrive: "external inject") None, and the
    # injections' counts below
    external_active: int | None
    external_created: int
    external_failed: int
    transport: str | None  # "UDP" or "multicast"
    device: str | None
    bytes_sent: int
    bytes_recv: int
    packets_sent: int
    packets_recv: int
    errors_send: int
    errors_recv: int
    malformed_msgs: int
    lost_msgs: int
    uptime_minutes: int | None = None
    netlink_overruns: int | None = None
    kernel_resyncs: int | None = None
    # UDP datagrams the namespace's kernel dropped for a full receive buffer (/proc/net/snmp
    # RcvbufErrors): sync messages lost on arrival, whatever conntrackd's own counters say
    rcvbuf_errors: int | None = None

    @property
    def lost_counted(self) -> bool:
        """conntrackd's "Lost msgs" means lost only on a channel with one sender (UDP
        unicast): on the multicast group every controller sends with its own sequence and
        the single counter of gaps grows with every interleaving (docs/ha.md)."""
        return (self.transport or "").lower() != "multicast"

    @property
    def sync_errors(self) -> int:
        """Everything that means a lost or broken sync message."""
        return (self.errors_send + self.errors_recv + self.malformed_msgs
                + (self.lost_msgs if self.lost_counted else 0) + (self.rcvbuf_errors or 0))


@dataclass
class ConntrackdStatus:
    configured: bool  # the document asks for conntrack sync
    answering: bool
    error: str | None = None
    stats: ConntrackdStats | None = None
    promoted_marker: bool | None = None  # the HA agent's "promoted" file in the run dir
    promoted_since: float | None = None  # its mtime: the last promote (commit of the cache)


@dataclass
class ConntrackTable:
    entries: int | None
    max: int | None
    error: str | None = None


@dataclass
class DnsUpstream:
    address: str
    reachable: bool | None  # an answer (any rcode) to a probe from the namespace
    queries: int | None = None  # dnsmasq's servers.bind counters
    failed: int | None = None
    detail: str | None = None


@dataclass
class DnsStatus:
    listen: str | None  # where dnsmasq was asked (the namespace's management address)
    answering: bool
    error: str | None = None
    cache_size: int | None = None
    insertions: int | None = None
    evictions: int | None = None
    hits: int | None = None
    misses: int | None = None
    upstreams: list[DnsUpstream] = field(default_factory=list)


@dataclass
class ChronyTracking:
    ref_id: str
    ref_address: str
    stratum: int
    ref_time: float
    system_time_offset: float  # seconds, chrony's correction of the system time
    last_offset: float
    rms_offset: float
    frequency_ppm: float
    residual_freq_ppm: float
    skew_ppm: float
    root_delay: float
    root_dispersion: float
    update_interval: float
    leap_status: str

    @property
    def local_reference(self) -> bool:
        """Serving its own clock (local stratum / orphan): 127.127.1.1 = 7F7F0101."""
        return self.ref_id.upper() == "7F7F0101"

    @property
    def synchronised(self) -> bool:
        return self.leap_status != "Not synchronised" and self.stratum < 16


@dataclass
class ChronySource:
    mode: str  # ^ server, = peer, # reference clock
    state: str  # * selected, + combined, - not combined, ? unreachable, x falseticker, ~ jitter
    address: str
    stratum: int
    poll: int
    reach: int  # the 8-bit reach register (chronyc prints it in octal)
    last_rx: int | None  # seconds since the last sample, None = never
    offset: float
    measured_offset: float
    error: float
    upstream: bool = True  # False for the other controllers' namespaces

    @property
    def reachable(self) -> bool:
        return self.reach != 0


@dataclass
class NtpStatus:
    answering: bool
    error: str | None = None
    tracking: ChronyTracking | None = None
    sources: list[ChronySource] = field(default_factory=list)

    @property
    def reachable_upstreams(self) -> list[str]:
        return [s.address for s in self.sources if s.upstream and s.reachable]


@dataclass
class VipStatus:
    name: str  # vrouter | vrouter_pub
    resource: str  # the Pacemaker resource carrying it: vips
    address: str
    pacemaker_nodes: list[str]  # where crm_mon says it runs
    here: bool | None  # the address is in this node's namespace (kernel), None = unknown


@dataclass
class Status:
    node: str
    namespace: str
    document: str | None  # the document's path, None when there is none
    document_error: str | None
    namespace_present: bool
    cluster: ClusterState
    vips: list[VipStatus] = field(default_factory=list)
    conntrackd: ConntrackdStatus | None = None
    conntrack: ConntrackTable | None = None
    dns: DnsStatus | None = None
    ntp: NtpStatus | None = None
    expected_resources: list[str] = field(default_factory=list)  # the layout's top ids
    collected_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
