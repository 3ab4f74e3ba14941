"""IPv6 beside IPv4 through the API: a network's IPv6 prefix, ranges and gateway, the nodes'
IPv6 addresses, the IPv6 VIPs (automatic and user-defined), and the `ipv6` switch: refused
while the networks lack what IPv6 needs, and then the documents carry IPv6."""

from __future__ import annotations

API = "/api/v1"

MGMT6 = {"cidr6": "fd00:10::/64", "ranges6": [{"start": "fd00:10::10", "end": "fd00:10::ff"}]}
PUB6 = {
    "cidr6": "2001:db8:5::/64",
    "gateway6": "2001:db8:5::1",
    "ranges6": [{"start": "2001:db8:5::10", "end": "2001:db8:5::20"}],
}


def detail(r):
    return r.json()["detail"][0]


def _networks(client, env_id):
    return {n["name"]: n for n in client.get(f"{API}/environments/{env_id}/networks").json()}


def _add_ipv6(client, env_id):
    nets = _networks(client, env_id)
    for name, body in (("management", MGMT6), ("public", PUB6)):
        r = client.patch(f"{API}/networks/{nets[name]['id']}", json=body)
        assert r.status_code == 200, r.text
    return _networks(client, env_id)


def test_adding_an_ipv6_prefix_gives_the_nodes_ipv6_addresses(client, make_env):
    env_id = make_env()
    nets = _add_ipv6(client, env_id)
    mgmt = nets["management"]
    assert mgmt["cidr6"] == "fd00:10::/64" and mgmt["ranges6"] == MGMT6["ranges6"]
    assert mgmt["ranges"] == [{"start": "192.168.0.10", "end": "192.168.3.250"}]
    assert nets["admin"]["cidr6"] is None and nets["admin"]["ranges6"] == []
    nodes = {n["hostname"]: n for n in client.get(f"{API}/environments/{env_id}/nodes").json()}
    assert set(nodes["cmp1"]["addresses6"]) == {"management"}  # no public address
    assert set(nodes["ctl1"]["addresses6"]) == {"management", "public"}
    sixes = [a for n in nodes.values() for a in n["addresses6"].values()]
    assert len(sixes) == len(set(sixes)) == 5 + 3
    # the IPv4 addresses did not move
    assert all(":" not in a for n in nodes.values() for a in n["addresses"].values())
    # a new node gets both families; a user-given IPv6 address is checked like an IPv4 one
    r = client.post(f"{API}/environments/{env_id}/nodes",
                    json={"hostname": "cmp9", "addresses6": {"management": "fd00:10::99"}})
    assert r.status_code == 201, r.text
    assert r.json()["addresses6"] == {"management": "fd00:10::99"}
    assert "management" in r.json()["addresses"]
    for addresses6, field, status in (
        ({"management": "fd00:10::99"}, "addresses6.management", 409),  # held
        ({"management": "fd00:11::1"}, "addresses6.management", 422),  # outside
        ({"management": "192.168.0.99"}, "addresses6.management", 422),  # family
        ({"admin": "fd00:10::98"}, "addresses6.admin", 422),  # no cidr6 there
        ({"public": "2001:db8:5::19"}, "addresses6.public", 422),  # not a controller
    ):
        r = client.post(f"{API}/environments/{env_id}/nodes",
                        json={"hostname": "cmp10", "addresses6": addresses6})
        assert r.status_code == status, (addresses6, r.text)
        assert detail(r)["field"] == field, r.text


def test_ipv6_network_rules_name_the_field(client, make_env):
    env_id = make_env(controllers=0, computes=0)
    nets = _networks(client, env_id)
    url = f"{API}/environments/{env_id}/networks"
    bad = [
        ({"cidr": "fd00:20::/64"}, "cidr"),  # cidr is IPv4; the old raw error at document time
        ({"cidr6": "10.9.0.0/24"}, "cidr6"),
        ({"cidr6": "fd00:20::/64", "gateway6": "fd00:21::1"}, "gateway6"),
        ({"gateway6": "fd00:20::1"}, "gateway6"),
        ({"cidr6": "fd00:20::/64", "ranges6": [{"start": "fd00:20::9", "end": "fd00:20::1"}]},
         "ranges6[0]"),
        ({"cidr6": "fd00:10::/48"}, None),  # fine alone ...
    ]
    base = {"name": "extra", "role": "other", "cidr": "10.9.0.0/24"}
    for extra, field in bad[:-1]:
        r = client.post(url, json={**base, **extra})
        assert r.status_code == 422, (extra, r.text)
        assert detail(r)["field"] == field and detail(r)["object"] == "network 'extra'", r.text
    _add_ipv6(client, env_id)
    # ... but an IPv6 prefix overlapping another network's is refused
    r = client.post(url, json={**base, "cidr6": "fd00:10::/48"})
    assert r.status_code == 422 and detail(r)["field"] == "cidr6"
    assert "'management'" in detail(r)["reason"]
    # once set, cidr6 does not change (like cidr)
    r = client.patch(f"{API}/networks/{nets['management']['id']}", json={"cidr6": "fd00:99::/64"})
    assert r.status_code == 422 and detail(r)["field"] == "cidr6"


