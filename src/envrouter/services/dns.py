"""The DNS forwarder/cache inside the vrouter namespace: dnsmasq (config pure, process effects).

Why dnsmasq (docs/services.md): Debian 12 ships dnsmasq 2.90, whose ``use-stale-cache`` (2.89+)
answers from expired cache entries while every upstream is down, which is what the nodes need;
it is already a dependency of the lab, small, and one process with no control socket to guard.

Answers only on the management side: ``interface=<management port>`` with ``bind-dynamic``
binds each address of that port as it appears (the namespace's own management address at once,
the management VIP when Pacemaker adds it) and nothing on the public port. ``except-interface=lo``
keeps it off loopback too (nothing in the namespace needs it).
"""

from __future__ import annotations

from envrouter.document import DocVrouter
from envrouter.errors import ValidationError
from envrouter.services.process import (
    LOG_ROOT,
    RUN_ROOT,
    Daemon,
    pid_file_ready,
    service_paths,
    source_digest,
)
from envrouter.services.templating import render_daemon_conf, template_stamp

SERVICE = "dnsmasq"
CONF = "dnsmasq.conf"
OWN_PID = "dnsmasq.pid"  # dnsmasq's own pid file (ours is daemon.pid; same PID)
DEFAULT_CACHE_SIZE = 10000


TEMPLATE = "services/templates/dnsmasq.conf.j2"


def render_dnsmasq_conf(
    vr: DocVrouter,
    *,
    pid_file: str,
    log_file: str,
    cache_size: int = DEFAULT_CACHE_SIZE,
    stale_max_seconds: int = 0,
) -> str:
    """dnsmasq.conf for this namespace. ``stale_max_seconds=0``: serve expired answers however
    old they are (an upstream outage may last longer than dnsmasq's one-day default)."""
    upstream = [str(a) for a in vr.upstream_dns]
    port, public_port = vr.management_port, vr.public_port
    domain = vr.domain.rstrip(".") if vr.domain else None
    if not 0 < cache_size <= 1_000_000:
        raise ValidationError("dnsmasq", "cache_size", f"{cache_size} out of 1..1000000")
    if stale_max_seconds < 0:
        raise ValidationError("dnsmasq", "stale_max_seconds", "must be 0 (no limit) or more")
    return render_daemon_conf(
        TEMPLATE, "dnsmasq", vr.namespace, {"pid_file": pid_file, "log_file": log_file},
        port=port, public_port=public_port, upstream=upstream, cache_size=cache_size,
        stale_max_seconds=stale_max_seconds, domain=domain,
    )


def daemon(vr: DocVrouter, *, run_root: str = RUN_ROOT, log_root: str = LOG_ROOT) -> Daemon:
    paths = service_paths(vr.namespace, SERVICE, run_root=run_root, log_root=log_root)
    kw = {"pid_file": str(paths.file(OWN_PID)), "log_file": str(paths.log_file)}
    return Daemon(
        paths=paths,
        comm="dnsmasq",
        # -k: stay in the foreground (we detach it ourselves and record its PID)
        argv=["dnsmasq", "-k", f"--conf-file={paths.file(CONF)}"],
        render=lambda: {CONF: render_dnsmasq_conf(vr, **kw)},
        source=source_digest(template_stamp(TEMPLATE), vr.model_dump_json(), kw),
        ready=pid_file_ready(paths.file(OWN_PID)),  # written once its sockets are bound
        stale_files=[OWN_PID],
    )
