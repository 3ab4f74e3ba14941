"""`python -m envrouter.lab.ops_status STATE_DIR`: print a JSON list with `envrouter status
--json` of every lab controller (`{"node", "error"}` for one that is off or gave no JSON). The
lab's control plane runs it as its `--status-command`, so the UI's operations view shows the
controllers' health."""

from __future__ import annotations

import json
import sys
from typing import Any

from envrouter.lab.nodes import Lab

ARGV = [sys.executable, "-m", "envrouter.cli.main", "status", "--json"]


def controllers_status(lab: Lab) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for node in lab.plan.controllers:
        if not lab.node_running(node.name):
            out.append({"node": node.name, "error": "the controller is not running"})
            continue
        proc = lab.exec_in(node.name, ARGV, check=False, timeout=60)
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            why = (proc.stderr or proc.stdout).strip()[-300:] or f"exit {proc.returncode}"
            data = {"node": node.name, "error": f"envrouter status: {why}"}
        out.append(data)
    return out


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m envrouter.lab.ops_status STATE_DIR")
    print(json.dumps(controllers_status(Lab.load(sys.argv[1]))))


if __name__ == "__main__":
    main()
