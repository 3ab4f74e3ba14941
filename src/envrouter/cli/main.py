"""The `envrouter` command.

Each command group is a Typer app in its own module, imported only when that group runs: the
agent's no-op converge must not pay for importing the web stack, and the OCF agents call into
the package on every monitor.
"""

from __future__ import annotations

import importlib
import sys

from envrouter.cli import imports_without_gc

# group name -> (module, one-line help). Top-level commands are groups with a single command.
GROUPS: dict[str, tuple[str, str]] = {
    "serve": ("envrouter.cli.serve", "Run the control plane: REST API, UI and /metrics."),
    "db": ("envrouter.cli.db", "Database: create or upgrade the schema."),
    "env": (
        "envrouter.cli.env",
        "Environments: import/export/apply YAML, list, VIPs, vrouter settings, delete.",
    ),
    "token": ("envrouter.cli.token", "API tokens: create, list, revoke."),
    "document": ("envrouter.cli.document", "Print a node's deployment document, or its schema."),
    "agent": ("envrouter.cli.agent", "Node agent: plan, apply, status, teardown."),
    "ha": ("envrouter.cli.ha", "HA layer: OCF agents, Pacemaker layout, Corosync config."),
    "lab": ("envrouter.cli.lab", "The lab: a whole environment on this machine."),
    "upgrade": ("envrouter.cli.upgrade", "Bring a deployed environment onto the vrouter."),
    "status": ("envrouter.cli.status", "State of the vrouter on this controller."),
    "metrics": ("envrouter.cli.metrics", "Prometheus text metrics of this controller."),
}


def _print_help() -> None:
    from envrouter import __version__

    print(f"envrouter {__version__} — a highly available virtual router for cluster nodes\n")
    print("Usage: envrouter COMMAND [ARGS]...   (envrouter COMMAND --help for details)\n")
    print("Commands:")
    for name, (_, text) in GROUPS.items():
        print(f"  {name:<10} {text}")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        _print_help()
        sys.exit(0 if argv else 2)
    if argv[0] == "--version":
        from envrouter import __version__

        print(__version__)
        sys.exit(0)
    name = argv[0]
    if name not in GROUPS:
        print(f"envrouter: unknown command {name!r}; see 'envrouter --help'", file=sys.stderr)
        sys.exit(2)
    with imports_without_gc():
        module = importlib.import_module(GROUPS[name][0])
    app = module.app
    app(args=argv[1:], prog_name=f"envrouter {name}")


if __name__ == "__main__":
    main()
