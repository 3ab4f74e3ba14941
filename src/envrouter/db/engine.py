"""Engine and sessions.

SQLite: WAL journal, foreign keys on, a bounded busy wait (BUSY_TIMEOUT seconds); write
sessions start with BEGIN IMMEDIATE so that two writers never both read the free addresses and
then collide (the write lock is taken before the first read). PostgreSQL: write paths lock the
environment's rows with SELECT ... FOR UPDATE (see `envrouter.model.service.lock_environment`),
and a lock wait is bounded the same way (lock_timeout). A wait that runs out is an
OperationalError, which the API answers with 503 and Retry-After.

Opening an engine never creates anything: only `envrouter db upgrade` (and `serve`, which
upgrades first) creates a database, see `ensure_sqlite_directory`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from envrouter.db.config import resolve_database_url

_IMMEDIATE = "envrouter_sqlite_immediate"
# How long a write waits for another writer. Writes take milliseconds, so this is only reached
# when the database is really unservable (a stuck writer, a full disk).
BUSY_TIMEOUT = 10.0


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None: not SQLite, or in memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def ensure_sqlite_directory(url: str) -> None:
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str | None = None, **kwargs: object) -> Engine:
    url = resolve_database_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        kwargs.setdefault(
            "connect_args", {"timeout": BUSY_TIMEOUT, "check_same_thread": False}
        )
        if parsed.database and parsed.database != ":memory:":
            kwargs.setdefault("pool_size", 20)
            kwargs.setdefault("max_overflow", 40)
        engine = create_engine(url, **kwargs)  # type: ignore[arg-type]

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):  # noqa: ANN001
            # The driver must not issue its own BEGIN: we do, deferred or immediate.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            if parsed.database and parsed.database != ":memory:":
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # noqa: ANN001
            if conn.get_execution_options().get(_IMMEDIATE):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

        return engine
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 40)
    kwargs.setdefault("pool_pre_ping", True)
    if parsed.get_backend_name() == "postgresql":
        kwargs.setdefault(
            "connect_args", {"options": f"-c lock_timeout={int(BUSY_TIMEOUT * 1000)}"}
        )
    return create_engine(url, **kwargs)  # type: ignore[arg-type]


class Database:
    """One engine and its two kinds of session: read (plain) and write (serialised)."""

    def __init__(self, url: str | None = None, engine: Engine | None = None) -> None:
        self.url = resolve_database_url(url)
        self.engine = engine or make_engine(self.url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        write_bind = (
            self.engine.execution_options(**{_IMMEDIATE: True}) if self.is_sqlite else self.engine
        )
        self._read = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._write = sessionmaker(bind=write_bind, expire_on_commit=False)

    def read_session(self) -> Session:
        return self._read()

    def write_session(self) -> Session:
        return self._write()

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A write transaction: commit on success, roll back on error."""
        with self.write_session() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self.read_session() as session:
            try:
                yield session
            finally:
                session.rollback()

    def dispose(self) -> None:
        self.engine.dispose()
