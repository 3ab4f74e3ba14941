"""Fuzz the API from its own OpenAPI schema with every check schemathesis has (issue #16
point 8): no 5xx, every status code and every body (errors included) as the OpenAPI documents
them, content types and headers as declared, schema-invalid input refused, and the token
enforced wherever the OpenAPI says it is needed."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import ALL_CHECKS, negative_data_rejection

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
def api_schema(tmp_path, fake_status):
    app, token = _app_with_token(tmp_path)
    _TOKEN["value"] = token
    # the operations view's sources too, so that their answers are checked, not only "unknown"
    from envrouter.api.operations import CommandStatusProbe

    app.state.status_probe = CommandStatusProbe(fake_status.command, moves=app.state.vip_moves)
    drill = tmp_path / "drills" / "1-hard-kill"
    drill.mkdir(parents=True)
    (drill / "report.json").write_text('{"drill": "hard-kill", "t_fault": 1.0, "failures": []}')
    (drill / "timeline.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    app.state.drills_dir = str(tmp_path / "drills")
    schemathesis.experimental.OPEN_API_3_1.enable()
    yield schemathesis.from_asgi("/openapi.json", app)
    app.state.db.dispose()


schema = schemathesis.from_pytest_fixture("api_schema")


@schemathesis.auth()
class _AdminToken:
    """The fuzzer's token, as schemathesis' own auth: its ignored_auth check then removes it,
    or sends a wrong one, and expects 401."""

    def get(self, case, context):  # noqa: ANN001, ANN201
        return _TOKEN["value"]

    def set(self, case, data, context) -> None:  # noqa: ANN001
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schema.parametrize(
    data_generation_methods=[
        schemathesis.DataGenerationMethod.positive,
        schemathesis.DataGenerationMethod.negative,
    ]
)
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # a failure replays
)
def test_api_conforms_to_its_openapi(case):
    response = case.call()
    checks = ALL_CHECKS
    if case.data_generation_method.is_negative and not _has_inputs(case.operation):
        # nothing to negate (no parameter, no body): schemathesis still labels the case
        # negative although it is the one valid request, so that one check does not apply
        checks = tuple(c for c in ALL_CHECKS if c is not negative_data_rejection)
    case.validate_response(response, checks=checks)


def _has_inputs(operation) -> bool:  # noqa: ANN001
    raw = operation.definition.raw
    return bool(raw.get("parameters") or raw.get("requestBody"))
