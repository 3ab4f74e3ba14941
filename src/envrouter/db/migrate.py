"""Run the Alembic migrations shipped in the package (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from envrouter.db.config import resolve_database_url
from envrouter.db.engine import ensure_sqlite_directory, make_engine, sqlite_path
from envrouter.errors import ValidationError

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001_baseline"
HEAD = "head"


def _config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # '%' must be doubled for configparser (socket paths in URLs are percent-encoded)
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def _run(url: str | None, fn, revision: str) -> None:  # noqa: ANN001
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            cfg = _config(engine)
            cfg.attributes["connection"] = conn
            fn(cfg, revision)
    finally:
        engine.dispose()


def upgrade(url: str | None = None, revision: str = HEAD) -> None:
    """The only path that creates a database (and a SQLite file's directory)."""
    url = resolve_database_url(url)
    ensure_sqlite_directory(url)
    _run(url, command.upgrade, revision)


def downgrade(url: str | None = None, revision: str = BASELINE) -> None:
    if current(url) is None:
        raise ValidationError(
            "database", _shown(resolve_database_url(url)),
            "the schema is empty (revision none): nothing to downgrade",
        )
    _run(url, command.downgrade, revision)


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def require_existing(url: str | None = None) -> str:
    """The resolved URL; a SQLite file that does not exist is an error (opening it would
    create it: only `upgrade` creates a database)."""
    url = resolve_database_url(url)
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise ValidationError(
            "database", str(path), "does not exist; run: envrouter db upgrade"
        )
    return url


def require_head(url: str | None = None) -> str:
    """The resolved URL of a database whose schema is at the newest revision (what every
    command but `db` needs), else an error that says what to run."""
    url = require_existing(url)
    rev, newest = current(url), head()
    if rev != newest:
        raise ValidationError(
            "database",
            _shown(url),
            f"schema at revision {rev or 'none (empty)'}, this envrouter needs {newest}; "
            "run: envrouter db upgrade",
        )
    return url


def current(url: str | None = None) -> str | None:
    """The schema's revision; None for an empty database, or a SQLite file that does not exist
    (which is not created by asking)."""
    url = resolve_database_url(url)
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        return None
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head() or ""


def revisions() -> list[str]:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return [s.revision for s in reversed(list(ScriptDirectory.from_config(cfg).walk_revisions()))]
