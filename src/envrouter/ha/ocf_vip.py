"""OCF agent ocf:envrouter:vip — one VIP inside the vrouter namespace.

start: the address on the port, gratuitous ARP (always, even when already present), and for
the public VIP (``gateway`` set) the metric-0 default route via the public gateway with the VIP
as source. stop removes them. monitor: address present -> 0, else 7; a missing public route is
re-added (it drifts when the link flaps) rather than reported.
"""

from __future__ import annotations

import ipaddress

from envrouter.errors import ValidationError
from envrouter.ha.ocf_base import (
    OCF_NOT_RUNNING,
    OCF_SUCCESS,
    Action,
    Agent,
    Context,
    Param,
    main_for,
)


def _params(ctx: Context) -> tuple[str, str, str, int, str | None, int]:
    p = ctx.params
    obj = f"vip {ctx.env.get('OCF_RESOURCE_INSTANCE', '')}".strip()
    try:
        ip = str(ipaddress.IPv4Address(p["ip"]))
    except ValueError as exc:
        raise ValidationError(obj, "ip", f"not an IPv4 address: {p['ip']!r}") from exc
    mask = p["cidr_netmask"]
    if not mask.isdigit() or not 1 <= int(mask) <= 32:
        raise ValidationError(obj, "cidr_netmask", f"not a prefix length: {mask!r}")
    gw = p.get("gateway") or None
    if gw is not None:
        try:
            gw = str(ipaddress.IPv4Address(gw))
        except ValueError as exc:
            raise ValidationError(obj, "gateway", f"not an IPv4 address: {gw!r}") from exc
    arp = p.get("arp_count", "2")
    if not arp.isdigit():
        raise ValidationError(obj, "arp_count", f"not a count: {arp!r}")
    return p["namespace"], p["port"], ip, int(mask), gw, int(arp)


def validate(ctx: Context) -> int:
    _params(ctx)
    return OCF_SUCCESS


def start(ctx: Context) -> int:
    from envrouter.agent import vip

    ns, port, ip, mask, gw, arp = _params(ctx)
    vip.add_vip(ns, port, ip, mask, arp_count=arp)
    if gw is not None:
        vip.set_public_default_route(ns, gw, port, ip)
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
    ],
    handlers={"start": start, "stop": stop, "monitor": monitor, "validate-all": validate},
    actions=[
        Action("start", timeout="20s"),
        Action("stop", timeout="20s"),
        Action("monitor", timeout="10s", interval="2s", depth="0"),
        Action("meta-data", timeout="5s"),
        Action("validate-all", timeout="10s"),
    ],
)


def main() -> None:
    main_for(AGENT)


if __name__ == "__main__":
    main()
