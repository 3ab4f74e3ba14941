"""N+1 guard: listing nodes and serialising documents costs the same number of queries for
5 nodes as for 40."""

from __future__ import annotations

import contextlib

from sqlalchemy import event

API = "/api/v1"


@contextlib.contextmanager
def count_queries(engine):
    statements: list[str] = []

    def _before(conn, cursor, statement, params, context, executemany):  # noqa: ARG001
        if not statement.startswith(("BEGIN", "PRAGMA", "ROLLBACK", "COMMIT")):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", _before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", _before)


def _measure(client, engine, env_id):
    nodes = client.get(f"{API}/environments/{env_id}/nodes").json()  # warm the token cache
    paths = {
        "list": f"{API}/environments/{env_id}/nodes",
        "all documents": f"{API}/environments/{env_id}/documents",
        "one document": f"{API}/nodes/by-hostname/{nodes[-1]['hostname']}/document",
    }
    out = {}
    for name, path in paths.items():
        with count_queries(engine) as statements:
            r = client.get(path)
            assert r.status_code == 200, r.text
        out[name] = len(statements)
    return out, nodes


def test_queries_do_not_grow_with_nodes(app, client, make_env):
    engine = app.state.db.engine
    small_env = make_env(name="small", controllers=3, computes=2, prefix="s")
    client.post(f"{API}/environments/{small_env}/vrouter/reserve-vips")
    client.put(f"{API}/environments/{small_env}/vrouter", json={"enabled": True})
    big_env = make_env(name="big", controllers=3, computes=37, prefix="b")
    client.post(f"{API}/environments/{big_env}/vrouter/reserve-vips")
    client.put(f"{API}/environments/{big_env}/vrouter", json={"enabled": True})
    small, _ = _measure(client, engine, small_env)
    big, nodes = _measure(client, engine, big_env)
    assert len(nodes) == 40
    assert small == big, (small, big)
    assert big["all documents"] <= 10 and big["one document"] <= 10 and big["list"] <= 5
    docs = client.get(f"{API}/environments/{big_env}/documents").json()
    assert len(docs) == 40 and docs["bcmp1"]["host"]["gateway_source"] == "vrouter"
