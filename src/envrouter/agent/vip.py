"""VIP functions for the HA layer: addresses inside the namespace, gratuitous ARP, the public
default route. Each is idempotent and returns True if it changed something."""

from __future__ import annotations

import subprocess

from envrouter.agent import netlink as nl
from envrouter.errors import InfraError


def _has_addr(link: nl.Netlink, namespace: str, port: str, address: str) -> bool:
    idx = link.index(namespace, port)
    if idx is None:
        return False
    return any(i == idx and a == address for i, a, _ in link.addresses(namespace))


def announce(namespace: str, port: str, address: str, count: int = 2) -> None:
    """Gratuitous ARP (unsolicited, -U) so neighbours update their caches at once: `count`
    announcements, the first one now, then one a second (arping's interval is whole seconds),
    from a detached arping so the caller does not wait for the repeats."""
    if count <= 0:
        return

    def spawn() -> None:
        try:
            subprocess.Popen(
                ["arping", "-q", "-U", "-c", str(count), "-I", port, address],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise InfraError("arping: not installed (Debian package iputils-arping)") from exc

    nl.in_netns(namespace, spawn)


def add_vip(namespace: str, port: str, address: str, prefixlen: int, *, arp_count: int = 2) -> bool:
    """Add the VIP and always announce it (arp_count=0 to skip the announcement)."""
    with nl.Netlink() as link:
        changed = False
        if not _has_addr(link, namespace, port, address):
            changed = link.add_addr(namespace, port, address, prefixlen)
    announce(namespace, port, address, arp_count)
    return changed


def remove_vip(namespace: str, port: str, address: str, prefixlen: int) -> bool:
    if not nl.netns_exists(namespace):
        return False
    with nl.Netlink() as link:
        if not _has_addr(link, namespace, port, address):
            return False
        return link.del_addr(namespace, port, address, prefixlen)


def vip_present(namespace: str, port: str, address: str) -> bool:
    if not nl.netns_exists(namespace):
        return False
    with nl.Netlink() as link:
        return _has_addr(link, namespace, port, address)


def _public_default(link: nl.Netlink, namespace: str) -> list[dict]:
    return [
        r
        for r in link.routes(namespace, (nl.RTPROT_ENVROUTER_VIP,))
        if r["dst"] == "default" and r["metric"] == 0
    ]


def set_public_default_route(namespace: str, gateway: str, port: str, source: str) -> bool:
    """default via gateway dev port src source, metric 0: wins over the fallback (1000)."""
    with nl.Netlink() as link:
        idx = link.need_index(namespace, port)
        for r in _public_default(link, namespace):
            if r["gateway"] == gateway and r["oif"] == idx and r["prefsrc"] == source:
                return False
        return link.replace_route(
            namespace, "default", gateway, port, 0, proto=nl.RTPROT_ENVROUTER_VIP, src=source
        )


def remove_public_default_route(namespace: str, gateway: str, port: str) -> bool:
    if not nl.netns_exists(namespace):
        return False
    with nl.Netlink() as link:
        idx = link.index(namespace, port)
        changed = False
        for r in _public_default(link, namespace):
            if r["gateway"] == gateway and (idx is None or r["oif"] == idx):
                changed |= link.del_route(
                    namespace, "default", gateway, r["oif"], 0, proto=nl.RTPROT_ENVROUTER_VIP
                )
        return changed
