"""Whether a VIP is held, read from the kernel (pyroute2): the operator's view of where the VIPs
are (envrouter.ops). Adding, removing and announcing VIPs is the HA layer's VIP agent alone
(envrouter.ha.ocf_vip, in /bin/sh)."""

from __future__ import annotations

import socket

from envrouter.agent import netlink as nl


def vip_present(namespace: str, port: str, address: str) -> bool:
    if not nl.netns_exists(namespace):
        return False
    with nl.Netlink() as link:
        idx = link.index(namespace, port)
        if idx is None:
            return False
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return any(i == idx and a == address
                   for i, a, _ in link.addresses(namespace, family))
