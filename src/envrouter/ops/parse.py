"""Parsers of the tools' own reports (pure). Each takes the text a tool printed and returns
plain data from `envrouter.ops.model`; text that is not what the tool prints raises
`ParseError` naming the tool, never a silent default.

- ``crm_mon -1 --output-as=xml`` (Pacemaker 2.1: ``pacemaker-result``), the one reader of it
- ``crmadmin -S NODE --output-as=xml`` (the controller's state, e.g. S_IDLE)
- ``conntrackd -s`` and ``conntrackd -s runtime`` (1.4.x)
- ``conntrack -C``
- ``chronyc -c -n tracking`` / ``chronyc -c -n sources`` (CSV: chronyc's documented
  machine-readable form; the human layout changes units with magnitude)
- ``dig +noall +answer chaos txt <name>.bind ...`` answered by dnsmasq
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from envrouter.errors import InfraError
from envrouter.ops.model import (
    ChronySource,
    ChronyTracking,
    ClusterState,
    ConntrackdStats,
    NodeState,
    OpFailure,
    ResourceInstance,
)


class ParseError(InfraError):
    """A tool printed something we do not understand (its version changed?)."""

    def __init__(self, tool: str, reason: str) -> None:
        super().__init__(f"{tool}: unexpected output: {reason}")
        self.tool = tool
        self.reason = reason


def _bool(value: str | None) -> bool:
    return value == "true"


# ---------------------------------------------------------------- crm_mon

def _instance(el: ET.Element, parent: str | None) -> list[ResourceInstance]:
    nodes = [n.get("name", "") for n in el.findall("node")]
    base = dict(
        id=el.get("id", ""), parent=parent, agent=el.get("resource_agent", ""),
        role=el.get("role", ""), active=_bool(el.get("active")), failed=_bool(el.get("failed")),
        managed=el.get("managed", "true") == "true", blocked=_bool(el.get("blocked")),
        target_role=el.get("target_role"),
    )
    if not nodes:
        return [ResourceInstance(**base, node=None)]
    return [ResourceInstance(**base, node=n) for n in nodes]


def _failure(el: ET.Element) -> OpFailure:
    task = el.get("task", "")
    interval = el.get("interval", "0")
    op_key = el.get("op_key", "")
    # op_key is "<resource>_<task>_<interval ms>"; resource ids may contain underscores
    suffix = f"_{task}_{interval}"
    resource = op_key[: -len(suffix)] if task and op_key.endswith(suffix) else op_key
    try:
        exitcode = int(el.get("exitcode", "-1"))
    except ValueError:
        exitcode = -1
    return OpFailure(resource=resource, node=el.get("node", ""), task=task, exitcode=exitcode,
                     exitstatus=el.get("exitstatus", ""), exitreason=el.get("exitreason", ""),
                     last_rc_change=el.get("last-rc-change", ""))


def _pacemaker_result(tool: str, xml_text: str) -> ET.Element:
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise ParseError(tool, f"not XML ({exc})") from None
    if root.tag != "pacemaker-result":
        raise ParseError(tool, f"root element <{root.tag}>, expected <pacemaker-result>")
    return root


def _status_error(tool: str, root: ET.Element) -> str | None:
    """The tool's own error report (``<status code="N">``, N != 0), or None."""
    status = root.find("status")
    if status is None or status.get("code", "0") == "0":
        return None
    errors = [e.text.strip() for e in status.iter("error") if e.text and e.text.strip()]
    detail = f": {errors[-1]}" if errors else ""
    return f"{tool}: {status.get('message', 'error')} (code {status.get('code')}){detail}"


def parse_crm_mon(xml_text: str) -> ClusterState:
    root = _pacemaker_result("crm_mon", xml_text)
    if error := _status_error("crm_mon", root):
        return ClusterState(available=False, error=error)
    summary = root.find("summary")
    if summary is None:
        raise ParseError("crm_mon", "no <summary>")
    state = ClusterState(available=True)
    dc = summary.find("current_dc")
    if dc is not None:
        state.quorate = _bool(dc.get("with_quorum"))
        state.dc = dc.get("name") if _bool(dc.get("present")) else None
    opts = summary.find("cluster_options")
    if opts is not None:
        if opts.get("stonith-enabled") is not None:
            state.stonith_enabled = _bool(opts.get("stonith-enabled"))
        if opts.get("maintenance-mode") is not None:
            state.maintenance_mode = _bool(opts.get("maintenance-mode"))
    for n in root.findall("./nodes/node"):
        state.nodes.append(NodeState(
            name=n.get("name", ""), online=_bool(n.get("online")), standby=_bool(n.get("standby")),
            maintenance=_bool(n.get("maintenance")), unclean=_bool(n.get("unclean")),
            pending=_bool(n.get("pending")), is_dc=_bool(n.get("is_dc"))))
    for n in root.findall("./node_attributes/node"):
        node = state.node(n.get("name", ""))
        if node is not None:
            node.attributes.update((a.get("name", ""), a.get("value", ""))
                                   for a in n.findall("attribute"))
    resources = root.find("resources")
    for top in (resources if resources is not None else []):
        tid = top.get("id", "")
        state.top_ids.append(tid)
        if top.tag == "resource":
            state.resources += _instance(top, None)
        else:  # clone, group, bundle: their primitives, one level or two (clone of a group)
            for el in top.iter("resource"):
                state.resources += _instance(el, tid)
    state.failures = [_failure(f) for f in root.findall("./failures/failure")]
    return state


