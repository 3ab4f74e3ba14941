"""The REST API: resources, rules through the API, error bodies, auth."""

from __future__ import annotations

from fastapi.testclient import TestClient

from envrouter.document import parse_document

API = "/api/v1"


def detail(r):
    body = r.json()
    assert isinstance(body["detail"], list), body
    return body["detail"][0]


def test_environment_crud(client):
    r = client.post(f"{API}/environments", json={"name": "e1"})
    assert r.status_code == 201
    env = r.json()
    assert env["ha"] is False and env["counts"] == {"networks": 0, "nodes": 0, "vips": 0}
    assert client.post(f"{API}/environments", json={"name": "e1"}).status_code == 409
    r = client.patch(f"{API}/environments/{env['id']}", json={"ha": True, "name": "e2"})
    assert r.status_code == 200 and r.json()["ha"] is True and r.json()["name"] == "e2"
    assert [e["name"] for e in client.get(f"{API}/environments").json()] == ["e2"]
    assert client.delete(f"{API}/environments/{env['id']}").status_code == 204
    r = client.get(f"{API}/environments/{env['id']}")
    assert r.status_code == 404 and detail(r)["reason"] == "not found"


def test_nodes_get_addresses_and_delete_releases(client, make_env):
    env_id = make_env(controllers=1, computes=1)
    nodes = client.get(f"{API}/environments/{env_id}/nodes").json()
    ctl, cmp = nodes
    assert set(ctl["addresses"]) == {"admin", "management", "public", "storage"}
    assert set(cmp["addresses"]) == {"admin", "management", "storage"}
    assert ctl["addresses"]["admin"] == "10.20.0.10" and cmp["addresses"]["admin"] == "10.20.0.11"
    assert client.delete(f"{API}/nodes/{cmp['id']}").status_code == 204
    r = client.post(
        f"{API}/environments/{env_id}/nodes", json={"hostname": "cmp9", "roles": ["compute"]}
    )
    assert r.json()["addresses"]["admin"] == "10.20.0.11"  # released, handed out again
    r = client.post(
        f"{API}/environments/{env_id}/nodes",
        json={"hostname": "cmp10", "addresses": {"management": "192.168.0.10"}},
    )
    assert r.status_code == 409
    d = detail(r)
    assert d["field"] == "addresses.management" and "ctl1" in d["reason"]
    r = client.post(f"{API}/environments/{env_id}/nodes", json={"hostname": "CTL1"})
    assert r.status_code == 409 and detail(r)["field"] == "hostname"


def test_network_rules_via_api(client, make_env):
    env_id = make_env(controllers=0, computes=0)
    base = {"name": "extra", "role": "other", "cidr": "10.99.0.0/24"}
    cases = [
        ({"cidr": "10.99.0.1/24"}, 422, "cidr"),
        ({"cidr": "192.168.1.0/24"}, 422, "cidr"),  # overlaps management
        ({"gateway": "10.98.0.1"}, 422, "gateway"),
        ({"ranges": [{"start": "10.99.0.10", "end": "10.99.1.10"}]}, 422, "ranges[0].end"),
        ({"role": "public"}, 409, "role"),
        ({"name": "admin"}, 409, "name"),
        ({"vlan": 5000}, 422, "vlan"),
        ({"role": "nope"}, 422, "role"),
        ({"cidr": 12}, 422, "cidr"),
    ]
    for change, status, field in cases:
        r = client.post(f"{API}/environments/{env_id}/networks", json={**base, **change})
        assert r.status_code == status, (change, r.text)
        assert detail(r)["field"] == field, (change, r.text)
    r = client.post(f"{API}/environments/{env_id}/networks", json={**base, "ranges": []})
    assert r.status_code == 201 and r.json()["bridge"] == "br-extra"
    net_id = r.json()["id"]
    r = client.patch(f"{API}/networks/{net_id}", json={"gateway": "10.99.0.1", "vlan": 7})
    assert r.status_code == 200 and r.json()["gateway"] == "10.99.0.1"
    assert client.get(f"{API}/networks/{net_id}").json()["vlan"] == 7
    r = client.post(f"{API}/environments/{env_id}/nodes", json={"hostname": "n1"})
    assert r.status_code == 409  # no free address on 'extra'
    d = detail(r)
    assert d["object"] == "network 'extra'" and "1 missing" in d["reason"]
    assert client.delete(f"{API}/networks/{net_id}").status_code == 204


