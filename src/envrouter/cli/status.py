"""envrouter status — the state of the vrouter on this controller.

Human tables by default, ``--json`` for scripts. Exit 0 when healthy; exit 1 when degraded,
with every reason on ONE line on stderr (``degraded: reason; reason``), so a cron job, a
monitoring check or ``lab status`` can act on it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING

import typer

from envrouter.cli.common import EXIT_FAILED, CommandGroup, JsonOutput

if TYPE_CHECKING:
    from rich.console import Console

    from envrouter.ops.model import Status

app = CommandGroup(help="State of the vrouter on this controller.", add_completion=False)

LAST_SAMPLE = "status-last.json"  # conntrackd's sync error count at the previous run

# options `envrouter metrics` shares (it reports the same facts)
NamespaceOpt = typer.Option(None, "--namespace",
                            help="the vrouter namespace (default: the document's)")
DocumentOpt = typer.Option("/var/lib/envrouter/document.json", "--document",
                           help="this node's deployment document")
RunRootOpt = typer.Option("/run/envrouter", "--run-root",
                          help="the services' per-namespace run directory root")


def collect_status(document: str, namespace: str | None, run_root: str) -> Status:
    """Gather this controller's state from the options above."""
    from envrouter.ops.collect import CollectOptions, collect

    return collect(CollectOptions(document=document, namespace=namespace, run_root=run_root))


@app.command()
def status(
    as_json: JsonOutput = False,
    namespace: str | None = NamespaceOpt,
    document: str = DocumentOpt,
    state_dir: str = typer.Option("/var/lib/envrouter", "--state-dir",
                                  help="where the previous sample is kept (sync error growth)"),
    run_root: str = RunRootOpt,
) -> None:
    """Cluster, VIPs, resources, conntrackd, NAT table, DNS and NTP of this controller."""
    from envrouter.ops.assess import assess
    from envrouter.ops.collect import load_previous_sync_errors, save_sync_errors

    st = collect_status(document, namespace, run_root)
    last = os.path.join(state_dir, LAST_SAMPLE)
    reasons = assess(st, load_previous_sync_errors(last))
    if os.path.isdir(state_dir):
        save_sync_errors(last, st)
    if as_json:
        out = st.to_dict()
        out["degraded"] = bool(reasons)
        out["reasons"] = reasons
        print(json.dumps(out, indent=2))
    else:
        from rich.console import Console

        print_status(st, reasons, Console())
    if reasons:
        line = "; ".join(reasons).replace("\n", " ")
        print(f"degraded: {line}", file=sys.stderr)
        sys.exit(EXIT_FAILED)


def _yes(value: bool | None, good: bool = True) -> str:
    if value is None:
        return "[yellow]unknown[/yellow]"
    ok = value == good
    return f"[{'green' if ok else 'red'}]{'yes' if value else 'no'}[/]"