def parse_crmadmin_state(xml_text: str) -> str:
    """``crmadmin -S NODE --output-as=xml``: the controller's FSA state (``S_IDLE`` once no
    transition is in flight). A failed query (the node's controller does not answer) raises."""
    root = _pacemaker_result("crmadmin", xml_text)
    if error := _status_error("crmadmin", root):
        raise ParseError("crmadmin", error)
    # <crmd node_name=".." state="S_IDLE" result="ok"/> (the element's name varies by version)
    states = [el.get("state", "") for el in root if el.tag != "status" and el.get("state")]
    if len(states) != 1:
        raise ParseError("crmadmin", f"{len(states)} controller states, expected 1")
    return states[0]


# ---------------------------------------------------------------- conntrackd

_NUM = r"\s*(\d+)"


def _ints(line: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", line)]


def parse_conntrackd_stats(text: str, runtime_text: str | None = None) -> ConntrackdStats:
    """`conntrackd -s` (and optionally `conntrackd -s runtime`)."""
    caches: dict[str, dict[str, int]] = {}
    section: str | None = None
    traffic: dict[str, int] = {}
    transport = device = None
    malformed = lost = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        m = re.match(r"^(?:cache (internal|external)|external (inject)):$", line)
        if m:
            section = m.group(1) or "external"
            caches[section] = {"inject": 1} if m.group(2) else {}
            continue
        m = re.match(r"^(\S+) traffic \(active device=([^)]*)\):$", line)
        if m:
            section, transport, device = "traffic", m.group(1), m.group(2)
            continue
        if line.endswith(":") and not re.search(r"\d", line):
            section = line[:-1]
            continue
        if section in ("internal", "external"):
            c = caches[section]
            if line.startswith("current active connections:") and "inject" not in c:
                c["active"] = _ints(line)[0]
            else:
                m = re.match(r"^connections (created|updated|destroyed):" + _NUM
                             + r"\s+failed:" + _NUM + "$", line)
                if m:
                    c[m.group(1)] = int(m.group(2))
                    c["failed"] = c.get("failed", 0) + int(m.group(3))
        elif section == "traffic":
            m = re.match(r"^(\d+) (Bytes|Pckts|Error) sent\s+(\d+) (?:Bytes|Pckts|Error) recv$",
                         line.replace("send", "sent"))
            if m:
                traffic[f"{m.group(2)}_sent"] = int(m.group(1))
                traffic[f"{m.group(2)}_recv"] = int(m.group(3))
        elif section == "message tracking":
            m = re.match(r"^(\d+) Malformed msgs\s+(\d+) Lost msgs$", line)
            if m:
                malformed, lost = int(m.group(1)), int(m.group(2))
    for name in ("internal", "external"):
        if name not in caches or ("active" not in caches[name]
                                  and "inject" not in caches[name]):
            raise ParseError("conntrackd -s", f"no 'cache {name}' section")
    if malformed is None or lost is None:
        raise ParseError("conntrackd -s", "no 'message tracking' section")
    stats = ConntrackdStats(
        internal_active=caches["internal"]["active"],
        internal_created=caches["internal"].get("created", 0),
        internal_failed=caches["internal"].get("failed", 0),
        external_active=caches["external"].get("active"),
        external_created=caches["external"].get("created", 0),
        external_failed=caches["external"].get("failed", 0),
        transport=transport, device=device,
        bytes_sent=traffic.get("Bytes_sent", 0), bytes_recv=traffic.get("Bytes_recv", 0),
        packets_sent=traffic.get("Pckts_sent", 0), packets_recv=traffic.get("Pckts_recv", 0),
        errors_send=traffic.get("Error_sent", 0), errors_recv=traffic.get("Error_recv", 0),
        malformed_msgs=malformed, lost_msgs=lost,
    )
    if runtime_text is not None:
        m = re.search(r"daemon uptime:\s*(\d+) min", runtime_text)
        if not m:
            raise ParseError("conntrackd -s runtime", "no 'daemon uptime'")
        stats.uptime_minutes = int(m.group(1))
        m = re.search(r"netlink overrun:\s*(\d+)", runtime_text)
        stats.netlink_overruns = int(m.group(1)) if m else None
        m = re.search(r"resync with kernel table:\s*(\d+)", runtime_text)
        stats.kernel_resyncs = int(m.group(1)) if m else None
    return stats


def parse_udp_rcvbuf_errors(text: str) -> int | None:
    """/proc/net/snmp: the Udp line's RcvbufErrors (datagrams dropped for a full receive
    buffer), or None if absent."""
    rows = [line.split() for line in text.splitlines() if line.startswith("Udp:")]
    if len(rows) < 2 or "RcvbufErrors" not in rows[0]:
        return None
    value = rows[1][rows[0].index("RcvbufErrors")]
    return int(value) if value.isdigit() else None


def parse_conntrack_count(text: str) -> int:
    """`conntrack -C`: one number."""
    value = text.strip()
    if not value.isdigit():
        raise ParseError("conntrack -C", f"{value[:80]!r} is not a count")
    return int(value)


# ---------------------------------------------------------------- chrony

def parse_chrony_tracking_csv(text: str) -> ChronyTracking:
    rows = [r for r in text.strip().splitlines() if r.strip()]
    if len(rows) != 1:
        raise ParseError("chronyc -c tracking", f"{len(rows)} lines, expected 1")
    f = rows[0].split(",")
    if len(f) != 14:
        raise ParseError("chronyc -c tracking", f"{len(f)} fields, expected 14")
    try:
        return ChronyTracking(
            ref_id=f[0], ref_address=f[1], stratum=int(f[2]), ref_time=float(f[3]),
            system_time_offset=float(f[4]), last_offset=float(f[5]), rms_offset=float(f[6]),
            frequency_ppm=float(f[7]), residual_freq_ppm=float(f[8]), skew_ppm=float(f[9]),
            root_delay=float(f[10]), root_dispersion=float(f[11]),
            update_interval=float(f[12]), leap_status=f[13],
        )
    except ValueError as exc:
        raise ParseError("chronyc -c tracking", str(exc)) from None


_NEVER = 4294967295  # chronyc's "no sample yet" in the LastRx column


def parse_chrony_sources_csv(text: str) -> list[ChronySource]:
    out = []
    for row in text.strip().splitlines():
        if not row.strip():
            continue
        f = row.split(",")
        if len(f) != 10:
            raise ParseError("chronyc -c sources", f"{len(f)} fields in {row[:80]!r}, expected 10")
        try:
            last_rx = int(f[6])
            out.append(ChronySource(
                mode=f[0], state=f[1], address=f[2], stratum=int(f[3]), poll=int(f[4]),
                reach=int(f[5], 8), last_rx=None if last_rx == _NEVER else last_rx,
                offset=float(f[7]), measured_offset=float(f[8]), error=float(f[9])))
        except ValueError as exc:
            raise ParseError("chronyc -c sources", f"{exc} in {row[:80]!r}") from None
    return out


# ---------------------------------------------------------------- dnsmasq

_TXT_RR = re.compile(r'^(\S+)\.\s+\d+\s+(?:CH|CHAOS)\s+TXT\s+(.*)$')


def parse_dnsmasq_chaos(text: str) -> dict[str, list[str]]:
    """`dig +noall +answer chaos txt a.bind chaos txt b.bind ...` -> {"a.bind": [strings]}.
    Every TXT record gives its (unquoted) strings; servers.bind has one string per server."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = _TXT_RR.match(line.strip())
        if not m:
            continue
        out.setdefault(m.group(1).lower(), []).extend(re.findall(r'"((?:[^"\\]|\\.)*)"',
                                                                 m.group(2)))
    return out


def parse_dnsmasq_servers(strings: list[str]) -> list[tuple[str, int, int, int]]:
    """servers.bind strings "addr#port queries failed" -> (addr, port, queries, failed)."""
    out = []
    for s in strings:
        m = re.match(r"^(\S+?)#(\d+)\s+(\d+)\s+(\d+)$", s.strip())
        if not m:
            raise ParseError("dnsmasq servers.bind", f"{s[:80]!r}")
        out.append((m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))))
    return out


def chaos_int(answers: dict[str, list[str]], name: str) -> int | None:
    values = answers.get(name)
    if not values:
        return None
    if not values[0].isdigit():
        raise ParseError(f"dnsmasq {name}", f"{values[0][:40]!r} is not a number")
    return int(values[0])