def test_bad_json_and_types_are_422_naming_the_field(client):
    r = client.post(
        f"{API}/environments", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    r = client.post(f"{API}/environments", json={"name": "ok", "ha": "maybe"})
    assert r.status_code == 422 and detail(r)["field"] == "ha"
    r = client.post(f"{API}/environments", json={"name": "ok", "extra": 1})
    assert r.status_code == 422 and detail(r)["field"] == "extra"
    r = client.post(f"{API}/environments", json={"name": "bad name"})
    assert r.status_code == 422 and detail(r) == {
        "object": "environment",
        "field": "name",
        "reason": detail(r)["reason"],
    }
    assert client.get(f"{API}/environments/99999999999999").status_code == 422


def test_vrouter_settings_validation(client, make_env):
    env_id = make_env(controllers=0, computes=0)
    url = f"{API}/environments/{env_id}/vrouter"
    assert client.get(url).json() == {
        "enabled": False,
        "dns_list": [],
        "ntp_list": [],
        "domain": None,
        "nat": True,
        "conntrack_sync": True,
        "bridge_kind": "linux",
        "host_link_cidr": "169.254.77.0/30",
        "namespace": "vrouter",
        "ipv6": False,
        "ipv6_egress": "nat66",
    }
    bad = [
        ({"ipv6": "yes"}, "ipv6"),
        ({"ipv6_egress": "nat64"}, "ipv6_egress"),
        ({"dns_list": ["198.51.100.53\nserver=8.8.8.8"]}, "dns_list"),
        ({"dns_list": ["dns.example.org"]}, "dns_list"),
        ({"dns_list": ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]}, "dns_list"),
        ({"ntp_list": ["ntp.example.org\nallow 0.0.0.0/0"]}, "ntp_list"),
        ({"ntp_list": ["pool ntp.example.org iburst"]}, "ntp_list"),
        ({"domain": "demo example"}, "domain"),
        ({"host_link_cidr": "169.254.77.0/29"}, "host_link_cidr"),
        ({"host_link_cidr": "10.20.0.0/30"}, "host_link_cidr"),  # inside admin
        ({"bridge_kind": "macvlan"}, "bridge_kind"),
        ({"namespace": "vr;rm -rf"}, "namespace"),
        ({"unknown": 1}, "unknown"),
    ]
    for body, field in bad:
        r = client.put(url, json=body)
        assert r.status_code == 422, (body, r.text)
        assert detail(r)["field"] == field, (body, r.text)
    assert client.get(url).json()["dns_list"] == []  # nothing stored
    r = client.put(
        url,
        json={
            "dns_list": ["198.51.100.53"],
            "ntp_list": ["ntp.example.org"],
            "domain": "demo.example",
            "bridge_kind": "ovs",
        },
    )
    assert r.status_code == 200
    r = client.put(url, json={"nat": False})
    assert r.json()["dns_list"] == ["198.51.100.53"] and r.json()["bridge_kind"] == "ovs"
    assert r.json()["nat"] is False


def test_enable_needs_management_and_public(client):
    env_id = client.post(f"{API}/environments", json={"name": "bare"}).json()["id"]
    r = client.put(f"{API}/environments/{env_id}/vrouter", json={"enabled": True})
    assert r.status_code == 422 and detail(r)["field"] == "enabled"
    r = client.post(f"{API}/environments/{env_id}/vrouter/reserve-vips")
    assert r.status_code == 422 and detail(r)["field"] == "network"


