"""`envrouter upgrade ENV`: bring an environment deployed without the vrouter onto it, live."""

from __future__ import annotations

import sys
import time

import typer
from rich.console import Console
from rich.table import Table

from envrouter.cli.common import EXIT_FAILED, CommandGroup

app = CommandGroup(
    add_completion=False,
    no_args_is_help=True,
    help="Bring a deployed environment onto the vrouter.",
)


class _RichReporter:
    def __init__(self, console: Console) -> None:
        self.console = console
        self._status = None

    def start(self, step) -> None:  # noqa: ANN001
        self._status = self.console.status(f"{step.text} ...")
        self._status.start()

    def _stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def done(self, step, seconds: float) -> None:  # noqa: ANN001
        self._stop()
        self.console.print(f"[green]ok[/green]     {step.text} ({seconds:.1f} s)")

    def failed(self, step, seconds: float, reason: str) -> None:  # noqa: ANN001
        self._stop()
        self.console.print(f"[red]FAILED[/red] {step.text} ({seconds:.1f} s)\n       {reason}")

    def note(self, text: str) -> None:
        self.console.print(f"[yellow]note[/yellow]   {text}")


def _node_table(states: dict[str, str], title: str) -> Table:
    table = Table(title=title)
    table.add_column("node")
    table.add_column("state")
    colour = {"moved": "green", "not moved": "yellow", "moved back": "red"}
    for node, state in sorted(states.items()):
        table.add_row(node, f"[{colour.get(state, 'red')}]{state}[/]")
    return table


def _runner(kind: str, lab_state_dir: str, ssh_user: str | None, ssh_options: list[str],
            ssh_hosts: list[str], ssh_config: str | None = None,
            agent_root: str | None = None):  # noqa: ANN202
    from envrouter.errors import ValidationError

    if kind == "lab":
        from envrouter.lab.nodes import Lab
        from envrouter.upgrade.runner import LabRunner

        return LabRunner(Lab.load(lab_state_dir))
    if kind == "ssh":
        from envrouter.upgrade.runner import SshRunner

        targets = {}
        for item in ssh_hosts:
            node, sep, host = item.partition("=")
            if not sep or not node or not host:
                raise ValidationError("upgrade", "--ssh-host", f"{item!r}: use NODE=ADDRESS")
            targets[node] = host
        return SshRunner(targets, user=ssh_user, options=ssh_options, config=ssh_config,
                         agent_root=agent_root)
    raise ValidationError("upgrade", "--runner", f"{kind!r} is not one of lab, ssh")


