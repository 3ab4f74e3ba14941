"""Issue #19 through the API: every write path keeps the rules (the vrouter's networks, roles and
addresses), strict types, known sets, upstream servers, and a busy database answers 503."""

from __future__ import annotations

import sqlite3

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from envrouter.api.app import create_app
from envrouter.db.engine import Database, make_engine
from envrouter.db.tables import NetworkRow

API = "/api/v1"


def detail(r):
    return r.json()["detail"][0]


@pytest.fixture
def active(client, make_env):
    """An environment with the vrouter reserved and enabled: (env id, {network name: id})."""
    env_id = make_env()
    assert client.post(f"{API}/environments/{env_id}/vrouter/reserve-vips").status_code == 200
    r = client.put(f"{API}/environments/{env_id}/vrouter", json={"enabled": True})
    assert r.status_code == 200, r.text
    nets = {n["name"]: n["id"] for n in client.get(f"{API}/environments/{env_id}/networks").json()}
    return env_id, nets


def _docs(client, env_id):
    r = client.get(f"{API}/environments/{env_id}/documents")
    assert r.status_code == 200, r.text
    return r.json()


def _nodes(client, env_id):
    return {n["hostname"]: n for n in client.get(f"{API}/environments/{env_id}/nodes").json()}


# ------------------------------------------------------------- networks the vrouter needs


def test_enabled_vrouter_refuses_losing_its_networks_and_nothing_changes(client, active):
    env_id, nets = active
    before_docs = _docs(client, env_id)
    before_vips = client.get(f"{API}/environments/{env_id}/vips").json()
    r = client.patch(f"{API}/networks/{nets['public']}", json={"gateway": None})
    assert r.status_code == 409
    assert detail(r)["object"] == "network 'public'" and detail(r)["field"] == "gateway"
    assert "disable it first" in detail(r)["reason"]
    for name in ("management", "public"):
        r = client.delete(f"{API}/networks/{nets[name]}")
        assert r.status_code == 409, r.text
        assert detail(r)["object"] == f"network {name!r}" and detail(r)["field"] == "role"
        assert f"needs a {name} network" in detail(r)["reason"]
    # a second public network is refused as before
    r = client.post(
        f"{API}/environments/{env_id}/networks",
        json={"name": "pub2", "role": "public", "cidr": "198.18.0.0/24"},
    )
    assert r.status_code == 409 and detail(r)["field"] == "role"
    # the state afterwards: exactly as before
    assert client.get(f"{API}/networks/{nets['public']}").json()["gateway"] == "203.0.113.1"
    assert client.get(f"{API}/environments/{env_id}/vips").json() == before_vips
    assert _docs(client, env_id) == before_docs
    assert before_docs["cmp1"]["host"]["gateway_source"] == "vrouter"
    # other changes to those networks still go through
    r = client.patch(f"{API}/networks/{nets['public']}", json={"vlan": 100})
    assert r.status_code == 200 and r.json()["gateway"] == "203.0.113.1"


def test_disabled_vrouter_network_delete_cascades_as_documented(client, active):
    env_id, nets = active
    assert client.put(f"{API}/environments/{env_id}/vrouter", json={"enabled": False}).json()[
        "enabled"
    ] is False
    assert client.delete(f"{API}/networks/{nets['management']}").status_code == 204
    # the network's addresses went with it: the `vrouter` VIP, the namespace addresses, the
    # nodes' management addresses; the public VIP stays
    vips = {v["name"] for v in client.get(f"{API}/environments/{env_id}/vips").json()}
    assert vips == {"vrouter_pub"}
    for node in _nodes(client, env_id).values():
        assert "management" not in node["addresses"] and node["namespace_address"] is None
    docs = _docs(client, env_id)
    assert docs["cmp1"]["host"]["gateway_source"] == "admin"
    assert all(d["vrouter"] is None for d in docs.values())
    # enabling again names what is missing
    r = client.put(f"{API}/environments/{env_id}/vrouter", json={"enabled": True})
    assert r.status_code == 422 and detail(r)["field"] == "enabled"
    assert "management network" in detail(r)["reason"]


def test_enabling_names_the_cause_and_a_broken_state_does_not_block_other_writes(
    app, client, make_env
):
    env_id = make_env(controllers=1, computes=1)
    nets = {n["name"]: n["id"] for n in client.get(f"{API}/environments/{env_id}/networks").json()}
    client.patch(f"{API}/networks/{nets['public']}", json={"gateway": None})
    r = client.put(f"{API}/environments/{env_id}/vrouter", json={"enabled": True})
    assert r.status_code == 422 and detail(r)["field"] == "enabled"
    assert "(network 'public': gateway)" in detail(r)["reason"]
    client.patch(f"{API}/networks/{nets['public']}", json={"gateway": "203.0.113.1"})
    assert client.put(f"{API}/environments/{env_id}/vrouter", json={"enabled": True}).is_success
    # an older version could leave an enabled vrouter without a public gateway: an unrelated
    # write is not blamed for it (issue #19: "enabled: ..." for a dns_list change)
    with app.state.db.writing() as s:
        s.execute(update(NetworkRow).where(NetworkRow.id == nets["public"]).values(gateway=None))
    r = client.put(f"{API}/environments/{env_id}/vrouter", json={"dns_list": ["198.51.100.53"]})
    assert r.status_code == 200, r.text


