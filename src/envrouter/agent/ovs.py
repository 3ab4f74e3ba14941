"""Open vSwitch through ovs-vsctl (the database client; OVS_RUNDIR selects the instance)."""

from __future__ import annotations

from envrouter.agent.netlink import run

VSCTL = ["ovs-vsctl", "--timeout=10"]


def list_bridges(ns: str) -> set[str]:
    res = run(ns, [*VSCTL, "list-br"])
    return {line.strip() for line in res.stdout.splitlines() if line.strip()}


def list_ports(ns: str, bridge: str) -> set[str]:
    res = run(ns, [*VSCTL, "list-ports", bridge])
    return {line.strip() for line in res.stdout.splitlines() if line.strip()}


def add_internal_port(ns: str, bridge: str, port: str) -> None:
    run(
        ns,
        [
            *VSCTL,
            "--may-exist",
            "add-port",
            bridge,
            port,
            "--",
            "set",
            "Interface",
            port,
            "type=internal",
            "external_ids:owner=envrouter",
        ],
    )


def del_port(ns: str, bridge: str, port: str) -> None:
    run(ns, [*VSCTL, "--if-exists", "del-port", bridge, port])
