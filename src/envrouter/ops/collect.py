"""Collect one controller's Status (effects): ask the tools, parse with `envrouter.ops.parse`.

Where it asks, and why there:
- Pacemaker: ``crm_mon -1 --output-as=xml`` (the local CIB replica, kept in sync by the DC);
- VIPs: Pacemaker's view, and the kernel's (netlink, inside the vrouter namespace): the two
  disagreeing is the split brain an operator must see;
- conntrackd: its client on the per-namespace control socket (``-C`` the instance's own config,
  written by the services layer under ``<run_root>/<namespace>/conntrackd/``), ``-s`` and
  ``-s runtime``; the kernel table's size with ``conntrack -C`` inside the namespace;
- dnsmasq: CHAOS TXT ``*.bind`` queries to the namespace's own management address (where it
  listens), and one probe per upstream from inside the namespace (what dnsmasq itself sees);
- chrony: ``chronyc -c -n`` over the per-namespace command socket (no UDP command port is open).
Independent probes run concurrently so that one dead upstream costs its timeout once.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from envrouter.agent.netlink import netns_exists
from envrouter.document import DeploymentDocument, DocVip, DocVrouter, parse_document
from envrouter.ha.layout import (
    CONNTRACKD,
    DNS,
    NTP,
    PING,
    VIPS,
    VROUTER,
    clone_id,
)
from envrouter.ha.ocf_base import DEFAULT_DOCUMENT
from envrouter.ha.ocf_conntrackd import PROMOTED_FILE  # written by that agent on promote
from envrouter.ops.model import (
    ClusterState,
    ConntrackdStatus,
    ConntrackTable,
    DnsStatus,
    DnsUpstream,
    NtpStatus,
    Status,
    VipStatus,
)
from envrouter.ops.parse import (
    ParseError,
    chaos_int,
    parse_chrony_sources_csv,
    parse_chrony_tracking_csv,
    parse_conntrack_count,
    parse_conntrackd_stats,
    parse_crm_mon,
    parse_dnsmasq_chaos,
    parse_dnsmasq_servers,
    parse_udp_rcvbuf_errors,
)
from envrouter.services import conntrackd as svc_conntrackd
from envrouter.services import ntp as svc_ntp
from envrouter.services.process import RUN_ROOT, service_paths

DEFAULT_NAMESPACE = "vrouter"
CHAOS_NAMES = ("cachesize.bind", "insertions.bind", "evictions.bind", "hits.bind",
               "misses.bind", "servers.bind")

Run = Callable[[list[str], float], subprocess.CompletedProcess]


def run_command(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              check=False, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: not installed")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"{argv[0]}: no answer in {timeout} s")


def _why(proc: subprocess.CompletedProcess) -> str:
    text = (proc.stderr or proc.stdout or "").strip().splitlines()
    # conntrackd prefixes its messages with a timestamp and pid; keep the last line only
    last = text[-1] if text else f"exit {proc.returncode}"
    return last.split("] ")[-1][:200]


@dataclass
class CollectOptions:
    document: str = DEFAULT_DOCUMENT
    namespace: str | None = None  # default: the document's, else "vrouter"
    run_root: str = RUN_ROOT  # where the services layer keeps pid files and sockets
    node: str | None = None  # default: crm_node -n, else the host name
    timeout: float = 10.0


def vips_and_ports(vr: DocVrouter) -> list[tuple[DocVip, str]]:
    """Every VIP of the document (the IPv6 ones too, when it serves IPv6) with its port."""
    out = [(vr.vip_management, vr.management_port), (vr.vip_public, vr.public_port)]
    if vr.vip_management6 is not None and vr.vip_public6 is not None:
        out += [(vr.vip_management6, vr.management_port), (vr.vip_public6, vr.public_port)]
    return out


def expected_resources(vr: DocVrouter | None) -> list[str]:
    """The top-level resource ids the layout (envrouter.ha.layout) creates for this document."""
    ids = [clone_id(VROUTER), VIPS]
    if vr is None or vr.conntrack_sync:
        ids.append(clone_id(CONNTRACKD))
    ids += [clone_id(DNS), clone_id(NTP), clone_id(PING)]
    return ids


def collect_cluster(run: Run = run_command, timeout: float = 20.0) -> ClusterState:
    proc = run(["crm_mon", "-1", "--output-as=xml"], timeout)
    if proc.stdout.strip().startswith("<"):
        try:
            return parse_crm_mon(proc.stdout)
        except ParseError as exc:
            return ClusterState(available=False, error=str(exc))
    return ClusterState(available=False, error=f"crm_mon: {_why(proc)}")


def local_node_name(run: Run = run_command) -> str:
    proc = run(["crm_node", "-n"], 10.0)
    name = proc.stdout.strip()
    return name if proc.returncode == 0 and name else socket.gethostname()


def collect_conntrackd(namespace: str, run_root: str, configured: bool,
                       run: Run = run_command, timeout: float = 10.0) -> ConntrackdStatus:
    paths = service_paths(namespace, svc_conntrackd.SERVICE, run_root=run_root)
    conf = paths.file(svc_conntrackd.CONF)
    marker = paths.file(PROMOTED_FILE)
    try:
        promoted_since: float | None = marker.stat().st_mtime
    except OSError:
        promoted_since = None
    st = ConntrackdStatus(configured=configured, answering=False,
                          promoted_marker=promoted_since is not None,
                          promoted_since=promoted_since)
    if not conf.exists():
        st.error = f"no configuration at {conf} (not started on this node)"
        return st
    # the client only talks to the control socket: no need to enter the namespace
    general = run(["conntrackd", "-C", str(conf), "-s"], timeout)
    if general.returncode != 0:
        st.error = _why(general)
        return st
    runtime = run(["conntrackd", "-C", str(conf), "-s", "runtime"], timeout)
    try:
        st.stats = parse_conntrackd_stats(
            general.stdout, runtime.stdout if runtime.returncode == 0 else None)
    except ParseError as exc:
        st.error = str(exc)
        return st
    st.answering = True
    snmp = run(["ip", "netns", "exec", namespace, "cat", "/proc/net/snmp"], timeout)
    if snmp.returncode == 0:
        st.stats.rcvbuf_errors = parse_udp_rcvbuf_errors(snmp.stdout)
    return st


def collect_conntrack_table(namespace: str, run: Run = run_command,
                            timeout: float = 10.0) -> ConntrackTable:
    count = run(["ip", "netns", "exec", namespace, "conntrack", "-C"], timeout)
    if count.returncode != 0:
        return ConntrackTable(entries=None, max=None, error=_why(count))
    maximum = run(["ip", "netns", "exec", namespace, "cat",
                   "/proc/sys/net/netfilter/nf_conntrack_max"], timeout)
    try:
        entries = parse_conntrack_count(count.stdout)
    except ParseError as exc:
        return ConntrackTable(entries=None, max=None, error=str(exc))
    value = maximum.stdout.strip()
    return ConntrackTable(entries=entries, max=int(value) if value.isdigit() else None)


def probe_dns_upstream(namespace: str, address: str, run: Run = run_command) -> DnsUpstream:
    """Any DNS answer (even REFUSED) from the upstream, asked from inside the namespace."""
    proc = run(["ip", "netns", "exec", namespace, "dig", "+time=1", "+tries=2", "+noall",
                "+comments", f"@{address}", ".", "NS"], 10.0)
    answered = proc.returncode == 0 and "status:" in proc.stdout
    return DnsUpstream(address=address, reachable=answered,
                       detail=None if answered else _why(proc))


def collect_dns(namespace: str, vr: DocVrouter, run: Run = run_command,
                pool: ThreadPoolExecutor | None = None) -> DnsStatus:
    listen = str(vr.namespace_management_address)
    upstream_futures = [
        (pool.submit(probe_dns_upstream, namespace, a, run) if pool else None, a)
        for a in map(str, vr.upstream_dns)
    ]
    argv = ["ip", "netns", "exec", namespace, "dig", "+time=1", "+tries=2", "+noall",
            "+answer", f"@{listen}"]
    for name in CHAOS_NAMES:
        argv += ["chaos", "txt", name]
    proc = run(argv, 15.0)
    st = DnsStatus(listen=listen, answering=False)
    answers = parse_dnsmasq_chaos(proc.stdout) if proc.returncode == 0 else {}
    if "cachesize.bind" not in answers:
        st.error = _why(proc) if proc.returncode != 0 else "no answer to CHAOS cachesize.bind"
    else:
        st.answering = True
        try:
            st.cache_size = chaos_int(answers, "cachesize.bind")
            st.insertions = chaos_int(answers, "insertions.bind")
            st.evictions = chaos_int(answers, "evictions.bind")
            st.hits = chaos_int(answers, "hits.bind")
            st.misses = chaos_int(answers, "misses.bind")
            servers = parse_dnsmasq_servers(answers.get("servers.bind", []))
        except ParseError as exc:
            st.answering, st.error, servers = False, str(exc), []
    counters = {addr: (q, f) for addr, _port, q, f in servers} if st.answering else {}
    for fut, address in upstream_futures:
        up = fut.result() if fut else probe_dns_upstream(namespace, address, run)
        up.queries, up.failed = counters.get(address, (None, None))
        st.upstreams.append(up)
    return st


def collect_ntp(namespace: str, run_root: str, vr: DocVrouter | None,
                run: Run = run_command, timeout: float = 10.0) -> NtpStatus:
    sock = service_paths(namespace, svc_ntp.SERVICE, run_root=run_root).file(svc_ntp.SOCKET)
    if not sock.exists():
        return NtpStatus(answering=False, error=f"no command socket at {sock}")
    tracking = run(["chronyc", "-h", str(sock), "-c", "-n", "tracking"], timeout)
    if tracking.returncode != 0:
        return NtpStatus(answering=False, error=_why(tracking))
    sources = run(["chronyc", "-h", str(sock), "-c", "-n", "sources"], timeout)
    st = NtpStatus(answering=True)
    try:
        st.tracking = parse_chrony_tracking_csv(tracking.stdout)
        st.sources = parse_chrony_sources_csv(sources.stdout) if sources.returncode == 0 else []
    except ParseError as exc:
        return NtpStatus(answering=False, error=str(exc))
    peers = {str(p.namespace_address) for p in vr.peers} if vr is not None else set()
    for s in st.sources:
        s.upstream = s.address not in peers
    return st


def load_document_or_error(path: str) -> tuple[DeploymentDocument | None, str | None]:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror or exc}"
    try:
        return parse_document(raw), None
    except Exception as exc:  # noqa: BLE001 - any invalid document is reported, not raised
        return None, f"{path}: {exc}"


def collect(opts: CollectOptions | None = None, run: Run = run_command) -> Status:
    opts = opts or CollectOptions()
    doc, doc_error = load_document_or_error(opts.document)
    vr = doc.vrouter if doc is not None else None
    if doc is not None and vr is None:
        doc_error = f"{opts.document}: no vrouter section (not a controller?)"
    namespace = opts.namespace or (vr.namespace if vr else DEFAULT_NAMESPACE)
    present = netns_exists(namespace)
    with ThreadPoolExecutor(max_workers=12) as pool:
        cluster_f = pool.submit(collect_cluster, run)
        node_f = pool.submit(lambda: opts.node or local_node_name(run))
        configured = vr.conntrack_sync if vr is not None else True
        ct_f = pool.submit(collect_conntrackd, namespace, opts.run_root, configured, run,
                           opts.timeout)
        table_f = pool.submit(collect_conntrack_table, namespace, run) if present else None
        ntp_f = pool.submit(collect_ntp, namespace, opts.run_root, vr, run, opts.timeout)
        dns_f = (pool.submit(collect_dns, namespace, vr, run, pool)
                 if vr is not None and present else None)
        cluster = cluster_f.result()
        vips = []
        if vr is not None:
            from envrouter.agent.vip import vip_present

            for vip, port in vips_and_ports(vr):
                try:
                    here: bool | None = (vip_present(namespace, port, str(vip.address))
                                         if present else False)
                except Exception:  # noqa: BLE001 - netlink refused: unknown, not "absent"
                    here = None
                vips.append(VipStatus(name=vip.name, resource=VIPS, address=str(vip.address),
                                      pacemaker_nodes=cluster.active_nodes(VIPS)
                                      if cluster.available else [], here=here))
        status = Status(
            node=node_f.result(), namespace=namespace, document=opts.document if doc else None,
            document_error=doc_error, namespace_present=present, cluster=cluster, vips=vips,
            conntrackd=ct_f.result(),
            conntrack=(table_f.result() if table_f else
                       ConntrackTable(None, None, f"namespace {namespace} missing")),
            # without a document the listen address is unknown: DNS is not checked
            dns=(dns_f.result() if dns_f else
                 DnsStatus(listen=str(vr.namespace_management_address), answering=False,
                           error=f"namespace {namespace} missing") if vr is not None else None),
            ntp=ntp_f.result(),
            expected_resources=expected_resources(vr),
            collected_at=time.time(),
        )
    return status


def load_previous_sync_errors(path: str) -> int | None:
    """conntrackd's sync error count saved by the previous `envrouter status` (or None)."""
    import json

    try:
        with open(path) as f:
            value = json.load(f).get("conntrackd_sync_errors")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def save_sync_errors(path: str, status: Status) -> None:
    """Remember this sample's conntrackd sync error count (atomically; best effort: a status
    command on a read-only state dir still reports)."""
    import json

    ct = status.conntrackd
    if ct is None or ct.stats is None:
        return
    from envrouter.errors import InfraError
    from envrouter.files import write_atomic

    text = json.dumps({"conntrackd_sync_errors": ct.stats.sync_errors,
                       "at": status.collected_at})
    try:
        write_atomic(path, text)
    except InfraError:
        pass

