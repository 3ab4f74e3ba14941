"""Domain rules and vrouter settings validation (pure)."""

from __future__ import annotations

import pytest

from envrouter.errors import ValidationError
from envrouter.model import rules


def net(**kw):
    base = dict(
        name="management",
        role="management",
        cidr="192.168.0.0/24",
        gateway=None,
        vlan=None,
        bridge=None,
        ranges=[("192.168.0.10", "192.168.0.200")],
    )
    base.update(kw)
    return rules.validate_network(**base)


def test_network_defaults_and_normalisation():
    out = net(cidr="192.168.0.0/24", gateway="192.168.0.1")
    assert out["bridge"] == "br-mgmt"
    assert net(name="extra", role="other", cidr="10.5.0.0/24", ranges=[])["bridge"] == "br-extra"
    v6 = net(cidr6="2001:DB8::/64", ranges6=[("2001:db8::10", "2001:db8::0:ff")])
    assert v6["cidr6"] == "2001:db8::/64"
    assert v6["ranges6"] == [("2001:db8::10", "2001:db8::ff")]
    assert net()["cidr6"] is None and net()["ranges6"] == []


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"cidr": "192.168.0.1/24"}, "cidr"),  # host bits set
        ({"cidr": "192.168.0.0/33"}, "cidr"),
        ({"cidr": "banana"}, "cidr"),
        ({"role": "internet"}, "role"),
        ({"name": "Bad Name"}, "name"),
        ({"gateway": "10.0.0.1"}, "gateway"),  # outside
        ({"gateway": "192.168.0.0"}, "gateway"),  # network address
        ({"gateway": "192.168.0.255"}, "gateway"),  # broadcast
        ({"gateway": "2001:db8::1"}, "gateway"),  # family
        ({"vlan": 0}, "vlan"),
        ({"vlan": 4095}, "vlan"),
        ({"bridge": "a-bridge-name-too-long"}, "bridge"),
        ({"ranges": [("192.168.0.10", "192.168.1.5")]}, "ranges[0].end"),
        ({"ranges": [("2001:db8::1", "2001:db8::5")]}, "ranges[0].start"),
        ({"ranges": [("192.168.0.50", "192.168.0.10")]}, "ranges[0]"),
        (
            {"ranges": [("192.168.0.10", "192.168.0.50"), ("192.168.0.50", "192.168.0.60")]},
            "ranges[1]",
        ),
        ({"ranges": [("192.168.0.10\n", "192.168.0.50")]}, "ranges[0].start"),
        # IPv6 beside IPv4: cidr is IPv4, cidr6 IPv6, each family inside its own prefix
        ({"cidr": "2001:db8::/64", "ranges": []}, "cidr"),
        ({"cidr6": "192.168.5.0/24"}, "cidr6"),
        ({"cidr6": "2001:db8::1/64"}, "cidr6"),  # host bits
        ({"cidr6": "2001:db8::/127"}, "cidr6"),  # too small
        ({"gateway6": "2001:db8::1"}, "gateway6"),  # no cidr6
        ({"ranges6": [("2001:db8::1", "2001:db8::5")]}, "ranges6"),  # no cidr6
        ({"cidr6": "2001:db8::/64", "gateway6": "2001:db9::1"}, "gateway6"),
        ({"cidr6": "2001:db8::/64", "gateway6": "192.168.0.1"}, "gateway6"),
        ({"cidr6": "2001:db8::/64", "gateway6": "2001:db8::"}, "gateway6"),  # network address
        ({"cidr6": "2001:db8::/64", "ranges6": [("2001:db8::1", "2001:db9::5")]},
         "ranges6[0].end"),
        ({"cidr6": "2001:db8::/64", "ranges6": [("192.168.0.1", "192.168.0.5")]},
         "ranges6[0].start"),
        ({"cidr6": "2001:db8::/64", "ranges6": [("2001:db8::9", "2001:db8::1")]}, "ranges6[0]"),
        (
            {
                "cidr6": "2001:db8::/64",
                "ranges6": [("2001:db8::1", "2001:db8::9"), ("2001:db8::9", "2001:db8::f")],
            },
            "ranges6[1]",
        ),
    ],
)
def test_network_rules_name_the_field(kw, field):
    with pytest.raises(ValidationError) as info:
        net(**kw)
    assert info.value.field == field
    assert info.value.obj.startswith("network") or info.value.obj == "network"


