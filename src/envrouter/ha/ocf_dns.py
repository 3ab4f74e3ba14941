"""OCF agent ocf:envrouter:dns — the dnsmasq forwarder/cache in the vrouter namespace (clone)."""

from __future__ import annotations

from envrouter.ha.ocf_base import main_for
from envrouter.ha.ocf_daemon import make_daemon_agent, service_build

AGENT = make_daemon_agent(
    "dns",
    "DNS forwarder and cache (dnsmasq) in the vrouter namespace",
    "Runs dnsmasq inside the document's vrouter namespace: forwards to the upstream DNS "
    "servers, caches, keeps answering expired entries while every upstream is down, and "
    "answers only on the management port (its own address and the management VIP).",
    service_build("dns"),
)


def main() -> None:
    main_for(AGENT)


if __name__ == "__main__":
    main()
