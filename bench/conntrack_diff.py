"""Diagnosis: how far each peer's conntrack table is from the VIP holder's, in a running lab.

Run as root, with a lab up (e.g. right after `envrouter lab drill ... --connections N`):

    .venv/bin/python bench/conntrack_diff.py [--state-dir DIR]

Reads every running controller's vrouter table (`conntrack -L`), finds the holder (the
controller whose namespace has the public VIP) and prints per peer: flows with the holder's NAT
port, with another one (and how many of those the peer maps like another flow from the same
client address and port: the kernel's NAT reusing that mapping for a message that carried no
port), only on the peer, only on the holder. A flow with another NAT port on a peer is lost when
the VIPs fail over to that peer. docs/ha.md, "At scale". Read-only: changes nothing in the lab.
"""

from __future__ import annotations

import argparse
import sys

from envrouter.lab.ct_compare import compare, parse_conntrack_list
from envrouter.lab.nodes import Lab


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--state-dir", default="/var/lib/envrouter-lab",
                    help="the lab's state directory (envrouter lab up --state-dir)")
    ap.add_argument("--examples", type=int, default=3, help="flows shown per peer")
    a = ap.parse_args(argv)
    lab = Lab.load(a.state_dir)
    vip = lab.plan.vip_public
    tables, holder = {}, None
    for ctl in lab.plan.controllers:
        if not lab.node_running(ctl.name):
            continue
        out = lab.exec_in(ctl.name, ["ip", "netns", "exec", "vrouter", "conntrack", "-L"],
                          check=False, timeout=120)
        tables[ctl.name] = parse_conntrack_list(out.stdout)
        addrs = lab.exec_in(ctl.name, ["ip", "-n", "vrouter", "-o", "-4", "addr", "show"],
                            check=False).stdout
        if f" {vip}/" in addrs:
            holder = ctl.name
    if holder is None:
        print("no controller holds the public VIP", file=sys.stderr)
        return 1
    print(f"holder {holder}: {len(tables[holder])} flows")
    for name, table in tables.items():
        if name == holder:
            continue
        d = compare(tables[holder], table, examples=a.examples)
        print(f"peer {name}: {len(table)} flows; same NAT port {d.same}, another NAT port "
              f"{d.other_port} ({d.other_port_same_source} mapped like another flow from the "
              f"same client port), only on the peer {d.peer_only} "
              f"{dict(d.peer_only_states.most_common(4))}, only on the holder {d.holder_only}")
        for e in d.examples:
            print(f"  {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