def test_networks_disjoint():
    rules.check_networks_disjoint("network 'b'", "10.0.1.0/24", [("a", "10.0.0.0/24")])
    with pytest.raises(ValidationError) as info:
        rules.check_networks_disjoint("network 'b'", "10.0.0.128/25", [("a", "10.0.0.0/24")])
    assert info.value.field == "cidr" and "'a'" in info.value.reason
    # IPv6 prefixes meet IPv6 prefixes only; a network without one is skipped
    rules.check_networks_disjoint("network 'b'", "fd00:1::/64", [("a", "10.0.0.0/8"), ("c", None)])
    with pytest.raises(ValidationError) as info:
        rules.check_networks_disjoint(
            "network 'b'", "fd00:1::/64", [("a", "fd00::/16")], "cidr6"
        )
    assert info.value.field == "cidr6" and "'a'" in info.value.reason


def test_ipv6_switch_is_a_boolean():
    assert rules.validate_ipv6(False) is False
    assert rules.validate_ipv6(True) is True
    with pytest.raises(ValidationError) as info:
        rules.validate_ipv6("yes")
    assert info.value.obj == "vrouter settings" and info.value.field == "ipv6"


def test_vrouter_ipv6_requirements():
    nets = [
        ("m", "management", None, "192.168.0.0/24"),
        ("p", "public", "203.0.113.1", "203.0.113.0/24"),
    ]
    assert rules.vrouter_requirements(True, nets) == []
    assert rules.vrouter_requirements(
        True, nets, ipv6=True, networks6=[("m", "management", "fd00::/64", None),
                                          ("p", "public", "2001:db8::/64", "2001:db8::1")]
    ) == []
    missing = rules.vrouter_requirements(
        True, nets, ipv6=True, networks6=[("m", "management", None, None),
                                          ("p", "public", "2001:db8::/64", None)]
    )
    assert [(o, f) for o, f, _ in missing] == [
        ("network 'm'", "cidr6"),
        ("network 'p'", "gateway6"),
    ]
    # a network stored before cidr was IPv4 only
    legacy = [("m", "management", None, "fd00::/64"), nets[1]]
    assert [(o, f) for o, f, _ in rules.vrouter_requirements(True, legacy)] == [
        ("network 'm'", "cidr")
    ]


@pytest.mark.parametrize("good", ["ctl1", "node-1.example.org", "A1"])
def test_hostname_ok(good):
    assert rules.validate_hostname(good) == good.lower()


@pytest.mark.parametrize("bad", ["", "-x", "x-", "a b", "a..b", "a\nb", "x" * 64, "1.2.3.4", 5])
def test_hostname_refused(bad):
    with pytest.raises(ValidationError) as info:
        rules.validate_hostname(bad)
    assert info.value.field == "hostname"


def test_dns_list_addresses_only():
    assert rules.validate_upstream_list(
        "dns_list", ["198.51.100.53", "2001:DB8::53"], allow_names=False
    ) == [
        "198.51.100.53",
        "2001:db8::53",
    ]


@pytest.mark.parametrize(
    "entry",
    [
        "dns.example.org",
        "198.51.100.53\nserver=1.1.1.1",
        "198.51.100.53 ",
        " 198.51.100.53",
        "198.51.100.053",
        "198.51.100.256",
        "fe80::1%eth0",
        "fe80::1%eth0\nserver=x",
        "",
        "server=8.8.8.8",
        "198.51.100.53#5353",
        None,
    ],
)
def test_dns_list_refuses(entry):
    with pytest.raises(ValidationError) as info:
        rules.validate_upstream_list("dns_list", [entry], allow_names=False)
    assert info.value.field == "dns_list"
    assert info.value.obj == "vrouter settings"


def test_ntp_list_addresses_and_names():
    out = rules.validate_upstream_list(
        "ntp_list", ["198.51.100.123", "NTP.example.org", "abc.de"], allow_names=True
    )
    assert out == ["198.51.100.123", "ntp.example.org", "abc.de"]


