"""The NTP server inside the vrouter namespace: chrony (config pure, process effects).

``chronyd -x``: never touch the machine's clock (shared by every namespace). Serves the
management CIDR only, on the management port only (``binddevice``: every address of that port,
i.e. the namespace's own management address and the management VIP, none on the public port),
with ``cmdport 0`` (no remote monitoring or control: no amplification) and rate limiting.
``local stratum 8 orphan`` plus polling the peer controllers' namespaces keeps all controllers
serving the same time while upstream is unreachable, so a VIP move does not step the clients.
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

SERVICE = "chrony"
CONF = "chrony.conf"
OWN_PID = "chronyd.pid"
SOCKET = "chronyd.sock"
DRIFT = "drift"
CHRONY_USER = "_chrony"  # chronyd checks its socket directory: mode 750, owned by this user
LOCAL_STRATUM = 8


TEMPLATE = "services/templates/chrony.conf.j2"


def render_chrony_conf(
    vr: DocVrouter,
    *,
    pid_file: str,
    socket_path: str,
    drift_file: str,
    local_stratum: int = LOCAL_STRATUM,
) -> str:
    upstream = list(vr.upstream_ntp)
    # the management prefix of each family the vrouter serves; binddevice already covers the
    # port's IPv6 addresses (the vrouter6 VIP), allow decides who is answered
    cidrs = [str(vr.management_cidr)]
    if vr.management_cidr6 is not None:
        cidrs.append(str(vr.management_cidr6))
    port = vr.management_port
    peers = [str(p.namespace_address) for p in vr.peers]
    if not 1 <= local_stratum <= 15:
        raise ValidationError("chrony", "local_stratum", f"{local_stratum} out of 1..15")
    paths = {"pid_file": pid_file, "socket_path": socket_path, "drift_file": drift_file}
    return render_daemon_conf(
        TEMPLATE, "chrony", vr.namespace, paths,
        upstream=upstream, peers=peers, local_stratum=local_stratum, cidrs=cidrs, port=port,
    )


def daemon(vr: DocVrouter, *, run_root: str = RUN_ROOT, log_root: str = LOG_ROOT) -> Daemon:
    paths = service_paths(vr.namespace, SERVICE, run_root=run_root, log_root=log_root)
    kw = {"pid_file": str(paths.file(OWN_PID)), "socket_path": str(paths.file(SOCKET)),
          "drift_file": str(paths.file(DRIFT))}
    return Daemon(
        paths=paths,
        comm="chronyd",
        # -n: foreground; -x: never touch the shared clock; -l: log file
        argv=["chronyd", "-n", "-x", "-f", str(paths.file(CONF)), "-l", str(paths.log_file)],
        render=lambda: {CONF: render_chrony_conf(vr, **kw)},
        source=source_digest(template_stamp(TEMPLATE), vr.model_dump_json(), kw),
        ready=pid_file_ready(paths.file(OWN_PID)),
        stale_files=[OWN_PID, SOCKET],
        run_dir_mode=0o750,
        run_dir_owner=CHRONY_USER,
    )
