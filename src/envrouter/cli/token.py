"""envrouter token: API tokens (shown once, stored as SHA-256 digests)."""

from __future__ import annotations

import typer

from envrouter.cli.common import CommandGroup, DatabaseUrl, open_database

app = CommandGroup(
    add_completion=False,
    no_args_is_help=True,
    help="API tokens: create, list, revoke.",
)


def _db(url: str | None):  # noqa: ANN202
    return open_database(url)


@app.command()
def create(
    name: str = typer.Option(..., "--name", help="a name for the token's holder"),
    read_only: bool = typer.Option(False, "--read-only", help="may read, never write"),
    expires_days: float = typer.Option(None, "--expires-days", help="lifetime in days"),
    database_url: DatabaseUrl = None,
) -> None:
    """Create a token and print it (the only time it is shown)."""
    from envrouter.model.tokens import create_token

    with _db(database_url).writing() as session:
        secret = create_token(session, name, read_only=read_only, expires_days=expires_days)
    typer.echo(secret)


@app.command("list")
def list_(database_url: DatabaseUrl = None) -> None:
    """List the tokens (never their secrets)."""
    from envrouter.model.tokens import list_tokens

    with _db(database_url).reading() as session:
        tokens = list_tokens(session)
    for t in tokens:
        access = "read-only" if t.read_only else "admin"
        expires = t.expires_at.isoformat(timespec="seconds") if t.expires_at else "never"
        state = " (expired)" if t.expired else ""
        typer.echo(f"{t.name:<24} {access:<9} expires {expires}{state}")


@app.command()
def revoke(
    name: str = typer.Argument(..., help="token name"), database_url: DatabaseUrl = None
) -> None:
    """Delete a token: it stops working (within 5 s on a running server)."""
    from envrouter.model.tokens import revoke_token

    with _db(database_url).writing() as session:
        revoke_token(session, name)
    typer.echo(f"revoked {name}")
