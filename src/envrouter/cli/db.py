"""envrouter db: create, upgrade or downgrade the schema (Alembic, shipped in the package)."""

from __future__ import annotations

import typer

from envrouter.cli.common import CommandGroup, DatabaseUrl

app = CommandGroup(
    add_completion=False,
    no_args_is_help=True,
    help="Database: create or upgrade the schema.",
)


@app.command()
def upgrade(
    revision: str = typer.Argument("head", help="target revision"), database_url: DatabaseUrl = None
) -> None:
    """Upgrade the schema (from empty too) to REVISION, the newest by default."""
    from envrouter.db import migrate

    migrate.upgrade(database_url, revision)
    typer.echo(f"database at revision {migrate.current(database_url)}")


@app.command()
def downgrade(
    revision: str = typer.Argument(..., help="target revision, e.g. 0001_baseline or base"),
    database_url: DatabaseUrl = None,
) -> None:
    """Downgrade the schema to REVISION (0001_baseline: before the vrouter)."""
    from envrouter.db import migrate

    migrate.downgrade(migrate.require_existing(database_url), revision)
    typer.echo(f"database at revision {migrate.current(database_url)}")


@app.command()
def current(database_url: DatabaseUrl = None) -> None:
    """Print the schema's revision (none: empty database)."""
    from envrouter.db import migrate

    rev = migrate.current(migrate.require_existing(database_url))
    typer.echo(f"{rev or 'none'} (newest: {migrate.head()})")
