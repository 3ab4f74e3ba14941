"""The deployment document's typed fields: parsed once, written back as the same JSON."""

from __future__ import annotations

import ipaddress
import json

import pytest
from test_ha_layout import sample_doc

from envrouter.document import IPv4Address, NamespaceName, parse_document, parse_value
from envrouter.errors import ValidationError


def _raw(**vr_over) -> dict:
    return json.loads(sample_doc(**vr_over).model_dump_json())


def test_fields_are_typed_and_the_json_is_unchanged():
    raw = _raw()
    doc = parse_document(raw)
    vr = doc.vrouter
    assert vr is not None
    assert vr.management_cidr == ipaddress.IPv4Network("10.20.0.0/24")
    assert vr.vip_public.address == ipaddress.IPv4Address("10.30.0.2")
    assert vr.routes == [ipaddress.IPv4Network("10.40.0.0/24")]
    assert vr.upstream_ntp == ["10.30.0.1", "ntp.example.org"]  # an address or a name: text
    assert vr.host_link_addresses == (ipaddress.IPv4Address("169.254.77.1"),
                                      ipaddress.IPv4Address("169.254.77.2"))
    assert json.loads(doc.model_dump_json()) == raw
    assert doc.model_dump() == raw  # python mode writes the same strings


@pytest.mark.parametrize(
    ("over", "field", "reason"),
    [
        ({"public_gateway": "10.30.0.1/24"}, "vrouter.public_gateway", "not an IPv4 address"),
        ({"public_gateway": "2001:db8::1"}, "vrouter.public_gateway", "not an IPv4 address"),
        ({"public_gateway": 167772161}, "vrouter.public_gateway", "not an IPv4 address"),
        ({"public_cidr": "10.30.0.0"}, "vrouter.public_cidr", "not an IPv4 network"),
        ({"public_cidr": "10.30.0.1/24"}, "vrouter.public_cidr", "not an IPv4 network"),
        ({"namespace": "Vrouter"}, "vrouter.namespace", "not a namespace name"),
        ({"namespace": "a-namespace-too-long"}, "vrouter.namespace", "not a namespace name"),
        ({"public_bridge": "br ex"}, "vrouter.public_bridge", "not an interface name"),
        ({"host_link_cidr": "169.254.77.0/29"}, "vrouter", "is not a /30"),
    ],
)
def test_a_bad_field_is_refused_naming_it(over, field, reason):
    with pytest.raises(ValidationError, match=reason) as err:
        parse_document(_raw(**over))
    assert err.value.field == field


def test_values_from_outside_a_document_use_the_same_rules():
    assert parse_value(IPv4Address, "vip x", "ip", "10.0.0.1") == ipaddress.IPv4Address("10.0.0.1")
    with pytest.raises(ValidationError) as err:
        parse_value(IPv4Address, "vip x", "ip", "10.0.0.1\n")
    assert (err.value.obj, err.value.field) == ("vip x", "ip")
    with pytest.raises(ValidationError):
        parse_value(NamespaceName, "vrouter", "namespace", "../etc")


def test_ipv6_fields_are_checked_together():
    from dataclasses import replace

    from test_documents import ADMIN, CTLS, MGMT6, PUB6, SETTINGS, STOR, VIPS6, dual, env

    from envrouter.model.documents import build_document

    ctls = [dual(c) for c in CTLS]
    e = env(networks=(ADMIN, MGMT6, PUB6, STOR), vips=VIPS6, settings=replace(SETTINGS, ipv6=True))
    good = build_document(e, ctls[0], ctls).model_dump(mode="json")
    cases = [
        (("vrouter", "vip_management6", "address"), "192.168.0.9", "not an IPv6 address"),
        (("vrouter", "vip_management", "address"), "fd00:10::9", "not an IPv4 address"),
        (("vrouter", "vip_public6", "name"), "vrouter6", "vip_public6: the VIP is"),
        (("vrouter", "public_gateway6"), None, "come together"),
        (("networks", 1, "address6"), None, "come together"),
        (("networks", 1, "cidr6"), "fd00:10::1/64", "not an IPv6 network"),
    ]
    for path, value, message in cases:
        raw = json.loads(json.dumps(good))
        target = raw
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        with pytest.raises(ValidationError) as info:
            parse_document(raw)
        assert message in info.value.reason, (path, info.value)
