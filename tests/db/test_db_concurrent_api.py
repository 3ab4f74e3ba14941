"""Parallel mixed writes against a real `envrouter serve`, on SQLite and PostgreSQL (issue #19):
no answer is a 5xx, every answer is one the API documents for the request, and the state
afterwards keeps every rule (no address twice, addresses match roles, documents build)."""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import func, select

from envrouter.db import migrate
from envrouter.db.engine import Database
from envrouter.db.tables import AddressRow
from envrouter.model import service
from envrouter.model.tokens import create_token
from serving import serve_process

API = "/api/v1"

def _setup(url: str) -> tuple[str, int, list[int], list[int]]:
    migrate.upgrade(url)
    db = Database(url)
    try:
        with db.writing() as s:
            token = create_token(s, "race")
            env_id = service.create_environment(s, "race", True).id
            for net in (
                {
                    "name": "management",
                    "role": "management",
                    "cidr": "192.168.0.0/22",
                    "ranges": [{"start": "192.168.0.10", "end": "192.168.3.250"}],
                },
                {
                    "name": "public",
                    "role": "public",
                    "cidr": "203.0.113.0/24",
                    "gateway": "203.0.113.1",
                    "ranges": [{"start": "203.0.113.10", "end": "203.0.113.200"}],
                },
            ):
                service.create_network(s, env_id, net)
            nodes = service.create_nodes(
                s,
                env_id,
                [{"hostname": f"ctl{i}", "roles": ["controller"]} for i in range(3)]
                + [{"hostname": f"flip{i}", "roles": ["compute"]} for i in range(8)]
                + [{"hostname": f"gone{i}", "roles": ["compute"]} for i in range(6)],
            )
            service.reserve_vips(s, env_id)
            service.put_settings(s, env_id, {"enabled": True, "dns_list": ["198.51.100.53"]})
            flip = [n.id for n in nodes if n.hostname.startswith("flip")]
            gone = [n.id for n in nodes if n.hostname.startswith("gone")]
    finally:
        db.dispose()
    return token, env_id, flip, gone


def test_parallel_mixed_writes_never_5xx(database_url, tmp_path):
    token, env_id, flip, gone = _setup(database_url)
    with serve_process([sys.executable, "-m", "envrouter.cli.main"], tmp_path,
                       database_url) as base:
        e = f"{API}/environments/{env_id}"
        dns_values = [["198.51.100.53"], ["198.51.100.54", "192.0.2.53"], ["192.0.2.1"]]
        jobs: list[tuple[str, str, object, set[int]]] = []
        twin = {"hostname": "cmp0", "roles": ["compute"]}
        for i in range(20):
            body = {"hostname": f"cmp{i}", "roles": ["compute"]}
            jobs.append(("POST", f"{e}/nodes", body, {201, 409} if body == twin else {201}))
        for i in range(8):
            jobs.append(
                ("POST", f"{e}/nodes", {"hostname": f"new-ctl{i}", "roles": ["controller"]}, {201})
            )
        for i in range(10):
            jobs.append(("PUT", f"{e}/vrouter", {"dns_list": dns_values[i % 3]}, {200}))
        for i in range(6):
            address = None if i % 2 else f"192.168.3.{240 + i}"
            jobs.append(("PUT", f"{e}/vips/vrouter", {"address": address}, {200}))
        for node_id in flip:
            jobs.append(("PATCH", f"{API}/nodes/{node_id}", {"roles": ["controller"]}, {200}))
        # gone[0] and gone[1] deleted twice at once: one 204 and one 404 each
        for node_id in [*gone, gone[0], gone[1]]:
            twice = node_id in gone[:2]
            jobs.append(("DELETE", f"{API}/nodes/{node_id}", None, {204, 404} if twice else {204}))
        # a duplicate hostname racing its twin: one 201, one 409
        jobs.append(("POST", f"{e}/nodes", twin, {201, 409}))
        # the rules still hold under load: a second public network is refused
        second_public = {"name": "x", "role": "public", "cidr": "198.18.0.0/24"}
        jobs.append(("POST", f"{e}/networks", second_public, {409}))
        assert len(jobs) >= 50
        barrier = threading.Barrier(len(jobs))
        headers = {"Authorization": f"Bearer {token}"}

        def run(job):
            method, path, body, _expected = job
            with httpx.Client(base_url=base, headers=headers, timeout=60) as c:
                barrier.wait(timeout=60)
                r = c.request(method, path, json=body)
                return r.status_code, r.headers.get("retry-after"), r.text

        with ThreadPoolExecutor(len(jobs)) as pool:
            results = list(pool.map(run, jobs))
        server_errors = [(j[:2], r) for j, r in zip(jobs, results, strict=True) if r[0] >= 500]
        assert not server_errors, server_errors
        unexpected = [(j[:3], r) for j, r in zip(jobs, results, strict=True) if r[0] not in j[3]]
        assert not unexpected, unexpected
        # duplicates: exactly one of each pair won
        deletes = [r[0] for j, r in zip(jobs, results, strict=True) if j[0] == "DELETE"]
        assert deletes.count(204) == len(gone)
        cmp0 = [r[0] for j, r in zip(jobs, results, strict=True) if j[2] == twin]
        assert sorted(cmp0) == [201, 409]

        # the state afterwards
        with httpx.Client(base_url=base, headers=headers, timeout=60) as c:
            nodes = {n["hostname"]: n for n in c.get(f"{e}/nodes").json()}
            docs = c.get(f"{e}/documents")
            settings = c.get(f"{e}/vrouter").json()
        assert docs.status_code == 200
        expected = (
            {f"ctl{i}" for i in range(3)}
            | {f"flip{i}" for i in range(8)}
            | {f"cmp{i}" for i in range(20)}
            | {f"new-ctl{i}" for i in range(8)}
        )
        assert set(nodes) == expected
        for node in nodes.values():
            controller = "controller" in node["roles"]
            assert ("public" in node["addresses"]) == controller, node
            assert (node["namespace_address"] is not None) == controller, node
            assert "management" in node["addresses"], node
        assert settings["dns_list"] in dns_values and settings["enabled"] is True
        db = Database(database_url)
        try:
            with db.reading() as s:
                total = s.scalar(select(func.count()).select_from(AddressRow))
                distinct = s.execute(
                    select(func.count()).select_from(
                        select(AddressRow.network_id, AddressRow.address).distinct().subquery()
                    )
                ).scalar()
                assert total == distinct
                assert service.environment_problems(s, env_id) == set()
        finally:
            db.dispose()
