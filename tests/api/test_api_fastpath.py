"""The GET document fast path (envrouter.api.fastpath): same bytes, same auth, sees writes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from envrouter.api import deps
from envrouter.db.engine import Database
from envrouter.db.tables import TokenRow
from envrouter.lab.waiting import wait_for as lab_wait_for
from envrouter.model import service
from envrouter.model.tokens import _now, create_token

API = "/api/v1"
DOC = f"{API}/nodes/by-hostname/cmp1/document"


def served(app) -> int:  # noqa: ANN001
    return app.state.fast_documents.served


def wait_for(predicate, what: str, bound: float = 20.0) -> None:  # noqa: ANN001
    lab_wait_for(what, predicate, timeout=bound, interval=0.05)


def test_fast_path_serves_the_normal_routes_bytes(app, client, make_env):
    env_id = make_env(controllers=1, computes=1)
    node_id = next(
        n["id"]
        for n in client.get(f"{API}/environments/{env_id}/nodes").json()
        if n["hostname"] == "cmp1"
    )
    by_id = f"{API}/environments/{env_id}/nodes/{node_id}/document"
    for url in (DOC, by_id):
        before = served(app)
        normal = client.get(url)
        assert normal.status_code == 200 and served(app) == before  # the normal route
        fast = client.get(url)
        assert fast.status_code == 200 and served(app) == before + 1  # the fast path
        assert fast.content == normal.content
        assert fast.headers["content-type"] == normal.headers["content-type"]
        assert fast.headers["content-length"] == normal.headers["content-length"]
    assert client.get(DOC).content == client.get(by_id).content
    # the node under another environment's id: 404 as before, never the fast answer
    other = client.post(f"{API}/environments", json={"name": "other"}).json()["id"]
    before = served(app)
    r = client.get(f"{API}/environments/{other}/nodes/{node_id}/document")
    assert r.status_code == 404 and served(app) == before
    assert r.json()["detail"][0]["object"] == f"node {node_id!r}"


def test_fast_path_requests_are_counted_in_metrics(client, make_env):
    make_env(controllers=1, computes=1)
    for _ in range(3):
        assert client.get(DOC).status_code == 200
    route = 'route="/api/v1/nodes/by-hostname/{hostname}/document"'
    text = client.get("/metrics").text
    assert f'envrouter_http_requests_total{{method="GET",{route},status="200"}} 3.0' in text


def test_fast_path_enforces_auth(app, client, tokens, make_env):
    make_env(controllers=1, computes=1)
    assert client.get(DOC).status_code == 200
    assert client.get(DOC).status_code == 200  # cached: the fast path could answer
    anon = TestClient(app)
    before = served(app)
    r = anon.get(DOC)
    assert r.status_code == 401 and "missing" in r.json()["detail"]
    r = anon.get(DOC, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["detail"] == "unknown token"
    r = anon.get(DOC, headers={"Authorization": "Basic abc"})
    assert r.status_code == 401 and "malformed" in r.json()["detail"]
    for _ in range(2):  # the second time the expired token is in the token cache
        r = anon.get(DOC, headers={"Authorization": f"Bearer {tokens['old']}"})
        assert r.status_code == 401 and r.json()["detail"] == "token 'old' expired"
    assert served(app) == before


def test_fast_path_sees_expiry_and_revocation(app, db_url, tokens, make_env, monkeypatch):
    monkeypatch.setattr(deps, "_CACHE_SECONDS", 0.5)  # a short token-cache window
    make_env(controllers=1, computes=1)
    db = Database(db_url)
    try:
        with db.writing() as s:
            soon = create_token(s, "soon", read_only=True)
            s.query(TokenRow).filter_by(name="soon").one().expires_at = _now() + timedelta(
                seconds=1
            )
            gone = create_token(s, "gone", read_only=True)
        anon = TestClient(app)
        for secret in (soon, gone):
            headers = {"Authorization": f"Bearer {secret}"}
            anon.get(DOC, headers=headers)
            before = served(app)
            assert anon.get(DOC, headers=headers).status_code == 200
            assert served(app) == before + 1
        # a token-cache entry that ran out is looked up again, by the fast path itself
        wait_for(lambda: not app.state.tokens.peek(gone)[0], "the token-cache entry to run out")
        before = served(app)
        assert anon.get(DOC, headers={"Authorization": f"Bearer {gone}"}).status_code == 200
        assert served(app) == before + 1 and app.state.tokens.peek(gone)[0]
        with db.writing() as s:
            s.delete(s.query(TokenRow).filter_by(name="gone").one())

        def refused(secret: str, detail: str) -> bool:
            r = anon.get(DOC, headers={"Authorization": f"Bearer {secret}"})
            assert r.status_code in (200, 401)
            return r.status_code == 401 and r.json()["detail"] == detail

        wait_for(lambda: refused(soon, "token 'soon' expired"), "the token to expire")
        wait_for(lambda: refused(gone, "unknown token"), "the revocation to be seen")
    finally:
        db.dispose()


def test_fast_path_sees_every_write(app, client, db_url, make_env):
    env_id = make_env(controllers=1, computes=1)
    first = client.get(DOC)
    assert client.get(DOC).content == first.content  # fast
    r = client.put(f"{API}/environments/{env_id}/vrouter", json={"dns_list": ["198.51.100.7"]})
    assert r.status_code == 200, r.text
    before = served(app)
    second = client.get(DOC)
    assert served(app) == before  # the write invalidated the fast answer
    assert second.json()["host"]["dns_servers"] != first.json()["host"]["dns_servers"]
    assert "198.51.100.7" in second.text
    assert client.get(DOC).content == second.content and served(app) == before + 1
    # a write by another connection (another server process, the CLI) is seen as well
    db = Database(db_url)
    try:
        with db.writing() as s:
            service.put_settings(s, env_id, {"dns_list": ["198.51.100.8"]})
    finally:
        db.dispose()
    third = client.get(DOC)
    assert served(app) == before + 1 and "198.51.100.8" in third.text
    # a deleted node: 404, never its last document
    node_id = next(
        n["id"]
        for n in client.get(f"{API}/environments/{env_id}/nodes").json()
        if n["hostname"] == "cmp1"
    )
    assert client.get(DOC).status_code == 200
    assert client.delete(f"{API}/nodes/{node_id}").status_code == 204
    r = client.get(DOC)
    assert r.status_code == 404 and r.json()["detail"][0]["object"] == "node 'cmp1'"


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_no_generation_without_a_database_file(url):
    from envrouter.api.fastpath import FastDocuments

    fast = FastDocuments(url)
    assert fast.generation() is None
    fast.remember("/x", fast.generation(), "{}", None)
    assert fast.lookup("/x") is None
