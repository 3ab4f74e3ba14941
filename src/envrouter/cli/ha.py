"""envrouter ha — OCF agents, the Pacemaker layout, the Corosync configuration."""

from __future__ import annotations

from typing import Annotated

import typer

from envrouter.cli.common import CommandGroup, require_root

app = CommandGroup(
    add_completion=False,
    no_args_is_help=True,
    help="HA layer: OCF agents, Pacemaker layout, Corosync config.",
)

# the options the layout commands share
Document = Annotated[str, typer.Option(help="the deployment document (JSON)")]
AgentDocument = Annotated[
    str | None, typer.Option(help="document path the agents read on the node")]
Stickiness = Annotated[int, typer.Option(help="resource-stickiness")]


def _load(document: str):
    from envrouter.agent import load_document

    return load_document(document)


def _layout(document: str, agent_document: str | None, stonith: bool, stickiness: int):
    from envrouter.ha.layout import DEFAULT_DOCUMENT, LayoutOptions, build_layout

    opts = LayoutOptions(document_path=agent_document or DEFAULT_DOCUMENT,
                         stonith_enabled=stonith, resource_stickiness=stickiness)
    return build_layout(_load(document), opts)


@app.command("install")
def install(ocf_root: str = typer.Option("/usr/lib/ocf", help="the OCF root")) -> None:
    """Write the OCF agents into <ocf-root>/resource.d/envrouter/."""
    from envrouter.ha.install import AGENTS, install_agents

    changed = install_agents(ocf_root)
    for path in changed:
        print(f"installed {path}")
    if not changed:
        print(f"agents already installed: {', '.join(AGENTS)}")


@app.command("layout")
def layout(
    document: Document,
    agent_document: AgentDocument = None,
    stonith: bool = typer.Option(True, help="stonith-enabled (turn off only without fencing "
                                 "devices, e.g. in the lab)"),
    stickiness: Stickiness = 100,
) -> None:
    """Print the Pacemaker layout generated from the document (XML)."""
    from envrouter.ha.layout import render_layout_xml

    print(render_layout_xml(_layout(document, agent_document, stonith, stickiness)), end="")


@app.command("apply")
def apply(
    document: Document,
    agent_document: AgentDocument = None,
    stonith: bool = typer.Option(True, help="stonith-enabled"),
    stickiness: Stickiness = 100,
    dry_run: bool = typer.Option(False, help="only print what would change"),
) -> None:
    """Apply the layout to the CIB; changes only what differs (twice = no change).

    Also orders the CIB's fencing devices after the VIPs: apply again after adding one."""
    from envrouter.ha import cib

    lay = _layout(document, agent_document, stonith, stickiness)
    if not dry_run:
        require_root("ha apply")
    changes = cib.plan(lay) if dry_run else cib.apply(lay)
    for line in changes:
        print(line)
    if not changes:
        print("CIB already matches the layout")


@app.command("cluster-config")
def cluster_config(
    document: Document,
    token: int = typer.Option(400, help="totem token (ms); consensus is 1.2 x token"),
    token_coefficient: int = typer.Option(0, help="totem token_coefficient (ms per node > 2)"),
    authkey: str = typer.Option(None, help="also write a new authkey here (mode 0400) if absent"),
) -> None:
    """Print corosync.conf for the controllers of the document (this node and its peers)."""
    import os

    from envrouter.errors import ValidationError
    from envrouter.ha.corosync import make_authkey, render_corosync_conf

    doc = _load(document)
    if doc.vrouter is None:
        raise ValidationError("deployment document", "vrouter", "not a controller's document")
    members = sorted([(doc.node.hostname, doc.vrouter.self_management_address)]
                     + [(p.hostname, p.management_address) for p in doc.vrouter.peers])
    nodes = [(name, i + 1, addr) for i, (name, addr) in enumerate(members)]
    print(render_corosync_conf(doc.environment.name, nodes, token, token_coefficient), end="")
    if authkey and not os.path.exists(authkey):
        fd = os.open(authkey, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "wb") as fh:
            fh.write(make_authkey())
