"""API fixtures: a migrated SQLite file per test, tokens, a TestClient."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from envrouter.api.app import create_app
from envrouter.db import migrate
from envrouter.db.engine import Database
from envrouter.db.tables import TokenRow
from envrouter.model.tokens import create_token

API = "/api/v1"


@pytest.fixture
def db_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'envrouter.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture
def tokens(db_url) -> dict[str, str]:
    db = Database(db_url)
    with db.writing() as s:
        out = {
            "admin": create_token(s, "admin"),
            "ro": create_token(s, "reader", read_only=True),
            "old": create_token(s, "old", expires_days=1),
        }
        row = s.query(TokenRow).filter_by(name="old").one()
        row.expires_at = datetime.now() - timedelta(days=2)
    db.dispose()
    return out


@pytest.fixture
def app(db_url):
    app = create_app(db_url)
    yield app
    app.state.db.dispose()


@pytest.fixture
def client(app, tokens) -> TestClient:
    c = TestClient(app)
    c.headers["Authorization"] = f"Bearer {tokens['admin']}"
    return c


NETWORKS = [
    {
        "name": "admin",
        "role": "admin",
        "cidr": "10.20.0.0/22",
        "gateway": "10.20.0.1",
        "ranges": [{"start": "10.20.0.10", "end": "10.20.3.250"}],
    },
    {
        "name": "management",
        "role": "management",
        "cidr": "192.168.0.0/22",
        "ranges": [{"start": "192.168.0.10", "end": "192.168.3.250"}],
    },
    {
        "name": "public",
        "role": "public",
        "cidr": "203.0.113.0/24",
        "gateway": "203.0.113.1",
        "ranges": [{"start": "203.0.113.10", "end": "203.0.113.100"}],
    },
    {
        "name": "storage",
        "role": "storage",
        "cidr": "192.168.8.0/22",
        "ranges": [{"start": "192.168.8.10", "end": "192.168.11.250"}],
    },
]


@pytest.fixture
def make_env(client) -> Callable[..., int]:
    def _make(name: str = "demo", controllers: int = 3, computes: int = 2, prefix: str = "") -> int:
        r = client.post(f"{API}/environments", json={"name": name, "ha": True})
        assert r.status_code == 201, r.text
        env_id = r.json()["id"]
        for net in NETWORKS:
            r = client.post(f"{API}/environments/{env_id}/networks", json=net)
            assert r.status_code == 201, r.text
        for i in range(controllers):
            r = client.post(
                f"{API}/environments/{env_id}/nodes",
                json={"hostname": f"{prefix}ctl{i + 1}", "roles": ["controller"]},
            )
            assert r.status_code == 201, r.text
        for i in range(computes):
            r = client.post(
                f"{API}/environments/{env_id}/nodes",
                json={"hostname": f"{prefix}cmp{i + 1}", "roles": ["compute"]},
            )
            assert r.status_code == 201, r.text
        return env_id

    return _make
