"""envrouter upgrade — not built yet (its issue is open)."""

import typer

app = typer.Typer(no_args_is_help=True, help="Not built yet.")
