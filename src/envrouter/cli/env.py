"""envrouter env: environments as YAML files, listing, VIPs, the vrouter settings, deletion.

Every command that changes an existing environment (set-vrouter, set-vip, delete, apply) shows
the change first, as a diff of `env export` before and after, and goes on only with --yes or a
"y" at a terminal; without a terminal and without --yes it refuses (a script never hangs on a
question). The diff is computed in a transaction that is rolled back; the change itself runs in
a second one, which refuses if the environment changed in between.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from envrouter.cli.common import (
    CommandGroup,
    DatabaseUrl,
    EnvironmentName,
    Yes,
    confirm,
    open_database,
)
from envrouter.errors import ConflictError, ValidationError

app = CommandGroup(
    add_completion=False,
    no_args_is_help=True,
    help="Environments: import/export/apply YAML, list, VIPs, vrouter settings, delete.",
)


def _read_yaml(file: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(file.read_text())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValidationError(f"file {str(file)!r}", "(yaml)", f"{exc.problem}{where}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValidationError(f"file {str(file)!r}", "(yaml)", str(exc)) from None


def _snapshot(session, name: str) -> tuple[str, int | None]:  # noqa: ANN001
    """(the environment as `env export` prints it, its revision); ("", None) when absent."""
    import yaml
    from sqlalchemy import select

    from envrouter.db.tables import EnvironmentRow
    from envrouter.model.yamlio import export_environment

    row = session.scalars(select(EnvironmentRow).where(EnvironmentRow.name == name)).first()
    if row is None:
        return "", None
    text = yaml.safe_dump(export_environment(session, row.id), sort_keys=False)
    return text, row.revision


def _change(
    database_url: str | None, name: str, change: Callable[[Any], object], *, yes: bool
) -> bool:
    """Show what `change(session)` does to environment `name`, then do it (see the module's
    docstring). Returns False when there was nothing to change."""
    db = open_database(database_url)
    try:
        with db.write_session() as session:
            try:
                before, revision = _snapshot(session, name)
                change(session)
                session.flush()
                after, _ = _snapshot(session, name)
            finally:
                session.rollback()
        diff = "".join(
            difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                f"{name} (now)",
                f"{name} (after)",
            )
        )
        if not diff:
            typer.echo(f"environment {name!r}: nothing to change")
            return False
        typer.echo(diff, nl=not diff.endswith("\n"))
        confirm(f"change environment {name!r} as shown?", yes=yes)
        with db.writing() as session:
            _, now = _snapshot(session, name)
            if now != revision:
                raise ConflictError(
                    f"environment {name!r}",
                    "revision",
                    "changed by someone else since the diff was computed; run the command again",
                )
            change(session)
        return True
    finally:
        db.dispose()


def _environment_id(session, name: str) -> int:  # noqa: ANN001
    from envrouter.model import service

    return service.environment_by_name(session, name).id


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="environment YAML"), database_url: DatabaseUrl = None
) -> None:
    """Create the environment described in FILE (networks, nodes, vrouter settings, VIPs).
    To change an environment that exists, use `env apply`."""
    from envrouter.model.yamlio import import_environment

    data = _read_yaml(file)
    db = open_database(database_url)
    try:
        with db.writing() as session:
            env_id = import_environment(session, data)
    finally:
        db.dispose()
    typer.echo(f"imported environment {data.get('name')!r} (id {env_id})")


@app.command()
def apply(
    file: Path = typer.Argument(..., help="environment YAML (the format of env import/export)"),
    yes: Yes = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Make the environment named in FILE match FILE, declaratively: networks, nodes, settings
    and VIPs not in FILE go, the others are changed or created (created as a whole when the
    environment does not exist). Shows the diff first."""
    from envrouter.model.yamlio import EnvironmentFile, apply_environment

    data = _read_yaml(file)
    name = EnvironmentFile(data).name
    if not isinstance(name, str):
        raise ValidationError("environment file", "name", "expected the environment's name")
    if _change(database_url, name, lambda s: apply_environment(s, data), yes=yes):
        typer.echo(f"environment {name!r} now matches {file}")


@app.command()
def export(
    name: EnvironmentName, database_url: DatabaseUrl = None
) -> None:
    """Print the environment as YAML (the format `env import` and `env apply` read), with every
    address (nodes' host addresses, controllers' vrouter namespace addresses, VIPs)."""
    import yaml

    from envrouter.model import service
    from envrouter.model.yamlio import export_environment

    db = open_database(database_url)
    try:
        with db.reading() as session:
            env = service.environment_by_name(session, name)
            data = export_environment(session, env.id)
    finally:
        db.dispose()
    typer.echo(yaml.safe_dump(data, sort_keys=False), nl=False)


@app.command("list")
def list_(database_url: DatabaseUrl = None) -> None:
    """List the environments with their counts."""
    from sqlalchemy import select

    from envrouter.db.tables import EnvironmentRow
    from envrouter.model import service

    db = open_database(database_url)
    try:
        with db.reading() as session:
            rows = [
                (r.id, r.name, r.ha)
                for r in session.scalars(select(EnvironmentRow).order_by(EnvironmentRow.id))
            ]
            counts = service.environment_counts(session, [r[0] for r in rows])
    finally:
        db.dispose()
    typer.echo(f"{'ID':>4}  {'NAME':<24} {'HA':<4} {'NETWORKS':>8} {'NODES':>6} {'VIPS':>4}")
    for env_id, env_name, ha in rows:
        c = counts[env_id]
        typer.echo(
            f"{env_id:>4}  {env_name:<24} {'yes' if ha else 'no':<4} {c['networks']:>8} "
            f"{c['nodes']:>6} {c['vips']:>4}"
        )


