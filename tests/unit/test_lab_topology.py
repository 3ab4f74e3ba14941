"""envrouter.lab.topology: the lab's plan (pure)."""

from __future__ import annotations

import ipaddress

import pytest

from envrouter.errors import ValidationError
from envrouter.lab.topology import (
    dnsmasq_upstream_argv,
    master_nat_ruleset,
    plan_lab,
)


def test_default_plan_nodes_and_names() -> None:
    plan = plan_lab()
    assert plan.node_names == ["up", "master", "ctl1", "ctl2", "ctl3", "cmp1", "cmp2"]
    assert plan.switch_netns == "erl-sw"
    assert all(n.netns == f"erl-{n.name}" for n in plan.nodes)
    assert plan.state_dir == "/var/lib/envrouter-lab"
    assert [n.nodeid for n in plan.controllers] == [1, 2, 3]


def test_addresses_unique_inside_their_networks() -> None:
    plan = plan_lab(5, 10)
    seen: set[str] = set()
    nets = {n.name: ipaddress.ip_network(n.cidr) for n in plan.networks}
    for node in plan.nodes:
        for port in node.ports:
            assert port.address not in seen, port
            seen.add(port.address)
            assert ipaddress.ip_address(port.address) in nets[port.network]
            assert len(port.switch_ifname) <= 15 and len(port.ifname) <= 15
    assert plan.vip_management not in seen and plan.vip_public not in seen
    assert ipaddress.ip_address(plan.vip_management) in nets["management"]
    assert ipaddress.ip_address(plan.vip_public) in nets["public"]


def test_roles_and_ports() -> None:
    plan = plan_lab(2, 1)
    ctl = plan.node("ctl1")
    assert {p.network for p in ctl.ports} == {"admin", "management", "public"}
    assert {p.node_bridge for p in ctl.ports} == {"br-fw-admin", "br-mgmt", "br-ex"}
    cmp1 = plan.node("cmp1")
    assert {p.network for p in cmp1.ports} == {"admin", "management"}
    assert {p.network: p.node_bridge for p in cmp1.ports} == {"admin": None,
                                                              "management": "br-mgmt"}
    assert cmp1.default_gateway == "10.20.0.1" == plan.node("master").address("admin")
    up = plan.node("up")
    assert up.address("public") == "203.0.113.1" == plan.network("public").gateway
    assert set(up.loopback_addresses) == {"198.51.100.53", "198.51.100.123", "198.51.100.80",
                                          "2001:db8:51::53", "2001:db8:51::123",
                                          "2001:db8:51::80"}
    assert set(plan_lab(2, 1, ipv6=False).node("up").loopback_addresses) == {
        "198.51.100.53", "198.51.100.123", "198.51.100.80"}
    assert plan.corosync_nodes() == [("ctl1", 1, "192.168.0.11"), ("ctl2", 2, "192.168.0.12")]


def test_prefix_and_state_dir() -> None:
    plan = plan_lab(prefix="ert9-", state_dir="/tmp/x/")
    assert plan.switch_netns == "ert9-sw" and plan.state_dir == "/tmp/x"
    assert plan.node_dir("ctl1") == "/tmp/x/nodes/ctl1"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"controllers": 0}, "controllers"),
        ({"controllers": 10}, "controllers"),
        ({"computes": -1}, "nodes"),
        ({"prefix": "Erl-"}, "prefix"),
        ({"prefix": "erl"}, "prefix"),
        ({"prefix": "toolongprefix-"}, "prefix"),
        ({"state_dir": "relative"}, "state_dir"),
        ({"state_dir": "/"}, "state_dir"),
        ({"bridge_kind": "vde"}, "bridge"),
    ],
)
def test_bad_input(kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        plan_lab(**kwargs)
    assert err.value.field == field


def test_unknown_node() -> None:
    with pytest.raises(ValidationError) as err:
        plan_lab().node("ctl9")
    assert err.value.field == "node"


def test_upstream_dns_records() -> None:
    plan = plan_lab()
    argv = dnsmasq_upstream_argv(plan, "/run/p", "/var/log/l")
    assert "--auth-zone=lab.example" in argv
    assert "--host-record=www.lab.example,198.51.100.80,2001:db8:51::80" in argv
    assert "--host-record=cmp1.lab.example,192.168.0.101" in argv
    assert "--listen-address=2001:db8:51::53" in argv
    v4 = dnsmasq_upstream_argv(plan_lab(ipv6=False), "/run/p", "/var/log/l")
    assert "--host-record=www.lab.example,198.51.100.80" in v4
    assert not any(":" in a.split("=", 1)[-1] for a in v4 if a.startswith("--listen"))


def test_dual_stack_plan() -> None:
    """Management and public carry an IPv6 prefix; every node has an IPv6 address on them
    (unique, inside the prefix, outside the allocation ranges), the IPv6 VIPs are free; the
    admin network stays IPv4 only; `ipv6=False` is the IPv4-only lab."""
    plan = plan_lab(3, 40)
    assert plan.ipv6 and not plan_lab(ipv6=False).ipv6
    assert plan_lab(ipv6=False).vip_management6 is None
    nets = {n.name: n for n in plan.networks}
    assert nets["admin"].cidr6 is None
    assert nets["public"].gateway6 == plan.node("up").address6("public")
    seen: set[str] = set()
    for node in plan.nodes:
        for port in node.ports:
            net = nets[port.network]
            if net.cidr6 is None or node.kind == "master":
                assert port.address6 is None, port
                continue
            assert port.address6 is not None and port.address6 not in seen, port
            seen.add(port.address6)
            addr = ipaddress.ip_address(port.address6)
            assert addr in ipaddress.ip_network(net.cidr6)
            assert not any(ipaddress.ip_address(a) <= addr <= ipaddress.ip_address(b)
                           for a, b in net.ranges6)
    assert plan.vip_management6 not in seen and plan.vip_public6 not in seen
    assert ipaddress.ip_address(plan.vip_management6) in ipaddress.ip_network(
        nets["management"].cidr6)
    assert ipaddress.ip_address(plan.vip_public6) in ipaddress.ip_network(nets["public"].cidr6)


def test_master_nat_snats_admin_to_its_public_address() -> None:
    text = master_nat_ruleset(plan_lab())
    assert "ip saddr 10.20.0.0/24" in text and "snat to 203.0.113.254" in text
    assert text.count("{") == text.count("}")