@app.command()
def upgrade(
    env: str = typer.Argument(..., help="the environment's name"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan; change nothing"),
    database_url: str = typer.Option(None, "--database-url",
                                     help="the control plane database (--runner lab: the "
                                          "lab's, by default)"),
    runner: str = typer.Option("ssh", "--runner", help="how nodes are reached: lab | ssh"),
    lab_state_dir: str = typer.Option("/var/lib/envrouter-lab", "--lab-state-dir",
                                      envvar="ENVROUTER_LAB_STATE_DIR",
                                      help="the lab's state dir (--runner lab)"),
    state_file: str = typer.Option(None, "--state-file",
                                   help="progress file (default /var/lib/envrouter/upgrade/"
                                        "ENV.json)"),
    check_name: str = typer.Option(None, "--check-name",
                                   help="name a moved node must resolve through the VIP "
                                        "(default: its hostname in the environment's domain)"),
    stonith: bool = typer.Option(True, "--stonith/--no-stonith",
                                 help="stonith-enabled in the Pacemaker layout"),
    chrony_restart: str = typer.Option(None, "--chrony-restart",
                                       help="passed to the agent when moving a node"),
    vip_timeout: float = typer.Option(180.0, "--vip-timeout", help="seconds to wait for the VIPs"),
    check_timeout: float = typer.Option(30.0, "--check-timeout",
                                        help="seconds each node check may take to pass"),
    ssh_user: str = typer.Option(None, "--ssh-user", help="(--runner ssh) remote user"),
    ssh_option: list[str] = typer.Option([], "--ssh-option",
                                         help="(--runner ssh) an ssh -o option, repeatable"),
    ssh_host: list[str] = typer.Option([], "--ssh-host",
                                       help="(--runner ssh) NODE=ADDRESS, repeatable "
                                            "(default: the hostname)"),
    ssh_config: str = typer.Option(None, "--ssh-config",
                                   help="(--runner ssh) ssh -F FILE: the client configuration "
                                        "(the lab writes one: STATE_DIR/nodes/master/ssh/"
                                        "ssh_config)"),
    agent_root: str = typer.Option(None, "--agent-root",
                                   help="(--runner ssh) the agent's --root on each node, "
                                        "{node} replaced by its name (the lab's nodes: "
                                        "STATE_DIR/nodes/{node}/root); default /"),
    packages: bool = typer.Option(None, "--packages/--no-packages",
                                  help="upgrade the packages on every node first (default: "
                                       "yes with --runner ssh, no with --runner lab, whose "
                                       "nodes share this machine's packages)"),
    package_file: list[str] = typer.Option([], "--package-file",
                                           help=".deb file to install instead of the apt "
                                                "repository's package of that name "
                                                "(a path on the nodes), repeatable"),
) -> None:
    """Migrate, reserve the VIPs, upgrade the packages on every node (envrouter, and on the
    controllers envrouter-controller and the daemons' packages; the resources whose daemon
    changed are restarted in place, the VIPs stay), check the controllers, deploy the
    vrouter, then move every other node onto the management VIP one at a time. Running it
    again resumes."""
    from envrouter.upgrade import plan as P
    from envrouter.upgrade import progress as prog
    from envrouter.upgrade.execute import Options, Upgrade

    console = Console()
    if database_url is None and runner == "lab":
        import os

        lab_db = os.path.join(lab_state_dir, "server", "envrouter.db")
        if os.path.exists(lab_db):
            database_url = f"sqlite:///{lab_db}"  # the lab's control plane database
    path = state_file or prog.default_path(env)
    if packages is None:
        packages = runner == "ssh" or bool(package_file)
    source = P.PackageSource(files=tuple(package_file)) if packages else None
    options = Options(check_name=check_name, stonith=stonith, chrony_restart=chrony_restart,
                      vip_timeout=vip_timeout, check_timeout=check_timeout, packages=source)
    if dry_run:
        up = Upgrade(database_url, env, None, path, options)  # type: ignore[arg-type]
        pv, progress, steps = up.plan()
        console.print(f"upgrade plan for environment [bold]{env}[/bold] (dry run: nothing "
                      "changed)")
        for i, step in enumerate(steps, 1):
            console.print(f"{i:>3}. {step.text}")
        if not steps:
            console.print("nothing to do")
        before = up.before_documents(pv, progress)
        states = P.final_states(before, pv.after, pv.controllers, progress.nodes)
        console.print(_node_table(states, "nodes to move (as recorded so far)"))
        return
    node_runner = _runner(runner, lab_state_dir, ssh_user, ssh_option, ssh_host, ssh_config,
                          agent_root)
    t0 = time.monotonic()
    up = Upgrade(database_url, env, node_runner, path, options, _RichReporter(console))
    result = up.run()
    console.print(_node_table(result.nodes, f"nodes ({time.monotonic() - t0:.0f} s)"))
    if result.stopped:
        console.print(f"[red]stopped[/red] at {result.stopped['step']}: "
                      f"{result.stopped['reason']}\nEvery node not moved keeps its old "
                      f"gateway; fix the cause and run the upgrade again to resume "
                      f"(progress in {path}).")
        sys.exit(EXIT_FAILED)
    console.print("[green]upgrade complete[/green]")
