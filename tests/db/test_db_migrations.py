"""Migrations on SQLite and PostgreSQL: from empty, down again, the schema they build is the
one the models declare, and a database filled at the baseline keeps every row when upgraded."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from envrouter.db import migrate
from envrouter.db.engine import Database
from envrouter.db.tables import Base
from envrouter.model import service


def _tables(url):
    engine = create_engine(url)
    try:
        insp = inspect(engine)
        return {t: {c["name"] for c in insp.get_columns(t)} for t in insp.get_table_names()}
    finally:
        engine.dispose()


def test_history_shape():
    assert migrate.revisions() == ["0001_baseline", "0002_vrouter", "0003_ipv6"]
    assert migrate.head() == "0003_ipv6"


def test_upgrade_from_empty_and_downgrade(database_url):
    assert migrate.current(database_url) is None
    migrate.upgrade(database_url, "0001_baseline")
    tables = _tables(database_url)
    assert {"environments", "networks", "ip_ranges", "nodes", "addresses", "tokens"} <= set(tables)
    assert "vips" not in tables and "vrouter_settings" not in tables
    assert "vip_id" not in tables["addresses"] and "kind" not in tables["addresses"]
    migrate.upgrade(database_url, "0002_vrouter")
    tables = _tables(database_url)
    assert {"vips", "vrouter_settings"} <= set(tables) and "vip_id" in tables["addresses"]
    assert "cidr6" not in tables["networks"] and "ipv6" not in tables["vrouter_settings"]
    migrate.upgrade(database_url)
    assert migrate.current(database_url) == "0003_ipv6"
    tables = _tables(database_url)
    assert {"cidr6", "gateway6"} <= tables["networks"] and "ipv6" in tables["vrouter_settings"]
    migrate.downgrade(database_url, "0002_vrouter")
    assert "cidr6" not in _tables(database_url)["networks"]
    migrate.downgrade(database_url, "0001_baseline")
    assert migrate.current(database_url) == "0001_baseline"
    assert "vips" not in _tables(database_url)
    migrate.downgrade(database_url, "base")
    assert migrate.current(database_url) is None
    assert "environments" not in _tables(database_url)


def _differences_from_models(url):
    """What autogenerate would write to turn the database's schema into the models': tables,
    columns and their types, nullability and server defaults, keys, foreign keys (with their
    ON DELETE), unique constraints and indexes."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_the_migrations_build_the_schema_of_the_models(database_url):
    migrate.upgrade(database_url)
    assert _differences_from_models(database_url) == []
    # and so does the way down and up again (the batch copies of SQLite included)
    migrate.downgrade(database_url, "base")
    migrate.upgrade(database_url)
    assert _differences_from_models(database_url) == []
    # the check sees a difference: the baseline lacks the vrouter's tables
    migrate.downgrade(database_url, "0001_baseline")
    assert any(d[0] == "add_table" and d[1].name == "vips"
               for d in _differences_from_models(database_url))


BASELINE_ROWS = [
    "INSERT INTO environments (id, name, ha, dns_list, ntp_list, domain) "
    "VALUES (1, 'old', true, '[\"198.51.100.53\"]', '[\"198.51.100.123\"]', NULL)",
    "INSERT INTO networks (id, environment_id, name, role, cidr, gateway, vlan, bridge) VALUES "
    "(1, 1, 'admin', 'admin', '10.20.0.0/24', '10.20.0.1', NULL, 'br-fw-admin'),"
    "(2, 1, 'management', 'management', '192.168.0.0/24', NULL, NULL, 'br-mgmt'),"
    "(3, 1, 'public', 'public', '203.0.113.0/24', '203.0.113.1', NULL, 'br-ex')",
    "INSERT INTO ip_ranges (id, network_id, start_address, end_address) VALUES "
    "(1, 1, '10.20.0.10', '10.20.0.200'), (2, 2, '192.168.0.10', '192.168.0.200'),"
    "(3, 3, '203.0.113.10', '203.0.113.20')",
    "INSERT INTO nodes (id, environment_id, hostname, roles, status) VALUES "
    "(1, 1, 'ctl1', 'controller', 'ready'), (2, 1, 'cmp1', 'compute', 'ready')",
    "INSERT INTO addresses (id, network_id, node_id, address) VALUES "
    "(1, 1, 1, '10.20.0.10'), (2, 2, 1, '192.168.0.10'), (3, 3, 1, '203.0.113.10'),"
    "(4, 1, 2, '10.20.0.11'), (5, 2, 2, '192.168.0.11')",
]
COUNTED = ["environments", "networks", "ip_ranges", "nodes", "addresses"]


