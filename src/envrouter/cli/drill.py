"""`envrouter lab drill` — failover drills in the lab (registered on the lab group, which
reports its errors)."""

from __future__ import annotations

import json
import sys

import typer

from envrouter.cli.common import EXIT_FAILED, LabStateDir
from envrouter.lab.topology import DEFAULT_STATE_DIR

DRILL_HELP = "hard-kill | standby | partition | daemon-kill | upstream-link | hang | all"


def drill(
    name: str = typer.Argument(..., help=DRILL_HELP),
    tcp: int = typer.Option(3, "--tcp", help="TCP connections per compute node"),
    udp: int = typer.Option(2, "--udp", help="UDP flows per compute node"),
    connections: int = typer.Option(
        0, "--connections", help="idle established TCP connections through the NAT before the "
        "fault (spread over the compute nodes and several processes), each checked after it; "
        "with a churn of new connections and UDP flows whose NAT mapping must not change"),
    churn: float = typer.Option(200.0, "--churn",
                                help="with --connections: new connections a second"),
    udp_flows: int = typer.Option(20, "--udp-flows",
                                  help="with --connections: UDP flows per compute node"),
    restore: bool = typer.Option(True, "--restore/--no-restore",
                                 help="put the lab back after each drill"),
    hang_seconds: float = typer.Option(6.0, "--hang-seconds", min=0.5, max=120,
                                       help="hang: how long every process of the holder "
                                            "stays stopped (SIGSTOP, then SIGCONT)"),
    as_json: bool = typer.Option(False, "--json", help="print the reports as JSON"),
    plot: str | None = typer.Option(None, "--plot", metavar="FILE",
                                    help="also write the drill's timeline (SVG) to FILE; with "
                                    "several drills FILE-<drill>.svg each (every drill writes "
                                    "timeline.svg beside its report.json anyway)"),
    state_dir: LabStateDir = DEFAULT_STATE_DIR,
) -> None:
    """Run a failover drill while traffic flows through the NAT; print its report. Exits
    non-zero if a connection or flow was lost or the VIPs did not end where they should."""
    from rich.console import Console

    from envrouter.errors import ValidationError
    from envrouter.lab.drill_report import format_report, verdict
    from envrouter.lab.drills import DRILLS, DrillOptions, run_drills
    from envrouter.lab.nodes import Lab, check_prerequisites

    names = list(DRILLS) if name == "all" else [name]
    if names[0] not in DRILLS:
        raise ValidationError("drill", "name", f"{name!r}: one of {DRILL_HELP}")
    check_prerequisites()
    lab = Lab.load(state_dir)
    console = Console(stderr=as_json)
    opts = DrillOptions(tcp, udp, restore, hang_seconds=hang_seconds, connections=connections,
                        churn_rate=churn, udp_flows=udp_flows)
    reports = run_drills(lab, names, opts,
                         log=lambda s: console.print(f"[dim]{s}[/dim]"), plot=plot)
    if as_json:
        print(json.dumps([r.to_dict() for r in reports], indent=2))
    else:
        for r in reports:
            console.print(format_report(r), highlight=False, markup=False)
    if any(verdict(r) for r in reports):
        sys.exit(EXIT_FAILED)
