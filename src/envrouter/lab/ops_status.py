"""`python -m envrouter.lab.ops_status STATE_DIR`: print a JSON list with `envrouter status
--json` of every lab controller (`{"node", "error"}` for one that is off or gave no JSON). The
lab's control plane runs it as its `--status-command`, so the UI's operations view shows the
controllers' health."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from envrouter.lab.nodes import Lab

ARGV = [sys.executable, "-m", "envrouter.cli.main", "status", "--json"]


TIMEOUT = 20  # per controller, asked in parallel: inside serve's 30 s for the whole command


def controller_status(lab: Lab, name: str) -> dict[str, Any]:
    if not lab.node_running(name):
        return {"node": name, "error": "the controller is not running"}
    try:
        proc = lab.exec_in(name, ARGV, check=False, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"node": name, "error": f"envrouter status did not answer in {TIMEOUT} s"}
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        why = (proc.stderr or proc.stdout).strip()[-300:] or f"exit {proc.returncode}"
        data = {"node": name, "error": f"envrouter status: {why}"}
    return data


def controllers_status(lab: Lab) -> list[dict[str, Any]]:
    names = [node.name for node in lab.plan.controllers]
    with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
        return list(pool.map(lambda name: controller_status(lab, name), names))


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m envrouter.lab.ops_status STATE_DIR")
    print(json.dumps(controllers_status(Lab.load(sys.argv[1]))))


if __name__ == "__main__":
    main()
