"""OCF agent ocf:envrouter:ntp — chronyd serving time in the vrouter namespace (clone)."""

from __future__ import annotations

from envrouter.ha.ocf_base import main_for
from envrouter.ha.ocf_daemon import make_daemon_agent, service_build

AGENT = make_daemon_agent(
    "ntp",
    "NTP server (chronyd) in the vrouter namespace",
    "Runs chronyd -x (never touching the machine's clock) inside the document's vrouter "
    "namespace: upstream NTP servers from the settings, the peer controllers in orphan mode, "
    "local stratum 8, serving the management CIDR on the management port only, no remote "
    "command port.",
    service_build("ntp"),
)


def main() -> None:
    main_for(AGENT)


if __name__ == "__main__":
    main()
