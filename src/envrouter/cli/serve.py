"""envrouter serve: migrate the database, then run the API (and the UI, when installed)."""

from __future__ import annotations

import os
import socket

import typer
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from envrouter.cli.common import CommandGroup, DatabaseUrl
from envrouter.errors import ValidationError

app = CommandGroup(help="Run the control plane: REST API, UI and /metrics.", add_completion=False)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8700, help="TCP port"),
    database_url: DatabaseUrl = None,
    workers: int = typer.Option(1, "--workers", min=1, max=64, help="server processes"),
    log_level: str = typer.Option("warning", help="uvicorn log level"),
    cluster_command: str = typer.Option(
        None,
        "--cluster-command",
        envvar="ENVROUTER_CLUSTER_COMMAND",
        help="a command printing `crm_mon -1 --output-as=xml` of the cluster (e.g. "
        "'ssh ctl1 crm_mon -1 --output-as=xml'; {env_id} is replaced); without it the live "
        "cluster state is 'unknown'",
    ),
    status_command: str = typer.Option(
        None,
        "--status-command",
        envvar="ENVROUTER_STATUS_COMMAND",
        help="a command printing a JSON list of `envrouter status --json`, one per controller "
        "(e.g. a script running 'ssh ctlN envrouter status --json'; {env_id} is replaced): the "
        "UI's operations view; without it each controller's health is 'unknown'",
    ),
    status_interval: float = typer.Option(
        5.0, "--status-interval", min=1.0, max=3600.0,
        help="seconds between polls of the status command (the VIP moves are recorded from "
        "them, in memory)",
    ),
    drills_dir: str = typer.Option(
        None,
        "--drills-dir",
        envvar="ENVROUTER_DRILLS_DIR",
        help="a directory of drill records (DIR/*/report.json and timeline.svg, the lab's "
        "drills/): listed in the operations view",
    ),
) -> None:
    """Upgrade the schema to the newest revision, then serve the API on HOST:PORT."""
    import uvicorn

    from envrouter.api.app import create_app
    from envrouter.db import migrate
    from envrouter.db.config import resolve_database_url

    url = resolve_database_url(database_url)
    _check_port_free(host, port)
    migrate.upgrade(url)
    typer.echo(f"envrouter: serving on http://{host}:{port} (database {_safe(url)})", err=True)
    # httptools (C parser), no access log; every connection TCP_NODELAY (see NoDelayHttpTools)
    options = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,
        "http": f"{__name__}:NoDelayHttpTools",
        "backlog": 4096,
    }
    if cluster_command:
        # read by create_app, also in every worker process
        os.environ["ENVROUTER_CLUSTER_COMMAND"] = cluster_command
    if status_command:
        os.environ["ENVROUTER_STATUS_COMMAND"] = status_command
        os.environ["ENVROUTER_STATUS_INTERVAL"] = str(status_interval)
    if drills_dir:
        os.environ["ENVROUTER_DRILLS_DIR"] = os.path.abspath(drills_dir)
    if workers == 1:
        uvicorn.run(create_app(url), **options)
        return
    # several processes: each builds its own app from the URL passed in the environment
    os.environ["ENVROUTER_DATABASE_URL"] = url
    uvicorn.run("envrouter.api.app:create_app", factory=True, workers=workers, **options)


class NoDelayHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with TCP_NODELAY on every connection. With --workers > 1
    uvicorn binds the listening socket itself (proto 0), so asyncio does not set TCP_NODELAY on
    accepted connections; the response head and body then go out as two segments and Nagle's
    algorithm holds the second until the client's delayed ACK: ~40 ms per keep-alive request."""

    def connection_made(self, transport) -> None:  # noqa: ANN001
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def _check_port_free(host: str, port: int) -> None:
    """Bind HOST:PORT once, as uvicorn will, so that a port in use is an error before anything
    says "serving on"."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValidationError("serve", "--host", f"{host!r}: {exc.strerror}") from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise ValidationError(
                "serve", "--port", f"cannot listen on {host}:{port}: {exc.strerror}"
            ) from None


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
