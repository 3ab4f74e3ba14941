"""Unit-test fixtures: an in-memory SQLite database with the head schema."""

from __future__ import annotations

import pytest

from envrouter.db.engine import Database, make_engine
from envrouter.db.tables import Base


def memory_database() -> Database:
    engine = make_engine("sqlite://")
    Base.metadata.create_all(engine)
    return Database("sqlite://", engine=engine)


@pytest.fixture
def memdb():
    db = memory_database()
    yield db
    db.dispose()