def test_reserve_vips_idempotent_and_documents(client, make_env):
    env_id = make_env()
    first = client.post(f"{API}/environments/{env_id}/vrouter/reserve-vips")
    assert first.status_code == 200
    second = client.post(f"{API}/environments/{env_id}/vrouter/reserve-vips")
    assert first.json() == second.json()
    vips = {v["name"]: v for v in first.json()}
    assert vips["vrouter"]["network"] == "management" and vips["vrouter"]["namespace"] == "vrouter"
    assert vips["vrouter_pub"]["network"] == "public"
    nodes = client.get(f"{API}/environments/{env_id}/nodes").json()
    held = [a for n in nodes for a in n["addresses"].values()] + [
        n["namespace_address"] for n in nodes if n["namespace_address"]
    ]
    held += [v["address"] for v in vips.values()]
    assert len(held) == len(set(held))
    assert all(n["namespace_address"] for n in nodes if "controller" in n["roles"])

    # reserved but disabled: still the admin gateway
    doc = client.get(f"{API}/nodes/by-hostname/cmp1/document").json()
    assert doc["host"]["gateway"] == "10.20.0.1"
    client.put(
        f"{API}/environments/{env_id}/vrouter",
        json={"enabled": True, "dns_list": ["198.51.100.53"], "ntp_list": ["198.51.100.123"]},
    )
    doc = parse_document(client.get(f"{API}/nodes/by-hostname/cmp1/document").text)
    assert str(doc.host.gateway) == vips["vrouter"]["address"]
    assert doc.host.gateway_source == "vrouter"
    ctl = next(n for n in nodes if n["hostname"] == "ctl1")
    doc = parse_document(client.get(f"{API}/environments/{env_id}/nodes/{ctl['id']}/document").text)
    assert doc.vrouter is not None
    assert str(doc.vrouter.namespace_management_address) == ctl["namespace_address"]
    assert len(doc.vrouter.peers) == 2
    # a controller added later gets its namespace address at once
    r = client.post(
        f"{API}/environments/{env_id}/nodes", json={"hostname": "ctl4", "roles": ["controller"]}
    )
    assert r.json()["namespace_address"]
    # role change away from controller gives the namespace address back
    r = client.patch(f"{API}/nodes/{r.json()['id']}", json={"roles": ["compute"]})
    assert r.status_code == 200 and r.json()["namespace_address"] is None
    other = make_env(name="other", controllers=0, computes=0)
    r = client.get(f"{API}/environments/{other}/nodes/{ctl['id']}/document")
    assert r.status_code == 404


def test_user_defined_vip_rules(client, make_env):
    env_id = make_env(controllers=1, computes=0)
    url = f"{API}/environments/{env_id}/vips"
    cases = [
        ("vrouter_pub", "198.51.100.7", 422),  # outside
        ("vrouter_pub", "203.0.113.0", 422),  # network
        ("vrouter_pub", "203.0.113.255", 422),  # broadcast
        ("vrouter_pub", "203.0.113.1", 422),  # gateway
        ("vrouter_pub", "203.0.113.10", 409),  # held by ctl1
        ("vrouter_pub", "garbage", 422),
    ]
    for name, address, status in cases:
        r = client.put(f"{url}/{name}", json={"address": address})
        assert r.status_code == status, (address, r.text)
        assert detail(r)["field"] == "address"
    r = client.put(f"{url}/vrouter_pub", json={"address": "203.0.113.200"})
    assert r.status_code == 200 and r.json()["user_defined"] is True
    r = client.put(f"{url}/vrouter", json={"address": "203.0.113.200"})
    assert r.status_code == 422  # not on management
    r = client.put(f"{url}/vrouter", json={"address": "192.168.0.5"})
    assert r.status_code == 200
    r = client.post(f"{API}/environments/{env_id}/vrouter/reserve-vips")
    assert {v["name"]: v["address"] for v in r.json()} == {
        "vrouter": "192.168.0.5",
        "vrouter_pub": "203.0.113.200",
    }
    r = client.put(f"{url}/vrouter_pub", json={"address": None})
    assert r.status_code == 200 and r.json()["user_defined"] is False
    assert r.json()["address"] == "203.0.113.11"
    assert client.put(f"{url}/nope", json={"address": None}).status_code == 422
    assert client.put(f"{url}/vrouter", json={}).status_code == 422


