"""/metrics: request counts and latencies, and gauges of what the database holds."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from envrouter.db.engine import Database
from envrouter.db.tables import EnvironmentRow, NodeRow, VipRow


class _InventoryCollector:
    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.db.reading() as session:
            counts = {
                name: session.scalar(select(func.count()).select_from(table)) or 0
                for name, table in (
                    ("environments", EnvironmentRow),
                    ("nodes", NodeRow),
                    ("vips", VipRow),
                )
            }
        for name, value in counts.items():
            yield GaugeMetricFamily(f"envrouter_{name}", f"{name} in the database", value=value)


class Metrics:
    def __init__(self, db: Database) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "envrouter_http_requests",
            "HTTP requests served",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "envrouter_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.registry.register(_InventoryCollector(db))


class MetricsMiddleware:
    """Pure ASGI: cheaper than an http middleware on the hot GET document path."""

    def __init__(self, app, metrics: Metrics) -> None:  # noqa: ANN001
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def _send(message) -> None:  # noqa: ANN001
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            # the matched route's template (e.g. /api/v1/nodes/{node_id}), never the raw path
            path = getattr(scope.get("route"), "path", None) or "(unmatched)"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, path, str(status["code"])).inc()
            self.metrics.latency.labels(method, path).observe(time.perf_counter() - start)