@app.command("reserve-vips")
def reserve_vips(
    name: EnvironmentName, database_url: DatabaseUrl = None
) -> None:
    """Reserve the vrouter VIPs and the controllers' namespace addresses (idempotent)."""
    from envrouter.model import service

    db = open_database(database_url)
    try:
        with db.writing() as session:
            vips = service.reserve_vips(session, _environment_id(session, name))
    finally:
        db.dispose()
    for v in vips:
        kind = "user-defined" if v["user_defined"] else "automatic"
        typer.echo(f"{v['name']:<12} {v['address']:<40} {v['network']} ({kind})")


@app.command("set-vrouter")
def set_vrouter(
    name: EnvironmentName,
    enable: bool = typer.Option(
        None, "--enable/--disable", help="turn the vrouter on (nodes route through it) or off"
    ),
    dns: list[str] = typer.Option(
        None, "--dns", help="upstream DNS server address (repeat for up to 3; replaces the list)"
    ),
    no_dns: bool = typer.Option(False, "--no-dns", help="empty the upstream DNS list"),
    ntp: list[str] = typer.Option(
        None, "--ntp", help="upstream NTP server, address or host name (repeat; replaces)"
    ),
    no_ntp: bool = typer.Option(False, "--no-ntp", help="empty the upstream NTP list"),
    domain: str = typer.Option(None, "--domain", help="search domain of the nodes"),
    no_domain: bool = typer.Option(False, "--no-domain", help="no search domain"),
    nat: bool = typer.Option(None, "--nat/--no-nat", help="SNAT the nodes' traffic"),
    conntrack_sync: bool = typer.Option(
        None, "--conntrack-sync/--no-conntrack-sync", help="sync connections between controllers"
    ),
    bridge_kind: str = typer.Option(None, "--bridge-kind", help="linux or ovs"),
    host_link_cidr: str = typer.Option(None, "--host-link-cidr", help="an IPv4 /30"),
    namespace: str = typer.Option(None, "--namespace", help="the vrouter namespace's name"),
    ipv6: bool = typer.Option(
        None, "--ipv6/--no-ipv6", help="serve IPv6 too (refused: the data path does not yet)"
    ),
    ipv6_egress: str = typer.Option(
        None, "--ipv6-egress", help="nat66 (SNAT to the public IPv6 VIP) or routed (no NAT)"
    ),
    yes: Yes = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Change the vrouter settings of environment NAME (only the options given), as the UI and
    PUT /environments/{id}/vrouter do. Shows the diff first."""
    from envrouter.model import service

    changes: dict[str, Any] = {}
    pairs = (("dns_list", dns, no_dns), ("ntp_list", ntp, no_ntp))
    for key, values, clear in pairs:
        if values and clear:
            raise ValidationError("set-vrouter", key, "give the servers or --no-…, not both")
        if values or clear:
            changes[key] = list(values or [])
    if domain is not None and no_domain:
        raise ValidationError("set-vrouter", "domain", "give --domain or --no-domain, not both")
    if domain is not None or no_domain:
        changes["domain"] = domain
    for key, value in (
        ("enabled", enable),
        ("nat", nat),
        ("conntrack_sync", conntrack_sync),
        ("bridge_kind", bridge_kind),
        ("host_link_cidr", host_link_cidr),
        ("namespace", namespace),
        ("ipv6", ipv6),
        ("ipv6_egress", ipv6_egress),
    ):
        if value is not None:
            changes[key] = value
    if not changes:
        raise ValidationError("set-vrouter", "(options)", "nothing to change: see --help")

    def change(session) -> None:  # noqa: ANN001
        service.put_settings(session, _environment_id(session, name), changes)

    if _change(database_url, name, change, yes=yes):
        typer.echo(f"vrouter settings of {name!r} changed")


@app.command("set-vip")
def set_vip(
    name: EnvironmentName,
    vip: str = typer.Argument(
        ...,
        help="vrouter (management), vrouter_pub (public), or their IPv6 twins vrouter6 and "
        "vrouter_pub6",
    ),
    address: str = typer.Argument(..., help="an address on the VIP's network, or 'auto'"),
    yes: Yes = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Give a VIP a user-defined ADDRESS, or 'auto' to go back to an automatic one, as
    PUT /environments/{id}/vips/{name} does. Shows the diff first."""
    from envrouter.model import service
    from envrouter.model.entities import VIP_NETWORK_ROLES

    if vip not in VIP_NETWORK_ROLES:
        raise ValidationError(
            "set-vip", "NAME", f"{vip!r} is unknown; known: {', '.join(VIP_NETWORK_ROLES)}"
        )
    value = None if address == "auto" else address

    def change(session) -> None:  # noqa: ANN001
        service.set_vip(session, _environment_id(session, name), vip, value)

    if _change(database_url, name, change, yes=yes):
        typer.echo(f"VIP {vip!r} of {name!r} changed")


@app.command()
def delete(
    name: EnvironmentName,
    yes: Yes = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Delete environment NAME with everything in it (networks, nodes, addresses, VIPs).
    Shows what goes first."""
    from envrouter.model import service

    def change(session) -> None:  # noqa: ANN001
        service.delete_environment(session, _environment_id(session, name))

    if _change(database_url, name, change, yes=yes):
        typer.echo(f"environment {name!r} deleted")
