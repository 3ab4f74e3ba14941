"""Write paths of the model on an in-memory database: allocation on late networks, role
changes, immutable fields, YAML round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from envrouter.db.engine import Database, make_engine
from envrouter.db.tables import Base
from envrouter.errors import ConflictError, ValidationError
from envrouter.model import service
from envrouter.model.yamlio import export_environment, import_environment

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "environment.yaml"


def test_late_network_gives_existing_nodes_addresses(memdb):
    with memdb.writing() as s:
        env_id = service.create_environment(s, "late").id
        service.create_network(
            s,
            env_id,
            {
                "name": "management",
                "role": "management",
                "cidr": "192.168.0.0/24",
                "ranges": [{"start": "192.168.0.10", "end": "192.168.0.20"}],
            },
        )
        service.create_nodes(
            s,
            env_id,
            [{"hostname": "a", "roles": ["controller"]}, {"hostname": "b", "roles": ["compute"]}],
        )
        service.create_network(
            s,
            env_id,
            {
                "name": "public",
                "role": "public",
                "cidr": "203.0.113.0/24",
                "gateway": "203.0.113.1",
                "ranges": [{"start": "203.0.113.10", "end": "203.0.113.20"}],
            },
        )
        service.create_network(
            s,
            env_id,
            {
                "name": "storage",
                "role": "storage",
                "cidr": "192.168.1.0/24",
                "ranges": [{"start": "192.168.1.10", "end": "192.168.1.20"}],
            },
        )
    with memdb.reading() as s:
        env = service.load_environment(s, env_id)
        nets = {n.name: n.id for n in env.networks}
        nodes = {n.hostname: n for n in service.load_nodes(s, env_id)}
    assert set(nodes["a"].addresses) == {nets["management"], nets["public"], nets["storage"]}
    assert set(nodes["b"].addresses) == {nets["management"], nets["storage"]}


def test_role_change_and_immutable_fields(memdb):
    with memdb.writing() as s:
        env_id = service.create_environment(s, "roles").id
        mgmt = service.create_network(
            s,
            env_id,
            {
                "name": "management",
                "role": "management",
                "cidr": "192.168.0.0/24",
                "ranges": [{"start": "192.168.0.10", "end": "192.168.0.20"}],
            },
        )
        service.create_network(
            s,
            env_id,
            {
                "name": "public",
                "role": "public",
                "cidr": "203.0.113.0/24",
                "gateway": "203.0.113.1",
                "ranges": [{"start": "203.0.113.10", "end": "203.0.113.20"}],
            },
        )
        node = service.create_node(s, env_id, {"hostname": "x", "roles": ["compute"]})
        node_id, mgmt_id = node.id, mgmt.id
    with memdb.writing() as s:
        service.update_node(s, node_id, {"roles": ["controller"]})
    with memdb.reading() as s:
        assert len(service.load_nodes(s, env_id)[0].addresses) == 2  # public added
    with memdb.writing() as s, pytest.raises(ValidationError) as info:
        service.update_network(s, mgmt_id, {"cidr": "10.0.0.0/24"})
    assert info.value.field == "cidr"
    with memdb.writing() as s, pytest.raises(ConflictError) as info:
        service.update_network(s, mgmt_id, {"gateway": "192.168.0.10"})  # held by node x
    assert info.value.field == "gateway"


def test_yaml_round_trip_keeps_addresses_and_vips(memdb):
    data = yaml.safe_load(EXAMPLE.read_text())
    with memdb.writing() as s:
        env_id = import_environment(s, data)
    with memdb.reading() as s:
        exported = export_environment(s, env_id)
        docs = service.environment_documents(s, env_id)
    assert docs["cmp1"].host.gateway_source == "vrouter"
    assert sum(1 for d in docs.values() if d.vrouter) == 3
    second = yaml.safe_load(yaml.safe_dump(exported))
    second["name"] = "copy"
    for node in second["nodes"]:
        node["hostname"] = "copy-" + node["hostname"]
    with memdb.writing() as s:
        copy_id = import_environment(s, second)
    with memdb.reading() as s:
        again = export_environment(s, copy_id)
    assert again["vips"] == exported["vips"]
    assert [n["addresses"] for n in again["nodes"]] == [n["addresses"] for n in exported["nodes"]]
    assert again["vrouter"] == exported["vrouter"]


def test_yaml_unknown_key_is_refused(memdb):
    with memdb.writing() as s, pytest.raises(ValidationError) as info:
        import_environment(s, {"name": "x", "netwroks": []})
    assert info.value.field == "netwroks"


def _example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


@pytest.mark.parametrize(
    ("change", "obj", "field"),
    [
        (lambda d: d.update(ha="false"), "environment file", "ha"),  # was stored as true
        (lambda d: d["vrouter"].update(nat="false"), "vrouter settings", "nat"),
        (lambda d: d["vrouter"].update(enabled="yes"), "vrouter", "enabled"),
        (lambda d: d.update(networks={"admin": {}}), "environment file", "networks"),
        (lambda d: d.update(nodes="ctl1"), "environment file", "nodes"),
        (lambda d: d.update(vrouter=["x"]), "environment file", "vrouter"),
        (lambda d: d["nodes"][0].update(roles=["controler"]), "node 'ctl1'", "roles"),
        (lambda d: d["nodes"][0].update(status="redy"), "node 'ctl1'", "status"),
        (lambda d: d["nodes"][0].update(status=""), "node 'ctl1'", "status"),
        (
            lambda d: d["nodes"][3].update(addresses={"public": "203.0.113.90"}),
            "node 'cmp1'",
            "addresses.public",
        ),
        (
            lambda d: d["nodes"][3].update(namespace_address="192.168.0.90"),
            "node 'cmp1'",
            "namespace_address",
        ),
        (lambda d: d.update(vips={"vrouter": {"address": "x", "user_defined": "no"}}),
         "vips.vrouter", "user_defined"),
    ],
)
def test_yaml_strict_types_and_rules(memdb, change, obj, field):
    data = _example()
    change(data)
    with memdb.writing() as s, pytest.raises(ValidationError) as info:
        import_environment(s, data)
    assert (info.value.obj, info.value.field) == (obj, field), str(info.value)
    if field == "roles":
        assert "known: controller, compute" in info.value.reason


def test_export_keeps_namespace_addresses_and_reimports_them(memdb):
    with memdb.writing() as s:
        env_id = import_environment(s, _example())
    with memdb.reading() as s:
        exported = export_environment(s, env_id)
    ns = {n["hostname"]: n.get("namespace_address") for n in exported["nodes"]}
    assert all(ns[h] for h in ("ctl1", "ctl2", "ctl3")) and ns["cmp1"] is None
    # taken over as they are, not allocated again (a fresh database: the same addresses free)
    engine = make_engine("sqlite://")
    Base.metadata.create_all(engine)
    other = Database("sqlite://", engine=engine)
    try:
        with other.writing() as s:
            copy_id = import_environment(s, yaml.safe_load(yaml.safe_dump(exported)))
        with other.reading() as s:
            assert export_environment(s, copy_id) == exported
    finally:
        other.dispose()