def test_exhausted_public_range_says_how_many_missing(client):
    env_id = client.post(f"{API}/environments", json={"name": "tiny"}).json()["id"]
    client.post(
        f"{API}/environments/{env_id}/networks",
        json={
            "name": "management",
            "role": "management",
            "cidr": "192.168.0.0/24",
            "ranges": [{"start": "192.168.0.10", "end": "192.168.0.50"}],
        },
    )
    client.post(
        f"{API}/environments/{env_id}/networks",
        json={
            "name": "public",
            "role": "public",
            "cidr": "203.0.113.0/24",
            "gateway": "203.0.113.1",
            "ranges": [{"start": "203.0.113.10", "end": "203.0.113.11"}],
        },
    )
    for i in range(2):
        assert (
            client.post(
                f"{API}/environments/{env_id}/nodes",
                json={"hostname": f"c{i}", "roles": ["controller"]},
            ).status_code
            == 201
        )
    r = client.post(f"{API}/environments/{env_id}/vrouter/reserve-vips")
    assert r.status_code == 409
    d = detail(r)
    assert d["object"] == "network 'public'" and "1 missing" in d["reason"]
    assert client.get(f"{API}/environments/{env_id}/vips").json() == []  # nothing half-reserved


def test_auth(app, tokens, make_env):
    anon = TestClient(app)
    r = anon.get(f"{API}/environments")
    assert r.status_code == 401 and "missing" in r.json()["detail"]
    r = anon.get(f"{API}/environments", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["detail"] == "unknown token"
    r = anon.get(f"{API}/environments", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401
    r = anon.get(f"{API}/environments", headers={"Authorization": f"Bearer {tokens['old']}"})
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    ro = {"Authorization": f"Bearer {tokens['ro']}"}
    assert anon.get(f"{API}/environments", headers=ro).status_code == 200
    r = anon.post(f"{API}/environments", json={"name": "x"}, headers=ro)
    assert r.status_code == 403 and "read-only" in r.json()["detail"]
    me = anon.get(f"{API}/token", headers=ro).json()
    assert me["read_only"] is True and me["expires_at"] is None
    assert anon.get(f"{API}/token").status_code == 401
    make_env(controllers=1, computes=1)
    doc = f"{API}/nodes/by-hostname/cmp1/document"
    assert anon.get(doc).status_code == 401
    assert anon.get(doc, headers={"Authorization": f"Bearer {tokens['old']}"}).status_code == 401
    assert anon.get(doc, headers=ro).json()["node"]["hostname"] == "cmp1"
    assert anon.get("/healthz").json() == {"status": "ok"}
    assert anon.get("/openapi.json").status_code == 200


def test_cached_document_follows_every_write(client, make_env):
    env_id = make_env(controllers=1, computes=1)
    url = f"{API}/nodes/by-hostname/cmp1/document"
    first = client.get(url).json()
    assert client.get(url).json() == first  # served from the cache
    node = next(
        n
        for n in client.get(f"{API}/environments/{env_id}/nodes").json()
        if n["hostname"] == "cmp1"
    )
    client.patch(f"{API}/nodes/{node['id']}", json={"roles": ["compute", "storage"]})
    second = client.get(url).json()
    assert second["node"]["roles"] == ["compute", "storage"] and second["serial"] != first["serial"]
    nets = client.get(f"{API}/environments/{env_id}/networks").json()
    admin = next(n for n in nets if n["role"] == "admin")
    client.patch(f"{API}/networks/{admin['id']}", json={"vlan": 42})
    third = client.get(url).json()
    assert third["networks"][0]["vlan"] == 42


def test_metrics(client, make_env):
    make_env(controllers=1, computes=1)
    client.get(f"{API}/nodes/by-hostname/cmp1/document")
    text = client.get("/metrics").text
    assert "envrouter_nodes 2.0" in text
    assert "envrouter_environments 1.0" in text
    route = 'route="/api/v1/nodes/by-hostname/{hostname}/document"'
    assert f'envrouter_http_requests_total{{method="GET",{route},status="200"}} 1.0' in text
    assert "envrouter_http_request_duration_seconds_bucket" in text


def test_cluster_state_unknown_unless_probed(app, client, make_env):
    env_id = make_env(controllers=0, computes=0)
    r = client.get(f"{API}/environments/{env_id}/cluster")
    assert r.json() == {"source": "unknown", "quorate": None, "vip_holder": None, "nodes": []}
    app.state.cluster_probe = lambda eid: {
        "source": "crm_mon",
        "quorate": True,
        "vip_holder": "ctl1",
        "nodes": [{"name": "ctl1", "online": True}],
    }
    r = client.get(f"{API}/environments/{env_id}/cluster")
    assert r.json()["vip_holder"] == "ctl1" and r.json()["quorate"] is True
