"""The control plane's FastAPI application."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from envrouter import __version__
from envrouter.api.deps import TokenCache
from envrouter.api.doccache import DocumentCache
from envrouter.api.errors import install_error_handlers
from envrouter.api.fastpath import FastDocumentPath, FastDocuments
from envrouter.api.metrics import Metrics, MetricsMiddleware
from envrouter.api.routes import environments, networks, nodes, operations, tokens, vrouter
from envrouter.db.engine import Database

API_PREFIX = "/api/v1"


def create_app(database_url: str | None = None, *, db: Database | None = None) -> FastAPI:
    """The API on `database_url` (else ENVROUTER_DATABASE_URL, the config file, the default
    SQLite file). The schema must be migrated already (`envrouter db upgrade`; `serve` does it).
    """
    app = FastAPI(
        title="envrouter",
        version=__version__,
        description="Control plane of envrouter: environments, networks, nodes, VIPs, "
        "vrouter settings and deployment documents.",
    )
    app.state.db = db or Database(database_url)
    app.state.tokens = TokenCache()
    app.state.documents = DocumentCache()
    app.state.fast_documents = FastDocuments(app.state.db.url)
    app.state.cluster_probe: Callable[[int], dict[str, Any]] | None = None
    if os.environ.get("ENVROUTER_CLUSTER_COMMAND"):
        from envrouter.api.cluster import CommandClusterProbe

        app.state.cluster_probe = CommandClusterProbe(os.environ["ENVROUTER_CLUSTER_COMMAND"])
    _operations(app)
    metrics = Metrics(app.state.db)
    app.state.metrics = metrics
    install_error_handlers(app)
    for module in (environments, networks, nodes, operations, tokens, vrouter):
        app.include_router(module.router)  # each router carries API_PREFIX

    @app.get("/healthz", tags=["system"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", tags=["system"], response_class=Response)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # GET document answered before routing when nothing changed (see api/fastpath.py); the
    # metrics middleware wraps it, so those requests are counted too
    app.add_middleware(
        FastDocumentPath,
        documents=app.state.fast_documents,
        tokens=app.state.tokens,
        db=app.state.db,
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.router.add_event_handler("shutdown", app.state.db.dispose)
    app.router.add_event_handler("shutdown", app.state.fast_documents.close)

    try:
        from envrouter.ui.pages import mount_ui
    except ImportError:
        mount_ui = None
    if mount_ui is not None:
        mount_ui(app)
    return app


def _operations(app: FastAPI) -> None:
    """The operations view's sources (envrouter.api.operations), from the environment `serve`
    sets: ENVROUTER_STATUS_COMMAND, ENVROUTER_STATUS_INTERVAL, ENVROUTER_DRILLS_DIR."""
    from envrouter.api.operations import CommandStatusProbe, StatusPoller, VipMoves

    app.state.vip_moves = VipMoves()
    app.state.status_probe = None
    app.state.drills_dir = os.environ.get("ENVROUTER_DRILLS_DIR") or None
    command = os.environ.get("ENVROUTER_STATUS_COMMAND")
    if not command:
        return
    interval = float(os.environ.get("ENVROUTER_STATUS_INTERVAL") or 5.0)
    probe = CommandStatusProbe(command, moves=app.state.vip_moves, ttl=min(3.0, interval))
    app.state.status_probe = probe
    db = app.state.db

    def env_ids() -> list[int]:
        from sqlalchemy import select

        from envrouter.db.tables import EnvironmentRow

        with db.reading() as session:
            return list(session.scalars(select(EnvironmentRow.id)))

    poller = StatusPoller(probe, env_ids, interval)
    app.router.add_event_handler("startup", poller.start)
    app.router.add_event_handler("shutdown", poller.stop)
