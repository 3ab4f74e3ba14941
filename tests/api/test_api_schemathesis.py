"""Fuzz the API from its own OpenAPI schema: no input may cause a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from envrouter.api.app import create_app
from envrouter.db import migrate
from envrouter.db.engine import Database
from envrouter.model.tokens import create_token


def _app_with_token(tmp_dir):
    url = f"sqlite:///{tmp_dir}/fuzz.db"
    migrate.upgrade(url)
    db = Database(url)
    with db.writing() as s:
        token = create_token(s, "fuzz")
    db.dispose()
    app = create_app(url)
    # some data so that ids 1..n exist and routes go past "not found"
    from fastapi.testclient import TestClient

    c = TestClient(app)
    c.headers["Authorization"] = f"Bearer {token}"
    env = c.post("/api/v1/environments", json={"name": "fuzz", "ha": True}).json()["id"]
    c.post(
        f"/api/v1/environments/{env}/networks",
        json={
            "name": "management",
            "role": "management",
            "cidr": "192.168.0.0/24",
            "ranges": [{"start": "192.168.0.10", "end": "192.168.0.250"}],
        },
    )
    c.post(
        f"/api/v1/environments/{env}/networks",
        json={
            "name": "public",
            "role": "public",
            "cidr": "203.0.113.0/24",
            "gateway": "203.0.113.1",
            "ranges": [{"start": "203.0.113.10", "end": "203.0.113.100"}],
        },
    )
    c.post(f"/api/v1/environments/{env}/nodes", json={"hostname": "ctl1", "roles": ["controller"]})
    return app, token


_TOKEN: dict[str, str] = {}


@pytest.fixture
def api_schema(tmp_path):
    app, token = _app_with_token(tmp_path)
    _TOKEN["value"] = token
    yield schemathesis.from_asgi("/openapi.json", app, force_schema_version="30")
    app.state.db.dispose()


schema = schemathesis.from_pytest_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_error(case):
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {_TOKEN['value']}"}
    response = case.call()
    case.validate_response(response, checks=(not_a_server_error,))