def test_ipv6_vips_automatic_and_user_defined(client, make_env):
    env_id = make_env()
    # without an IPv6 prefix, only the IPv4 VIPs; an IPv6 VIP cannot be set
    r = client.put(f"{API}/environments/{env_id}/vips/vrouter6", json={"address": "fd00:10::5"})
    assert r.status_code == 422 and detail(r)["object"] == "VIP 'vrouter6'", r.text
    assert detail(r)["field"] == "network" and "cidr6" in detail(r)["reason"]
    r = client.post(f"{API}/environments/{env_id}/vrouter/reserve-vips")
    assert {v["name"] for v in r.json()} == {"vrouter", "vrouter_pub"}
    _add_ipv6(client, env_id)
    r = client.post(f"{API}/environments/{env_id}/vrouter/reserve-vips")
    assert r.status_code == 200, r.text
    vips = {v["name"]: v for v in r.json()}
    assert set(vips) == {"vrouter", "vrouter_pub", "vrouter6", "vrouter_pub6"}
    assert vips["vrouter6"]["network"] == "management" and not vips["vrouter6"]["user_defined"]
    assert vips["vrouter_pub6"]["address"].startswith("2001:db8:5::")
    held = {a for n in client.get(f"{API}/environments/{env_id}/nodes").json()
            for a in n["addresses6"].values()}
    assert vips["vrouter6"]["address"] not in held and vips["vrouter_pub6"]["address"] not in held
    # idempotent
    again = {v["name"]: v for v in client.post(
        f"{API}/environments/{env_id}/vrouter/reserve-vips").json()}
    assert again == vips
    # user-defined: inside the prefix, not the gateway, not held, right family
    url = f"{API}/environments/{env_id}/vips/vrouter_pub6"
    for address, status in (("2001:db8:5::1", 422), ("2001:db8:6::5", 422),
                            ("203.0.113.77", 422), (sorted(held)[0], 409)):
        r = client.put(url, json={"address": address})
        assert r.status_code == status, (address, r.text)
        assert detail(r)["field"] == "address"
    r = client.put(url, json={"address": "2001:DB8:5::77"})
    assert r.status_code == 200 and r.json()["address"] == "2001:db8:5::77"
    assert r.json()["user_defined"] is True
    r = client.put(url, json={"address": None})
    assert r.status_code == 200 and r.json()["user_defined"] is False


def test_ipv6_switch_needs_ipv6_networks_and_then_documents_carry_ipv6(client, make_env):
    env_id = make_env()
    url = f"{API}/environments/{env_id}/vrouter"
    r = client.put(url, json={"enabled": True, "dns_list": ["198.51.100.53"]})
    assert r.status_code == 200, r.text
    # no IPv6 prefix yet: refused, naming the network's field
    r = client.put(url, json={"ipv6": True})
    assert r.status_code == 422, r.text
    assert detail(r)["field"] == "ipv6" and "cidr6" in detail(r)["reason"]
    assert client.get(url).json()["ipv6"] is False
    client.post(f"{API}/environments/{env_id}/vrouter/reserve-vips")
    doc = client.get(f"{API}/nodes/by-hostname/ctl1/document").json()
    assert "vip_management6" not in doc["vrouter"]  # IPv4 only: says so by absence
    _add_ipv6(client, env_id)
    client.post(f"{API}/environments/{env_id}/vrouter/reserve-vips")
    r = client.put(url, json={"ipv6": True})
    assert r.status_code == 200, r.text
    vips = {v["name"]: v["address"] for v in
            client.get(f"{API}/environments/{env_id}/vips").json()}
    doc = client.get(f"{API}/nodes/by-hostname/ctl1/document").json()
    vr = doc["vrouter"]
    assert vr["vip_management6"]["address"] == vips["vrouter6"]
    assert vr["vip_public6"]["address"] == vips["vrouter_pub6"]
    assert vr["public_gateway6"] == "2001:db8:5::1" and vr["ipv6_egress"] == "nat66"
    cmp = client.get(f"{API}/nodes/by-hostname/cmp1/document").json()
    assert cmp["host"]["gateway6"] == vips["vrouter6"]
    assert vips["vrouter6"] in cmp["host"]["dns_servers"]
