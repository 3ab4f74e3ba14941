"""envrouter lab — a whole environment on this machine (namespaces, cluster, control plane)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Annotated

import typer
from rich.console import Console

from envrouter.cli.common import EXIT_FAILED, CommandGroup, JsonOutput, LabStateDir
from envrouter.lab.topology import DEFAULT_PREFIX, DEFAULT_STATE_DIR, plan_lab

app = CommandGroup(
    add_completion=False,
    no_args_is_help=True,
    help="The lab: a whole environment on this machine.",
)

LabPrefix = Annotated[str, typer.Option("--prefix", envvar="ENVROUTER_LAB_PREFIX",
                                        help="name prefix of the lab's network namespaces")]


def _prefix_of(state_dir: str, default: str) -> str:
    try:
        with open(os.path.join(state_dir, "state.json")) as f:
            return json.load(f)["plan"]["prefix"]
    except (OSError, ValueError, KeyError):
        return default


@app.command()
def up(
    controllers: int = typer.Option(3, "--controllers", help="number of controllers"),
    nodes: int = typer.Option(2, "--nodes", help="number of compute nodes"),
    bridge: str = typer.Option("linux", "--bridge", help="vrouter bridge kind: linux | ovs"),
    ipv6: bool = typer.Option(True, "--ipv6/--no-ipv6",
                              help="dual stack (the default): management and public carry an "
                              "IPv6 prefix, the vrouter serves IPv6 (VIPs vrouter6, "
                              "vrouter_pub6), the upstream serves DNS, NTP and HTTP on IPv6 too"),
    deploy: bool = typer.Option(True, "--deploy/--no-deploy",
                                help="run the control plane and the agents"),
    fencing: bool = typer.Option(True, "--fencing/--no-fencing",
                                 help="a stonith device per controller (the lab's power "
                                      "switch) and stonith-enabled=true; --no-fencing: "
                                      "stonith-enabled=false"),
    installed: bool = typer.Option(False, "--installed",
                                   help="run the installed Debian packages' envrouter "
                                        "(/usr/bin/envrouter) in the nodes and for the control "
                                        "plane, and their OCF agents (/usr/lib/ocf/resource.d/"
                                        "envrouter), instead of this checkout's"),
    state_dir: LabStateDir = DEFAULT_STATE_DIR,
    prefix: LabPrefix = DEFAULT_PREFIX,
) -> None:
    """Build the lab (cleans leftovers of an earlier one first), then print its status."""
    from envrouter.lab.build import lab_up
    from envrouter.lab.status import collect_status, print_status

    plan = plan_lab(controllers, nodes, prefix=prefix, state_dir=state_dir, bridge_kind=bridge,
                    ipv6=ipv6)
    console = Console()
    lab = lab_up(plan, console, deploy_parts=deploy, fencing=fencing, installed=installed)
    console.print("[green]the lab is up[/green]")
    print_status(collect_status(lab), console)


@app.command()
def status(
    as_json: JsonOutput = False,
    state_dir: LabStateDir = DEFAULT_STATE_DIR,
) -> None:
    """Nodes, cluster, VIP holders, fencing and end-to-end checks from a compute node. Exits 1
    when the lab is degraded: a check FAILs, a controller is degraded, or a VIP is not held by
    exactly one controller."""
    from envrouter.lab.nodes import Lab, check_prerequisites
    from envrouter.lab.status import collect_status, degraded, print_status, status_json

    check_prerequisites()
    st = collect_status(Lab.load(state_dir))
    if as_json:
        print(status_json(st))
    else:
        print_status(st, Console())
    if degraded(st):
        sys.exit(EXIT_FAILED)


@app.command()
def login(state_dir: LabStateDir = DEFAULT_STATE_DIR) -> None:
    """Print the UI's login page and the lab's admin token to paste into it."""
    from envrouter.errors import InfraError
    from envrouter.lab.nodes import Lab

    cp = ((Lab.load(state_dir).state.get("deployment") or {}).get("control_plane") or {})
    if not cp.get("url") or not cp.get("token"):
        raise InfraError(f"the lab in {state_dir} has no control plane (lab up --no-deploy?)")
    print(f"UI:    {cp['url']}/ui/login")
    print(f"token: {cp['token']}")
    print("       (the lab's admin token: paste it into the login page)")


@app.command()
def down(state_dir: LabStateDir = DEFAULT_STATE_DIR, prefix: LabPrefix = DEFAULT_PREFIX) -> None:
    """Remove everything of the lab: processes, namespaces, mounts, state."""
    from envrouter.lab.build import lab_down
    from envrouter.lab.nodes import check_prerequisites

    check_prerequisites()
    console = Console()
    removed = lab_down(state_dir, _prefix_of(state_dir, prefix), console)
    console.print(f"removed {len(removed)} objects" if removed else "nothing to remove")


@app.command(name="exec", context_settings={"allow_extra_args": True,
                                             "ignore_unknown_options": True})
def exec_(
    ctx: typer.Context,
    node: str = typer.Argument(..., help="node name, e.g. ctl1, cmp1, up, master"),
    state_dir: LabStateDir = DEFAULT_STATE_DIR,
) -> None:
    """Run a command inside a node: envrouter lab exec NODE -- CMD [ARGS]..."""
    from envrouter.lab.nodes import Lab

    argv = list(ctx.args)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        argv = ["bash"]
    lab = Lab.load(state_dir)
    lab.plan.node(node)
    sys.exit(subprocess.call(lab.nsenter_argv(node, argv)))


from envrouter.cli.drill import drill as _drill  # noqa: E402  (the drills: envrouter.cli.drill)

app.command("drill")(_drill)
