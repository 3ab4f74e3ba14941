"""envrouter env: environments as YAML files, listing, VIP reservation."""

from __future__ import annotations

from pathlib import Path

import typer

from envrouter.cli.common import handle_errors
from envrouter.errors import ValidationError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Environments: import/export YAML, list, reserve VIPs.",
)

URL = typer.Option(None, "--database-url", help="SQLAlchemy URL (default: see docs)")


def _db(url: str | None):  # noqa: ANN202
    from envrouter.db.engine import Database

    return Database(url)


@app.command("import")
@handle_errors
def import_(
    file: Path = typer.Argument(..., help="environment YAML"), database_url: str = URL
) -> None:
    """Create the environment described in FILE (networks, nodes, vrouter settings, VIPs)."""
    import yaml

    from envrouter.model.yamlio import import_environment

    try:
        data = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValidationError(f"file {str(file)!r}", "(yaml)", str(exc)) from None
    with _db(database_url).writing() as session:
        env_id = import_environment(session, data)
    typer.echo(f"imported environment {data.get('name')!r} (id {env_id})")


@app.command()
@handle_errors
def export(
    name: str = typer.Argument(..., help="environment name"), database_url: str = URL
) -> None:
    """Print the environment as YAML (the format `env import` reads)."""
    import yaml

    from envrouter.model import service
    from envrouter.model.yamlio import export_environment

    with _db(database_url).reading() as session:
        env = service.environment_by_name(session, name)
        data = export_environment(session, env.id)
    typer.echo(yaml.safe_dump(data, sort_keys=False), nl=False)


@app.command("list")
@handle_errors
def list_(database_url: str = URL) -> None:
    """List the environments with their counts."""
    from sqlalchemy import select

    from envrouter.db.tables import EnvironmentRow
    from envrouter.model import service

    with _db(database_url).reading() as session:
        rows = session.scalars(select(EnvironmentRow).order_by(EnvironmentRow.id)).all()
        counts = service.environment_counts(session, [r.id for r in rows])
        typer.echo(f"{'ID':>4}  {'NAME':<24} {'HA':<4} {'NETWORKS':>8} {'NODES':>6} {'VIPS':>4}")
        for r in rows:
            c = counts[r.id]
            typer.echo(
                f"{r.id:>4}  {r.name:<24} {'yes' if r.ha else 'no':<4} {c['networks']:>8} "
                f"{c['nodes']:>6} {c['vips']:>4}"
            )


@app.command("reserve-vips")
@handle_errors
def reserve_vips(
    name: str = typer.Argument(..., help="environment name"), database_url: str = URL
) -> None:
    """Reserve the vrouter VIPs and the controllers' namespace addresses (idempotent)."""
    from envrouter.model import service

    with _db(database_url).writing() as session:
        env = service.environment_by_name(session, name)
        vips = service.reserve_vips(session, env.id)
    for v in vips:
        kind = "user-defined" if v["user_defined"] else "automatic"
        typer.echo(f"{v['name']:<12} {v['address']:<40} {v['network']} ({kind})")
