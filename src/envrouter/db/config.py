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

DEFAULT_CONFIG = "/etc/envrouter/envrouter.toml"
DEFAULT_SQLITE_PATH = "/var/lib/envrouter/envrouter.db"
DEFAULT_URL = f"sqlite:///{DEFAULT_SQLITE_PATH}"


def _from_config_file(path: Path) -> str | None:
    if not path.is_file():
        return None
    if path.suffix == ".toml":
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        for section in (data, data.get("database", {}), data.get("envrouter", {})):
            if isinstance(section, dict):
                value = section.get("database_url") or section.get("url")
                if isinstance(value, str) and value:
                    return value
        return None
    parser = configparser.ConfigParser()
    parser.read(path)
    for section in ("database", "envrouter", "DEFAULT"):
        if parser.has_option(section, "database_url"):
            return parser.get(section, "database_url")
    return None


def resolve_database_url(explicit: str | None = None) -> str:
    if explicit:
        return explicit
    env_url = os.environ.get("ENVROUTER_DATABASE_URL")
    if env_url:
        return env_url
    config = Path(os.environ.get("ENVROUTER_CONFIG", DEFAULT_CONFIG))
    candidates = (
        [config] if "ENVROUTER_CONFIG" in os.environ else [config, config.with_suffix(".ini")]
    )
    for path in candidates:
        url = _from_config_file(path)
        if url:
            return url
    return DEFAULT_URL