def _counts(url):
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in COUNTED}
    finally:
        engine.dispose()


def test_baseline_filled_database_upgrades_keeping_rows(database_url):
    migrate.upgrade(database_url, "0001_baseline")
    engine = create_engine(database_url)
    with engine.begin() as conn:
        for sql in BASELINE_ROWS:
            conn.execute(text(sql))
        if engine.dialect.name == "postgresql":  # explicit ids: move the sequences past them
            for t in COUNTED:
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), "
                        f"(SELECT max(id) FROM {t}))"
                    )
                )
    engine.dispose()
    before = _counts(database_url)
    migrate.upgrade(database_url)
    assert _counts(database_url) == before
    db = Database(database_url)
    try:
        with db.reading() as s:
            doc = service.node_document(s, service.node_by_hostname(s, "cmp1"))
            assert str(doc.host.gateway) == "10.20.0.1" and doc.host.gateway_source == "admin"
            assert doc.host.model_dump()["dns_servers"] == ["198.51.100.53"]
            assert service.list_vips(s, 1) == []  # the migration reserved nothing
        with db.writing() as s:
            service.reserve_vips(s, 1)
            service.create_node(s, 1, {"hostname": "cmp2", "roles": ["compute"]})
        with db.reading() as s:
            assert {v["name"] for v in service.list_vips(s, 1)} == {"vrouter", "vrouter_pub"}
    finally:
        db.dispose()
    # an environment that never turned the vrouter on can go back to the baseline
    migrate.downgrade(database_url, "0001_baseline")
    after = _counts(database_url)
    assert (
        after["nodes"] == 3 and after["addresses"] == before["addresses"] + 2
    )  # cmp2: admin, management


def test_downgrade_from_ipv6_drops_only_the_ipv6_rows(database_url):
    migrate.upgrade(database_url)
    db = Database(database_url)
    try:
        with db.writing() as s:
            env_id = service.create_environment(s, "dual", False).id
            service.create_network(s, env_id, {
                "name": "management", "role": "management", "cidr": "192.168.0.0/24",
                "ranges": [{"start": "192.168.0.10", "end": "192.168.0.99"}],
                "cidr6": "fd00::/64", "ranges6": [{"start": "fd00::10", "end": "fd00::99"}]})
            service.create_network(s, env_id, {
                "name": "public", "role": "public", "cidr": "203.0.113.0/24",
                "gateway": "203.0.113.1",
                "ranges": [{"start": "203.0.113.10", "end": "203.0.113.20"}],
                "cidr6": "2001:db8::/64", "gateway6": "2001:db8::1",
                "ranges6": [{"start": "2001:db8::10", "end": "2001:db8::20"}]})
            service.create_node(s, env_id, {"hostname": "ctl1", "roles": ["controller"]})
            assert len(service.reserve_vips(s, env_id)) == 4
    finally:
        db.dispose()
    migrate.downgrade(database_url, "0002_vrouter")
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            addresses = [r[0] for r in conn.execute(text("SELECT address FROM addresses"))]
            vips = sorted(r[0] for r in conn.execute(text("SELECT name FROM vips")))
            ranges = [r[0] for r in conn.execute(text("SELECT start_address FROM ip_ranges"))]
    finally:
        engine.dispose()
    assert addresses and not any(":" in a for a in addresses)
    assert vips == ["vrouter", "vrouter_pub"]
    assert sorted(ranges) == ["192.168.0.10", "203.0.113.10"]
    migrate.upgrade(database_url)  # and up again