def print_status(st: Status, reasons: list[str], console: Console) -> None:  # noqa: C901 - one flat report
    from rich.table import Table

    c = st.cluster
    head = f"node [bold]{st.node}[/bold], namespace [bold]{st.namespace}[/bold]"
    if not st.namespace_present:
        head += " [red](missing)[/red]"
    console.print(head + (f", document {st.document}" if st.document else ""))
    if c.available:
        console.print(
            f"cluster: quorate {_yes(c.quorate)}, DC {c.dc or '[red]none[/red]'}, fencing "
            f"{'on' if c.stonith_enabled else '[yellow]OFF[/yellow]'}"
            + (", [red]maintenance-mode[/red]" if c.maintenance_mode else ""))
        nodes = Table(title="cluster members")
        for col in ("member", "state"):
            nodes.add_column(col)
        for n in c.nodes:
            state = ("[red]offline[/red]" if not n.online else
                     "[yellow]standby[/yellow]" if n.standby else
                     "[yellow]maintenance[/yellow]" if n.maintenance else
                     "[red]unclean[/red]" if n.unclean else "[green]online[/green]")
            nodes.add_row(n.name + (" (DC)" if n.is_dc else "")
                          + (" (this node)" if n.name == st.node else ""), state)
        console.print(nodes)
        res = Table(title="resources (Pacemaker)")
        for col in ("resource", *[n.name for n in c.nodes]):
            res.add_column(col)
        for rid in dict.fromkeys([*st.expected_resources, *c.top_ids]):
            if rid not in c.top_ids:
                res.add_row(rid, *["[red]not configured[/red]"] * len(c.nodes))
                continue
            cells = []
            for n in c.nodes:
                here = [i for i in c.instances(rid) if i.node == n.name]
                if not here:
                    # a clone should run on every eligible member; a primitive on one
                    clone = any(i.parent == rid for i in c.instances(rid))
                    cells.append("[red]stopped[/red]" if clone and n.eligible else "-")
                    continue
                i = here[0]
                color = "red" if i.failed else "green"
                cells.append(f"[{color}]{i.role}{' FAILED' if i.failed else ''}[/]")
            res.add_row(rid, *cells)
        console.print(res)
        if c.failures:
            console.print("recent failed operations (expire with failure-timeout): " + "; ".join(
                f"{f.resource} {f.task} on {f.node}: {f.exitstatus}"
                + (f" ({f.exitreason})" if f.exitreason else "") + f" at {f.last_rc_change}"
                for f in c.failures))
    else:
        console.print(f"cluster: [red]not available[/red] ({c.error})")

    vips = Table(title="VIPs")
    for col in ("VIP", "address", "Pacemaker runs it on", "in this node's namespace"):
        vips.add_column(col)
    for v in st.vips:
        vips.add_row(v.resource, v.address, " ".join(v.pacemaker_nodes) or "[red]nowhere[/red]",
                     "unknown" if v.here is None else ("yes" if v.here else "no"))
    if st.vips:
        console.print(vips)
    else:
        console.print("VIPs: unknown (no deployment document)")

    svc = Table(title="services in the namespace (this node)")
    for col in ("service", "state", "details"):
        svc.add_column(col)
    ct = st.conntrackd
    if ct is not None:
        if ct.stats is not None:
            x = ct.stats
            ext = (f"external cache {x.external_active}" if x.external_active is not None else
                   f"injected into the kernel {x.external_created} (failed "
                   f"{x.external_failed})")
            lost = (f"lost {x.lost_msgs}" if x.lost_counted else
                    f"dropped on arrival {x.rcvbuf_errors}")
            detail = (f"internal cache {x.internal_active}, {ext}; "
                      f"{x.transport} on {x.device}: {x.packets_sent} sent / {x.packets_recv} "
                      f"received, errors send {x.errors_send} recv {x.errors_recv}, {lost}, "
                      f"malformed {x.malformed_msgs}")
            if x.kernel_resyncs is not None:
                detail += f"; kernel resyncs {x.kernel_resyncs}, up {x.uptime_minutes} min"
            if ct.promoted_since:
                detail += ("; promoted (cache committed) at "
                           + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ct.promoted_since)))
        else:
            detail = ct.error or ""
        svc.add_row("conntrackd", "[green]answering[/green]" if ct.answering else
                    ("[red]not answering[/red]" if ct.configured else "not configured"), detail)
    t = st.conntrack
    if t is not None:
        svc.add_row("NAT table", "-" if t.entries is None else str(t.entries),
                    t.error or (f"of max {t.max}" if t.max else ""))
    d = st.dns
    if d is not None:
        if d.answering:
            detail = (f"on {d.listen}: cache {d.cache_size}, hits {d.hits}, misses {d.misses}, "
                      f"insertions {d.insertions}, evictions {d.evictions}; upstream " + ", ".join(
                          f"{u.address} {'reachable' if u.reachable else '[red]unreachable[/red]'}"
                          + (f" ({u.queries} queries, {u.failed} failed)"
                             if u.queries is not None else "") for u in d.upstreams))
        else:
            detail = d.error or ""
        svc.add_row("DNS (dnsmasq)", "[green]answering[/green]" if d.answering else
                    "[red]not answering[/red]", detail)
    n = st.ntp
    if n is not None:
        if n.answering and n.tracking is not None:
            tr = n.tracking
            detail = (f"stratum {tr.stratum}, reference {tr.ref_address or tr.ref_id}"
                      f"{' (local clock)' if tr.local_reference else ''}, offset "
                      f"{tr.last_offset:+.6f} s, {tr.leap_status}; sources " + ", ".join(
                          f"{s.address}{'' if s.upstream else ' (peer)'} reach {s.reach:o}"
                          for s in n.sources))
        else:
            detail = n.error or ""
        svc.add_row("NTP (chrony)", "[green]answering[/green]" if n.answering else
                    "[red]not answering[/red]", detail)
    console.print(svc)
    if reasons:
        console.print("[red]DEGRADED[/red]: " + "; ".join(reasons))
    else:
        console.print("[green]healthy[/green]")
