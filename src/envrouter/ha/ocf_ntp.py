"""OCF agent ocf:envrouter:ntp — chronyd serving time in the vrouter namespace (clone)."""

from __future__ import annotations

from envrouter.ha.ocf_base import Context, main_for
from envrouter.ha.ocf_daemon import make_daemon_agent

TYPE_CHECKING = False  # without importing typing (docs/ha.md, "Agent cost")
if TYPE_CHECKING:
    from envrouter.document import DeploymentDocument
    from envrouter.services.process import Daemon


def _build(doc: DeploymentDocument, ctx: Context) -> Daemon:
    from envrouter.services import ntp  # the renderer: not on a monitor's usual path

    assert doc.vrouter is not None
    return ntp.daemon(doc.vrouter, run_root=ctx.params["run_root"],
                      log_root=ctx.params["log_root"])


AGENT = make_daemon_agent(
    "ntp",
    "NTP server (chronyd) in the vrouter namespace",
    "Runs chronyd -x (never touching the machine's clock) inside the document's vrouter "
    "namespace: upstream NTP servers from the settings, the peer controllers in orphan mode, "
    "local stratum 8, serving the management CIDR on the management port only, no remote "
    "command port.",
    _build,
)


def main() -> None:
    main_for(AGENT)


if __name__ == "__main__":
    main()
