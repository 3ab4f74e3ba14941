"""`python -m envrouter.lab.crm_mon STATE_DIR`: print the lab cluster's `crm_mon` XML, asked of
the DC (a node just back from a crash answers from its stale CIB). The lab's control plane runs
it as its `--cluster-command`, so the API and the UI show the live state."""

from __future__ import annotations

import sys

from envrouter.errors import EnvrouterError, InfraError
from envrouter.lab.nodes import Lab
from envrouter.ops.parse import ParseError, parse_crm_mon

ARGV = ["crm_mon", "-1", "--output-as=xml"]


class NoClusterAnswer(InfraError):
    """No running controller of the lab answered crm_mon."""


def _ask(lab: Lab, node: str) -> str | None:
    proc = lab.exec_in(node, ARGV, check=False, timeout=20)
    return proc.stdout if proc.returncode == 0 and proc.stdout.strip() else None


def dc_crm_mon(lab: Lab) -> str:
    """The XML of the DC's crm_mon; else the first answer of a running controller. Raises
    `NoClusterAnswer` when none answers."""
    first = None
    for node in lab.plan.controllers:
        if not lab.node_running(node.name):
            continue
        text = _ask(lab, node.name)
        if text is None:
            continue
        try:
            dc = parse_crm_mon(text).dc
        except ParseError:
            continue
        if dc == node.name:
            return text
        first = first or text
        if dc and lab.node_running(dc) and (asked := _ask(lab, dc)) is not None:
            return asked
    if first is None:
        raise NoClusterAnswer("no running controller answered crm_mon")
    return first


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m envrouter.lab.crm_mon STATE_DIR", file=sys.stderr)
        return 2
    try:
        sys.stdout.write(dc_crm_mon(Lab.load(args[0])))
    except EnvrouterError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
