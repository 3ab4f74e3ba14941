"""OCF agent ocf:envrouter:dns — the dnsmasq forwarder/cache in the vrouter namespace (clone)."""

from __future__ import annotations

from envrouter.ha.ocf_base import Context, main_for
from envrouter.ha.ocf_daemon import make_daemon_agent

TYPE_CHECKING = False  # without importing typing (docs/ha.md, "Agent cost")
if TYPE_CHECKING:
    from envrouter.document import DeploymentDocument
    from envrouter.services.process import Daemon


def _build(doc: DeploymentDocument, ctx: Context) -> Daemon:
    from envrouter.services import dns  # the renderer: not on a monitor's usual path

    assert doc.vrouter is not None
    return dns.daemon(doc.vrouter, run_root=ctx.params["run_root"],
                      log_root=ctx.params["log_root"])


AGENT = make_daemon_agent(
    "dns",
    "DNS forwarder and cache (dnsmasq) in the vrouter namespace",
    "Runs dnsmasq inside the document's vrouter namespace: forwards to the upstream DNS "
    "servers, caches, keeps answering expired entries while every upstream is down, and "
    "answers only on the management port (its own address and the management VIP).",
    _build,
)


def main() -> None:
    main_for(AGENT)


if __name__ == "__main__":
    main()
