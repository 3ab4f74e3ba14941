"""OCF agent ocf:envrouter:vip — one VIP inside the vrouter namespace.

start: with ``conntrackd_conf`` set, first commit the node's conntrackd external cache into the
kernel (``conntrackd -C CONF -c``; the synced flows must be known before their packets arrive
here, or the new holder resets them); then the address on the port, for the public VIP
(``gateway`` set) the metric-0 default route via the public gateway with the VIP as source, and
gratuitous ARP (always, even when the address was present). stop removes them. monitor:
address present -> 0, else 7; a missing public route is re-added (it drifts when the link
flaps) rather than reported.

Speed: `envrouter.ha.install` writes this agent as a /bin/sh script whose start and stop do the
same with `ip` and `arping` (exit codes only, no output parsed) without starting Python — the
VIP start is on the critical path of every failover. It falls back to this module whenever a
command fails (which then reports the error properly), and for every other action.
"""

from __future__ import annotations

import os
import subprocess

from envrouter.document import IPv4Address, parse_value
from envrouter.errors import ValidationError
from envrouter.ha.ocf_base import (
    OCF_NOT_RUNNING,
    OCF_SUCCESS,
    Agent,
    Context,
    Param,
    basic_actions,
    main_for,
)


def _params(ctx: Context) -> tuple[str, str, str, int, str | None, int]:
    p = ctx.params
    obj = f"vip {ctx.env.get('OCF_RESOURCE_INSTANCE', '')}".strip()
    # the rule of the document's VIP address (the layout passes it from there)
    ip = str(parse_value(IPv4Address, obj, "ip", p["ip"]))
    mask = p["cidr_netmask"]
    if not mask.isdigit() or not 1 <= int(mask) <= 32:
        raise ValidationError(obj, "cidr_netmask", f"not a prefix length: {mask!r}")
    gw = p.get("gateway") or None
    if gw is not None:
        gw = str(parse_value(IPv4Address, obj, "gateway", gw))
    arp = p.get("arp_count", "2")
    if not arp.isdigit():
        raise ValidationError(obj, "arp_count", f"not a count: {arp!r}")
    return p["namespace"], p["port"], ip, int(mask), gw, int(arp)


def validate(ctx: Context) -> int:
    _params(ctx)
    return OCF_SUCCESS


def commit_conntrack(ctx: Context) -> None:
    """Commit the local conntrackd's external cache into the kernel table, if it runs here."""
    conf = ctx.params.get("conntrackd_conf") or ""
    if not conf or not os.path.exists(conf):
        return
    try:
        proc = subprocess.run(["conntrackd", "-C", conf, "-c"], capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        ctx.log("warning", f"conntrackd commit: {exc}")
        return
    if proc.returncode != 0:  # not running (yet): nothing to commit, the VIP must still start
        ctx.log("warning", f"conntrackd commit: {(proc.stderr or proc.stdout).strip()}")


def start(ctx: Context) -> int:
    from envrouter.agent import vip

    ns, port, ip, mask, gw, arp = _params(ctx)
    commit_conntrack(ctx)
    vip.add_vip(ns, port, ip, mask, arp_count=0)
    if gw is not None:
        vip.set_public_default_route(ns, gw, port, ip)
    vip.announce(ns, port, ip, arp)
    return OCF_SUCCESS


def stop(ctx: Context) -> int:
    from envrouter.agent import vip

    ns, port, ip, mask, gw, _ = _params(ctx)
    if gw is not None:
        vip.remove_public_default_route(ns, gw, port)
    vip.remove_vip(ns, port, ip, mask)
    return OCF_SUCCESS


def monitor(ctx: Context) -> int:
    from envrouter.agent import vip

    ns, port, ip, _, gw, _ = _params(ctx)
    if not vip.vip_present(ns, port, ip):
        return OCF_NOT_RUNNING
    if gw is not None and not ctx.is_probe and vip.set_public_default_route(ns, gw, port, ip):
        ctx.log("warning", f"public default route via {gw} was missing in {ns}: re-added")
    return OCF_SUCCESS


AGENT = Agent(
    name="vip",
    shortdesc="A virtual IP inside the vrouter namespace",
    longdesc="Adds an address to a port of the vrouter namespace with a gratuitous ARP; for "
    "the public VIP also the namespace's default route via the public gateway (metric 0, "
    "source the VIP), which wins over the agent's fallback route via the host link.",
    params=[
        Param("namespace", "namespace", "Network namespace of the vrouter.", default="vrouter"),
        Param("port", "port", "Interface in the namespace that carries the VIP.", required=True),
        Param("ip", "address", "The VIP (IPv4).", required=True, unique=True),
        Param("cidr_netmask", "prefix length", "Prefix length of the VIP.", type="integer",
              required=True),
        Param("gateway", "public gateway",
              "If set: the default route via this gateway, source the VIP (public VIP only)."),
        Param("arp_count", "gratuitous ARPs", "Number of gratuitous ARPs sent on start.",
              type="integer", default="2"),
        Param("conntrackd_conf", "conntrackd configuration",
              "If set and present: the configuration of this node's conntrackd instance, whose "
              "external cache is committed into the kernel before the address is added."),
    ],
    handlers={"start": start, "stop": stop, "monitor": monitor, "validate-all": validate},
    actions=basic_actions(start="20s", stop="20s", monitor="20s", interval="2s"),
)


def main() -> None:
    main_for(AGENT)


if __name__ == "__main__":
    main()