# -------------------------------------------------------------------- types and known sets


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("vrouter", {"enabled": "yes"}, "enabled"),
        ("vrouter", {"nat": 1}, "nat"),
        ("vrouter", {"bridge_kind": "macvlan"}, "bridge_kind"),
        ("environment", {"ha": "false"}, "ha"),
        ("node", {"hostname": "n1", "roles": ["controler"]}, "roles.0"),
        ("node", {"hostname": "n1", "status": "redy"}, "status"),
        ("node", {"hostname": 5}, "hostname"),
        ("network", {"name": "x", "role": "other", "cidr": "10.9.0.0/24", "vlan": "5"}, "vlan"),
    ],
)
def test_strict_types_and_known_sets(client, make_env, path, body, field):
    env_id = make_env(controllers=0, computes=0)
    url = {
        "vrouter": f"{API}/environments/{env_id}/vrouter",
        "environment": f"{API}/environments/{env_id}",
        "node": f"{API}/environments/{env_id}/nodes",
        "network": f"{API}/environments/{env_id}/networks",
    }[path]
    method = {"vrouter": "PUT", "environment": "PATCH"}.get(path, "POST")
    r = client.request(method, url, json=body)
    assert r.status_code == 422, r.text
    assert detail(r)["field"] == field
    if field == "roles.0":
        assert "'controller'" in detail(r)["reason"] and "'compute'" in detail(r)["reason"]


@pytest.mark.parametrize(
    "address",
    ["0.0.0.0", "127.0.0.1", "224.0.0.251", "255.255.255.255", "169.254.1.1", "240.0.0.1",
     "::", "::1", "ff02::1", "fe80::1"],
)
@pytest.mark.parametrize("field", ["dns_list", "ntp_list"])
def test_upstream_servers_are_unicast_and_routable(client, make_env, address, field):
    env_id = make_env(controllers=0, computes=0)
    r = client.put(f"{API}/environments/{env_id}/vrouter", json={field: [address]})
    assert r.status_code == 422 and detail(r)["field"] == field, r.text
    assert "unicast, routable" in detail(r)["reason"]


def test_private_upstream_servers_are_fine(client, make_env):
    env_id = make_env(controllers=0, computes=0)
    body = {"dns_list": ["10.0.0.53", "2001:db8::53"], "ntp_list": ["192.168.1.123", "ntp.example"]}
    assert client.put(f"{API}/environments/{env_id}/vrouter", json=body).status_code == 200


# ------------------------------------------------------------ roles converge the addresses


def test_demoted_controller_gives_back_public_and_namespace_addresses(client, active):
    env_id, _nets = active
    nodes = _nodes(client, env_id)
    ctl3 = nodes["ctl3"]
    assert "public" in ctl3["addresses"] and ctl3["namespace_address"]
    r = client.patch(f"{API}/nodes/{ctl3['id']}", json={"roles": ["compute"]})
    assert r.status_code == 200, r.text
    assert "public" not in r.json()["addresses"] and r.json()["namespace_address"] is None
    docs = _docs(client, env_id)
    vip = next(v for v in client.get(f"{API}/environments/{env_id}/vips").json()
               if v["name"] == "vrouter")["address"]
    host = docs["ctl3"]["host"]
    assert host["gateway_source"] == "vrouter" and host["gateway"] == vip
    assert host["dns_servers"] == [vip] and host["ntp_servers"] == [vip]
    assert docs["ctl3"]["vrouter"] is None
    assert {n["name"] for n in docs["ctl3"]["networks"]} == {"admin", "management", "storage"}
    peers = {p["hostname"] for p in docs["ctl1"]["vrouter"]["peers"]}
    assert peers == {"ctl2"}
    # promoted again: both addresses back, and the vrouter section
    r = client.patch(f"{API}/nodes/{ctl3['id']}", json={"roles": ["controller"]})
    assert "public" in r.json()["addresses"] and r.json()["namespace_address"]
    assert _docs(client, env_id)["ctl3"]["vrouter"] is not None


def test_compute_with_a_public_address_is_refused(client, make_env):
    env_id = make_env(controllers=1, computes=0)
    r = client.post(
        f"{API}/environments/{env_id}/nodes",
        json={"hostname": "cmp9", "roles": ["compute"], "addresses": {"public": "203.0.113.90"}},
    )
    assert r.status_code == 422, r.text
    assert detail(r)["object"] == "node 'cmp9'" and detail(r)["field"] == "addresses.public"
    assert "cmp9" not in _nodes(client, env_id)


def test_document_by_hostname_in_the_environment_path(client, make_env):
    env_id = make_env(controllers=1, computes=1)
    node = _nodes(client, env_id)["cmp1"]
    by_id = client.get(f"{API}/environments/{env_id}/nodes/{node['id']}/document")
    by_name = client.get(f"{API}/environments/{env_id}/nodes/cmp1/document")
    assert by_id.status_code == 200 and by_id.json() == by_name.json()
    assert client.get(f"{API}/environments/{env_id}/nodes/nope/document").status_code == 404
    other = client.post(f"{API}/environments", json={"name": "other"}).json()["id"]
    assert client.get(f"{API}/environments/{other}/nodes/cmp1/document").status_code == 404


# ----------------------------------------------------------------------- a busy database


def test_a_database_locked_too_long_is_503_with_retry_after(db_url, tokens):
    """SQLite's busy wait is bounded; when it runs out the answer is 503 + Retry-After, not 500.
    (The bound is shortened here so that the test does not wait the real 10 s.)"""
    engine = make_engine(db_url, connect_args={"timeout": 0.2, "check_same_thread": False})
    app = create_app(db=Database(db_url, engine=engine))
    client = TestClient(app)
    client.headers["Authorization"] = f"Bearer {tokens['admin']}"
    assert client.get(f"{API}/environments").status_code == 200  # token cached
    blocker = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        r = client.post(f"{API}/environments", json={"name": "late"})
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"].isdigit()
        assert detail(r)["object"] == "database"
        assert client.get(f"{API}/environments").status_code == 200  # readers are not blocked
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert client.post(f"{API}/environments", json={"name": "late"}).status_code == 201
    app.state.db.dispose()