@pytest.mark.parametrize(
    "entry",
    [
        "ntp.example.org\nallow all",
        "ntp.example.org iburst",
        "pool ntp.example.org",
        "ntp_example.org",
        "-ntp.example.org",
        "1.2.3.999",
        "ntp.example.org.",
        "cmdallow",
        "a" * 64 + ".org",
    ],
)
def test_ntp_list_refuses(entry):
    if entry == "cmdallow":
        # a bare word is a valid host name; a directive with arguments never is
        entry = "cmdallow 0.0.0.0/0"
    with pytest.raises(ValidationError) as info:
        rules.validate_upstream_list("ntp_list", [entry], allow_names=True)
    assert info.value.field == "ntp_list"


def test_upstream_lists_at_most_three_and_no_duplicates():
    with pytest.raises(ValidationError, match="at most 3"):
        rules.validate_upstream_list(
            "dns_list", ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"], allow_names=False
        )
    with pytest.raises(ValidationError, match="twice"):
        rules.validate_upstream_list("ntp_list", ["192.0.2.1", "192.0.2.1"], allow_names=True)
    with pytest.raises(ValidationError):
        rules.validate_upstream_list("ntp_list", "192.0.2.1", allow_names=True)


def test_other_settings():
    assert rules.validate_host_link_cidr("169.254.77.0/30") == "169.254.77.0/30"
    for bad in ("169.254.77.0/29", "169.254.77.1/30", "fd00::/126", "x"):
        with pytest.raises(ValidationError) as info:
            rules.validate_host_link_cidr(bad)
        assert info.value.field == "host_link_cidr"
    assert rules.validate_bridge_kind("ovs") == "ovs"
    with pytest.raises(ValidationError) as info:
        rules.validate_bridge_kind("macvlan")
    assert info.value.field == "bridge_kind"
    assert rules.validate_namespace("s", "vrouter_2") == "vrouter_2"
    for bad in ("", "VRouter", "a/b", "x" * 16, "vr outer", "../x"):
        with pytest.raises(ValidationError) as info:
            rules.validate_namespace("s", bad)
        assert info.value.field == "namespace"
    assert rules.validate_domain("Demo.Example") == "demo.example"
    assert rules.validate_domain("") is None
    for bad in ("demo example", "demo.example\nlocal=/x/", "-x.org"):
        with pytest.raises(ValidationError) as info:
            rules.validate_domain(bad)
        assert info.value.field == "domain"


def test_names_module_rules():
    from envrouter.model import names

    assert names.INTERFACE_NAME.ok("br-mgmt") and not names.INTERFACE_NAME.ok("a" * 16)
    assert not names.INTERFACE_NAME.ok("-x") and not names.INTERFACE_NAME.ok(5)
    assert names.NAMESPACE_NAME.ok("vrouter") and not names.NAMESPACE_NAME.ok("VRouter")
    assert names.is_dns_name("ctl1.example") and not names.is_dns_name("ctl1.123")
    assert "known: admin, management" in names.explain_choice("internet", names.NETWORK_ROLES)


@pytest.mark.parametrize("role", ["controler", "Controller", "", 5, None])
def test_unknown_node_roles_are_refused_with_the_known_list(role):
    with pytest.raises(ValidationError) as info:
        rules.validate_roles("node 'x'", [role])
    assert info.value.field == "roles" and "known: controller, compute" in info.value.reason


@pytest.mark.parametrize("status", ["redy", "", 1, True])
def test_unknown_status_is_refused(status):
    with pytest.raises(ValidationError) as info:
        rules.validate_status("node 'x'", status)
    assert "known: discovered" in info.value.reason


def test_vrouter_requirements_name_where_the_cause_is():
    assert rules.vrouter_requirements(False, []) == []
    missing = rules.vrouter_requirements(True, [("mgmt", "management", None)])
    assert missing == [("environment", "networks", "the vrouter needs a public network")]
    no_gw = rules.vrouter_requirements(True, [("m", "management", None), ("p", "public", None)])
    assert [(o, f) for o, f, _ in no_gw] == [("network 'p'", "gateway")]
    ok = [("m", "management", None), ("p", "public", "203.0.113.1")]
    assert rules.vrouter_requirements(True, ok) == []


def test_only_controllers_have_a_public_address():
    assert rules.node_address_problems("c", ["controller"], [("pub", "public")]) == []
    held = [("pub", "public"), ("m", "management")]
    problems = rules.node_address_problems("n", ["compute"], held)
    assert [(o, f) for o, f, _ in problems] == [("node 'n'", "addresses.pub")]
