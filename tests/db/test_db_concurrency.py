"""Concurrent clients, each with its own session, allocating in one environment at once:
no address is ever held twice, nobody trips over the unique constraint (the allocation lock
serialises them first), and an exhausted range refuses exactly the requests that do not fit."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from envrouter.db import migrate
from envrouter.db.engine import Database
from envrouter.db.tables import AddressRow
from envrouter.errors import ConflictError
from envrouter.model import service

THREADS = 8


def _setup(url, mgmt_end="192.168.3.250", pub_end="203.0.113.100"):
    migrate.upgrade(url)
    db = Database(url)
    with db.writing() as s:
        env_id = service.create_environment(s, "race", True).id
        service.create_network(
            s,
            env_id,
            {
                "name": "management",
                "role": "management",
                "cidr": "192.168.0.0/22",
                "ranges": [{"start": "192.168.0.10", "end": mgmt_end}],
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
                "ranges": [{"start": "203.0.113.10", "end": pub_end}],
            },
        )
    return db, env_id


def _run_all(jobs):
    barrier = threading.Barrier(len(jobs))

    def run(job):
        barrier.wait(timeout=30)
        try:
            return ("ok", job())
        except ConflictError as exc:
            return ("conflict", str(exc))

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(run, jobs))


def _no_duplicates(db):
    with db.reading() as s:
        total = s.scalar(select(func.count()).select_from(AddressRow))
        distinct = s.execute(
            select(func.count()).select_from(
                select(AddressRow.network_id, AddressRow.address).distinct().subquery()
            )
        ).scalar()
    assert total == distinct
    return total


def test_concurrent_node_creation_and_vip_reservation(database_url):
    db, env_id = _setup(database_url)
    try:

        def creator(t):
            def job():
                for i in range(5):
                    with db.writing() as s:
                        roles = ["controller"] if i == 0 else ["compute"]
                        service.create_node(s, env_id, {"hostname": f"t{t}n{i}", "roles": roles})

            return job

        def reserver():
            with db.writing() as s:
                return service.reserve_vips(s, env_id)

        jobs = [creator(t) for t in range(THREADS)] + [reserver, reserver]
        results = _run_all(jobs)
        assert all(r[0] == "ok" for r in results), results
        # both reservations returned the same VIPs (idempotent under concurrency)
        assert results[-1][1] == results[-2][1]
        total = _no_duplicates(db)
        # 40 nodes on management + 8 controllers on public + 2 VIPs + namespace addresses
        with db.reading() as s:
            ns = s.scalar(
                select(func.count()).select_from(AddressRow).where(AddressRow.kind == "namespace")
            )
        assert total == 40 + 8 + 2 + ns
    finally:
        db.dispose()


def _race_controllers_for_public(db, env_id, racing: int, free: int) -> None:
    """`racing` controllers created at once with `free` public addresses left: exactly `free`
    succeed, the rest are refused naming the public network, and no address is given twice."""
    try:

        def creator(t):
            def job():
                with db.writing() as s:
                    service.create_node(s, env_id, {"hostname": f"c{t}", "roles": ["controller"]})

            return job

        results = _run_all([creator(t) for t in range(racing)])
        ok = [r for r in results if r[0] == "ok"]
        refused = [r for r in results if r[0] == "conflict"]
        assert len(ok) == free and len(refused) == racing - free, results
        assert all("1 missing" in r[1] and "network 'public'" in r[1] for r in refused), refused
        _no_duplicates(db)
    finally:
        db.dispose()


def test_concurrent_exhaustion_refuses_exactly_the_overflow(database_url):
    # 6 free public addresses, 10 controllers racing for them
    db, env_id = _setup(database_url, pub_end="203.0.113.15")
    _race_controllers_for_public(db, env_id, racing=10, free=6)


def test_concurrent_user_defined_vips(database_url):
    db, env_id = _setup(database_url)
    try:

        def setter(name, address):
            def job():
                with db.writing() as s:
                    return service.set_vip(s, env_id, name, address)

            return job

        # the same address asked for by both VIP owners at once on management is impossible
        # (different networks), so race a node against the VIP for 192.168.0.10
        def node():
            with db.writing() as s:
                service.create_node(
                    s, env_id, {"hostname": "n1", "addresses": {"management": "192.168.0.50"}}
                )

        results = _run_all(
            [setter("vrouter", "192.168.0.50"), node, setter("vrouter_pub", "203.0.113.50")]
        )
        assert sum(1 for r in results[:2] if r[0] == "ok") == 1, results
        loser = next(r for r in results[:2] if r[0] == "conflict")
        assert "already held" in loser[1]
        assert results[2][0] == "ok"
        _no_duplicates(db)
    finally:
        db.dispose()


def _setup_dual(url, mgmt6_end="fd00:3::ff", pub6_end="2001:db8:3::ff"):
    db, env_id = _setup(url)
    with db.writing() as s:
        for name, cidr6, gw6, start, end in (
            ("management", "fd00:3::/64", None, "fd00:3::10", mgmt6_end),
            ("public", "2001:db8:3::/64", "2001:db8:3::1", "2001:db8:3::10", pub6_end),
        ):
            net = next(n for n in service.load_environment(s, env_id).networks if n.name == name)
            service.update_network(
                s, net.id, {"cidr6": cidr6, "gateway6": gw6,
                            "ranges6": [{"start": start, "end": end}]}
            )
    return db, env_id


def test_concurrent_dual_stack_allocation_and_vip_reservation(database_url):
    """Both families race in one environment: every node gets one address of each family per
    network, the four VIPs are reserved once, and nothing is held twice."""
    db, env_id = _setup_dual(database_url)
    try:

        def creator(t):
            def job():
                for i in range(3):
                    with db.writing() as s:
                        roles = ["controller"] if i == 0 else ["compute"]
                        service.create_node(s, env_id, {"hostname": f"d{t}n{i}", "roles": roles})

            return job

        def reserver():
            with db.writing() as s:
                return service.reserve_vips(s, env_id)

        results = _run_all([creator(t) for t in range(THREADS)] + [reserver, reserver])
        assert all(r[0] == "ok" for r in results), results
        assert results[-1][1] == results[-2][1]
        names = {v["name"]: v["address"] for v in results[-1][1]}
        assert set(names) == {"vrouter", "vrouter_pub", "vrouter6", "vrouter_pub6"}
        assert ":" in names["vrouter6"] and ":" in names["vrouter_pub6"]
        total = _no_duplicates(db)
        with db.reading() as s:
            ns = s.scalar(
                select(func.count()).select_from(AddressRow).where(AddressRow.kind == "namespace")
            )
            v6 = s.scalar(
                select(func.count()).select_from(AddressRow).where(AddressRow.address.like("%:%"))
            )
        # 24 nodes on management and 8 controllers on public, in each family; 4 VIPs
        assert v6 == 24 + 8 + 2
        assert total == 2 * (24 + 8) + 4 + ns
    finally:
        db.dispose()


def test_concurrent_ipv6_exhaustion_refuses_exactly_the_overflow(database_url):
    # 5 free public IPv6 addresses (IPv4 has plenty), 8 controllers racing for them
    db, env_id = _setup_dual(database_url, pub6_end="2001:db8:3::14")
    _race_controllers_for_public(db, env_id, racing=8, free=5)


def test_concurrent_user_defined_ipv6_vip_against_a_node(database_url):
    db, env_id = _setup_dual(database_url)
    try:

        def vip():
            with db.writing() as s:
                return service.set_vip(s, env_id, "vrouter6", "fd00:3::50")

        def node():
            with db.writing() as s:
                service.create_node(
                    s, env_id, {"hostname": "n1", "addresses6": {"management": "fd00:3::50"}}
                )

        results = _run_all([vip, node])
        assert sum(1 for r in results if r[0] == "ok") == 1, results
        assert "already held" in next(r for r in results if r[0] == "conflict")[1]
        _no_duplicates(db)
    finally:
        db.dispose()
