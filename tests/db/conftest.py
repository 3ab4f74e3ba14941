"""Database fixtures: a migrated SQLite file, and a real PostgreSQL 15 server that this
fixture starts itself (Debian's binaries, data and unix socket in a temporary directory, no TCP
listener) and stops at the end of the session, also on failure."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("ENVROUTER_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


class PostgresServer:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ert-pg-"))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.log = self.root / "server.log"
        self.started = False

    def start(self) -> None:
        self.sock.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sock, "postgres", "postgres")
        initdb = [
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ]
        subprocess.run(_as_postgres(initdb), check=True, capture_output=True, timeout=120)
        options = f"-k {self.sock} -c listen_addresses='' -c fsync=off -c max_connections=100"
        start = [
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        ]
        subprocess.run(_as_postgres(start), check=True, capture_output=True, timeout=90)
        self.started = True

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.sock}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            host=str(self.sock), user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql)

    def stop(self) -> None:
        try:
            if self.started:
                stop = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]
                subprocess.run(_as_postgres(stop), capture_output=True, timeout=60)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL binaries not found in {PG_BIN} (make test installs postgresql)")
    server = PostgresServer()
    try:
        server.start()
    except (subprocess.SubprocessError, OSError) as exc:
        log = server.log.read_text() if server.log.exists() else ""
        server.stop()
        pytest.fail(f"could not start PostgreSQL: {exc}\n{log}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server):
    name = "ert_" + uuid.uuid4().hex[:12]
    postgres_server.admin(f'CREATE DATABASE "{name}"')
    yield postgres_server.url(name)
    postgres_server.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'envrouter.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request):
    """An empty database on each backend."""
    return request.getfixturevalue(f"{request.param}_url")
