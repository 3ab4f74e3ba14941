"""Deploy a lab "the old way" (effects): an environment as it was before the virtual router,
the starting point of `envrouter upgrade`.

On a lab built with `lab up --no-deploy`: the control plane database is created at the baseline
schema (`0001_baseline`: no vrouter field) and filled with the environment (networks, ranges,
nodes, their addresses, upstream DNS/NTP lists and domain) the way the old release stored it;
then every node's agent applies its document of that time — computes route through the admin
gateway (master, 10.20.0.1) and use the upstream DNS/NTP servers directly, controllers their
public gateway. Nothing of the vrouter exists; the database stays at the baseline revision, so
the upgrade has a real migration to run.

    envrouter lab up --no-deploy --no-fencing --no-ipv6 --controllers 2 --nodes 3 --state-dir D \
        --prefix P
    python -m envrouter.lab.legacy D          # this module
    envrouter upgrade lab --runner lab --lab-state-dir D --no-stonith  # the lab's database
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from sqlalchemy import create_engine, text

from envrouter.db import migrate
from envrouter.lab.deploy import ENVROUTER, db_url
from envrouter.lab.nodes import Lab

PUSHED = "/var/lib/envrouter/legacy-document.json"


def fill_baseline(url: str, lab: Lab) -> None:
    """The environment in the baseline schema's tables (plain SQL: the ORM speaks the newest
    schema)."""
    plan = lab.plan
    engine = create_engine(url)
    try:
        with engine.begin() as c:
            env_id = c.execute(text(
                "INSERT INTO environments (name, ha, dns_list, ntp_list, domain, revision) "
                "VALUES (:n, :ha, :dns, :ntp, :dom, 1) RETURNING id"),
                {"n": plan.env_name, "ha": True, "dns": json.dumps([plan.upstream_dns]),
                 "ntp": json.dumps([plan.upstream_ntp]), "dom": plan.zone}).scalar_one()
            net_ids: dict[str, int] = {}
            for net in plan.networks:
                net_ids[net.name] = c.execute(text(
                    "INSERT INTO networks (environment_id, name, role, cidr, gateway, vlan, "
                    "bridge) VALUES (:e, :n, :r, :c, :g, NULL, :b) RETURNING id"),
                    {"e": env_id, "n": net.name, "r": net.role, "c": net.cidr,
                     "g": net.gateway, "b": net.node_bridge}).scalar_one()
                for start, end in net.ranges:
                    c.execute(text("INSERT INTO ip_ranges (network_id, start_address, "
                                   "end_address) VALUES (:n, :s, :e)"),
                              {"n": net_ids[net.name], "s": start, "e": end})
            for node in plan.deployed_nodes:
                node_id = c.execute(text(
                    "INSERT INTO nodes (environment_id, hostname, roles, status) "
                    "VALUES (:e, :h, :r, 'ready') RETURNING id"),
                    {"e": env_id, "h": node.name, "r": ",".join(node.roles)}).scalar_one()
                for port in node.ports:
                    c.execute(text("INSERT INTO addresses (network_id, node_id, address) "
                                   "VALUES (:n, :node, :a)"),
                              {"n": net_ids[port.network], "node": node_id, "a": port.address})
    finally:
        engine.dispose()


def apply_document(lab: Lab, node: str, document_json: str, scope: str = "all") -> None:
    """Push a document into the node and let its agent apply it."""
    lab.exec_in(node, ["tee", PUSHED], input=document_json)
    root = os.path.join(lab.plan.node_dir(node), "root")
    lab.exec_in(node, [*ENVROUTER, "agent", "apply", "--document", PUSHED, "--scope", scope,
                       "--root", root, "--state-dir", "/var/lib/envrouter"], timeout=300)


def deploy_legacy(lab: Lab) -> dict[str, Any]:
    """Database at the baseline, filled; every controller and compute applied the old way."""
    from envrouter.upgrade.execute import preview

    os.makedirs(f"{lab.plan.state_dir}/server", exist_ok=True)
    url = db_url(lab)
    migrate.upgrade(url, migrate.BASELINE)
    fill_baseline(url, lab)
    # the documents of the old release: what the database gives with the vrouter inactive
    # (computed in a rolled-back transaction: the database stays at the baseline)
    docs = preview(url, lab.plan.env_name, before_only=True).before
    for node in lab.plan.deployed_nodes:
        apply_document(lab, node.name, docs[node.name].model_dump_json(indent=2))
    info = {"db_url": url, "environment": lab.plan.env_name,
            "documents": {n: d.model_dump(mode="json") for n, d in docs.items()}}
    lab.state["legacy"] = info
    lab.save()
    return info


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m envrouter.lab.legacy STATE_DIR")
    info = deploy_legacy(Lab.load(args[0]))
    print(f"deployed the old way: environment {info['environment']!r}, database {info['db_url']}")


if __name__ == "__main__":
    main()
