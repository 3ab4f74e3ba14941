"""Where the database is.

Order: an explicit URL (command-line option, `create_app(database_url=...)`), then the
`ENVROUTER_DATABASE_URL` environment variable, then `database_url` in the config file
(`ENVROUTER_CONFIG`, default /etc/envrouter/envrouter.toml; an .ini file with a [database]
or [envrouter] section works too), then the default SQLite file
/var/lib/envrouter/envrouter.db.
"""

from __future__ import annotations

import configparser
import os
import tomllib
from pathlib import Path

from envrouter.errors import ValidationError

DEFAULT_CONFIG = "/etc/envrouter/envrouter.toml"
DEFAULT_SQLITE_PATH = "/var/lib/envrouter/envrouter.db"
DEFAULT_URL = f"sqlite:///{DEFAULT_SQLITE_PATH}"


EXAMPLES = "sqlite:////var/lib/envrouter/envrouter.db or postgresql+psycopg://USER@HOST/DBNAME"


def _from_config_file(path: Path) -> str | None:
    if not path.is_file():
        return None
    if path.suffix == ".toml":
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ValidationError(f"config file {str(path)!r}", "(toml)", str(exc)) from None
        except OSError as exc:
            raise ValidationError(f"config file {str(path)!r}", "(file)", str(exc)) from None
        for section in (data, data.get("database", {}), data.get("envrouter", {})):
            if isinstance(section, dict):
                value = section.get("database_url") or section.get("url")
                if isinstance(value, str) and value:
                    return value
        return None
    parser = configparser.ConfigParser()
    try:
        parser.read(path)
    except (configparser.Error, OSError) as exc:
        raise ValidationError(f"config file {str(path)!r}", "(ini)", str(exc)) from None
    for section in ("database", "envrouter", "DEFAULT"):
        if parser.has_option(section, "database_url"):
            return parser.get(section, "database_url")
    return None


def check_database_url(url: str, source: str) -> str:
    """`url` if envrouter can use it; else a ValidationError naming `source` (where it came
    from). The URL itself is not repeated: it may hold a password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ValidationError(
            source, "database_url", f"not a database URL; use e.g. {EXAMPLES}"
        ) from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend == "sqlite":
        return url
    if backend == "postgresql" and driver == "psycopg":
        return url
    if backend == "postgresql":
        raise ValidationError(
            source, "database_url", f"driver {driver!r} is not supported: use postgresql+psycopg://"
        )
    raise ValidationError(
        source, "database_url", f"unsupported database {backend!r}: use e.g. {EXAMPLES}"
    )


def resolve_database_url(explicit: str | None = None) -> str:
    if explicit:
        return check_database_url(explicit, "--database-url")
    env_url = os.environ.get("ENVROUTER_DATABASE_URL")
    if env_url:
        return check_database_url(env_url, "ENVROUTER_DATABASE_URL")
    if "ENVROUTER_CONFIG" in os.environ:
        config = Path(os.environ["ENVROUTER_CONFIG"])
        if not config.is_file():
            raise ValidationError(
                "ENVROUTER_CONFIG",
                str(config),
                "no such file: point it at the config file, or unset it",
            )
        candidates = [config]
    else:
        config = Path(DEFAULT_CONFIG)
        candidates = [config, config.with_suffix(".ini")]
    for path in candidates:
        url = _from_config_file(path)
        if url:
            return check_database_url(url, f"config file {str(path)!r}")
    return DEFAULT_URL
