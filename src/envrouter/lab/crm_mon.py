"""`python -m envrouter.lab.crm_mon STATE_DIR`: print the lab cluster's `crm_mon` XML, asked of
the DC (a node just back from a crash answers from its stale CIB). The lab's control plane runs
it as its `--cluster-command`, so the API and the UI show the live state."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET

from envrouter.lab.nodes import Lab

ARGV = ["crm_mon", "-1", "--output-as=xml"]


def dc_crm_mon(lab: Lab) -> str:
    first = None
    for node in lab.plan.controllers:
        if not lab.node_running(node.name):
            continue
        proc = lab.exec_in(node.name, ARGV, check=False, timeout=20)
        if proc.returncode != 0 or not proc.stdout.strip():
            continue
        try:
            dc = ET.fromstring(proc.stdout).find("./summary/current_dc")
        except ET.ParseError:
            continue
        name = dc.get("name") if dc is not None and dc.get("present") == "true" else None
        if name == node.name:
            return proc.stdout
        first = first or proc.stdout
        if name and lab.node_running(name):
            asked = lab.exec_in(name, ARGV, check=False, timeout=20)
            if asked.returncode == 0 and asked.stdout.strip():
                return asked.stdout
    if first is None:
        raise SystemExit("no running controller answered crm_mon")
    return first


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m envrouter.lab.crm_mon STATE_DIR")
    sys.stdout.write(dc_crm_mon(Lab.load(sys.argv[1])))


if __name__ == "__main__":
    main()
