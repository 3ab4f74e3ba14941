"""Issue #19 point 5: every error path of the CLI ends in one line that names the cause (and the
command that fixes it), a non-zero exit, never a traceback; no read command creates a database.
The cases run in this process through Click's runner (an exception escaping a command fails
them); a few also run as a real process, to see exactly what an operator sees."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest
from cli_run import assert_clean_error, envrouter, envrouter_process

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "environment.yaml"


@pytest.fixture(scope="module")
def upgraded_db(tmp_path_factory) -> str:
    """A database at the newest revision, shared by the tests that only read it or are refused
    before they write."""
    url = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'x.db'}"
    assert envrouter("db", "upgrade", "--database-url", url).returncode == 0
    return url


@pytest.fixture
def empty_db(tmp_path) -> str:
    """A database file that was never upgraded (it has a table, not ours)."""
    path = tmp_path / "empty.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE unrelated (x)")
    return f"sqlite:///{path}"


@pytest.mark.parametrize(
    "args",
    [
        ("env", "list"),
        ("env", "import", str(EXAMPLE)),
        ("env", "export", "demo"),
        ("token", "create", "--name", "ops"),
        ("token", "list"),
        ("document", "demo", "ctl1"),
    ],
)
def test_a_database_never_upgraded_says_run_db_upgrade(empty_db, args):
    r = envrouter(*args, "--database-url", empty_db)
    assert_clean_error(r, "revision none", "run: envrouter db upgrade")


def test_an_old_schema_says_run_db_upgrade(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    assert envrouter("db", "upgrade", "0001_baseline", "--database-url", url).returncode == 0
    assert_clean_error(envrouter("env", "list", "--database-url", url), "0001_baseline",
                       "run: envrouter db upgrade")


def test_downgrade_of_an_empty_database(empty_db):
    r = envrouter("db", "downgrade", "0001_baseline", "--database-url", empty_db)
    assert_clean_error(r, "nothing to downgrade")


def test_downgrade_to_an_unknown_revision(upgraded_db):
    r = envrouter("db", "downgrade", "nope", "--database-url", upgraded_db)
    assert_clean_error(r, "nope")


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("garbage", "not a database URL"),
        ("mysql://user@db.example/envrouter", "unsupported database 'mysql'"),
        ("postgresql+asyncpg://user@/envrouter", "use postgresql+psycopg://"),
    ],
)
def test_a_bad_database_url(url, needle):
    for args in (("env", "list"), ("db", "upgrade")):
        r = envrouter(*args, env={"ENVROUTER_DATABASE_URL": url})
        assert_clean_error(r, "ENVROUTER_DATABASE_URL", needle)
    r = envrouter("token", "list", "--database-url", url)
    assert_clean_error(r, "--database-url", needle)


def test_as_a_process_one_line_and_no_traceback(tmp_path):
    r = envrouter_process("env", "list", env={"ENVROUTER_DATABASE_URL": "garbage"})
    assert_clean_error(r, "ENVROUTER_DATABASE_URL", "not a database URL")
    assert r.stderr.count("\n") == 1 and r.returncode == 2
    r = envrouter_process("env", "list", "--database-url", f"sqlite:///{tmp_path / 'no.db'}")
    assert_clean_error(r, "run: envrouter db upgrade")
    assert not (tmp_path / "no.db").exists()


def test_an_unreachable_postgresql(tmp_path):
    url = f"postgresql+psycopg://envrouter@/envrouter?host={tmp_path}"
    assert_clean_error(envrouter("env", "list", "--database-url", url), "failed: database:")


def test_a_malformed_config_file(tmp_path):
    config = tmp_path / "envrouter.toml"
    config.write_text('database_url = "sqlite:///x.db\n')
    r = envrouter("db", "current", env={"ENVROUTER_CONFIG": str(config)})
    assert_clean_error(r, str(config), "(toml)")


def test_a_missing_config_file_is_an_error(tmp_path):
    missing = tmp_path / "nope.toml"
    r = envrouter("db", "current", env={"ENVROUTER_CONFIG": str(missing)})
    assert_clean_error(r, "ENVROUTER_CONFIG", str(missing), "no such file")


def test_no_read_command_creates_a_database(tmp_path):
    where = tmp_path / "var" / "lib" / "envrouter"
    config = tmp_path / "envrouter.toml"
    config.write_text(f'database_url = "sqlite:///{where / "envrouter.db"}"\n')
    env = {"ENVROUTER_CONFIG": str(config)}
    for args in (
        ("db", "current"),
        ("env", "list"),
        ("env", "export", "demo"),
        ("token", "list"),
        ("document", "demo", "ctl1"),
        ("db", "downgrade", "0001_baseline"),
    ):
        r = envrouter(*args, env=env)
        assert_clean_error(r, "does not exist", "run: envrouter db upgrade")
        assert not where.exists(), args
    assert envrouter("db", "upgrade", env=env).returncode == 0  # the one that creates it
    assert (where / "envrouter.db").is_file()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name: x\nnetworks: 5\n", "networks: expected a list"),
        ("name: x\nnetworks: {admin: {}}\n", "networks: expected a list"),
        ("name: x\nnodes: [ctl1]\n", "nodes[0]"),
        ("name: x\nvrouter: [1]\n", "vrouter: expected a mapping"),
        ("- just\n- a list\n", "expected a mapping"),
        ("name: x\nha: 'false'\n", "ha: 'false' is not true or false"),
        ("name: [unclosed\n", "(yaml)"),
    ],
)
def test_a_bad_environment_file(upgraded_db, tmp_path, text, needle):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    for command in ("import", "apply"):
        r = envrouter("env", command, str(bad), "--database-url", upgraded_db)
        assert_clean_error(r, needle)


def test_a_missing_environment_file(upgraded_db, tmp_path):
    r = envrouter("env", "import", str(tmp_path / "nope.yaml"), "--database-url", upgraded_db)
    assert_clean_error(r, "nope.yaml")


def test_serve_on_a_port_in_use_fails_before_saying_serving(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = envrouter_process(
            "serve", "--port", str(port), "--database-url", f"sqlite:///{tmp_path / 's.db'}"
        )
    assert_clean_error(r, "--port", f"127.0.0.1:{port}")
    assert "serving on" not in r.stderr
