"""What every command group shares: error reporting and exit codes (chosen only here)."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from envrouter.errors import ConflictError, InfraError, NotFoundError, ValidationError

F = TypeVar("F", bound=Callable[..., Any])

# The parameters several commands share, each declared once: a command writes
# `database_url: DatabaseUrl = None` (the default is the command's, as Typer wants it).
# The option of every command that opens the control plane's database:
DatabaseUrl = Annotated[str | None, typer.Option(
    "--database-url",
    help="SQLAlchemy URL (default: ENVROUTER_DATABASE_URL, the config file, "
    "or sqlite:////var/lib/envrouter/envrouter.db)",
)]
Yes = Annotated[bool, typer.Option(
    "--yes", "-y", help="change without asking (needed without a terminal)")]
EnvironmentName = Annotated[str, typer.Argument(help="environment name")]
JsonOutput = Annotated[bool, typer.Option("--json", help="machine-readable output")]
# the lab's commands (`lab ...`, `lab drill`); the default is DEFAULT_STATE_DIR of lab.topology
LabStateDir = Annotated[str, typer.Option(
    "--state-dir", envvar="ENVROUTER_LAB_STATE_DIR",
    help="where the lab keeps its nodes' files and state")]

EXIT_OK = 0
EXIT_FAILED = 1  # the world failed: infrastructure, a check, a degraded state
EXIT_USAGE = 2  # bad input: the message names the object and field


def handle_errors(func: F) -> F:
    """Turn every error into one line on stderr and a meaningful exit code: never a traceback
    (ENVROUTER_DEBUG=1 shows it for an error that is a bug)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (ValidationError, ConflictError, NotFoundError) as exc:
            print(f"error: {_one_line(exc)}", file=sys.stderr)
            sys.exit(EXIT_USAGE)
        except InfraError as exc:
            print(f"failed: {_one_line(exc)}", file=sys.stderr)
            sys.exit(EXIT_FAILED)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        except Exception as exc:  # noqa: BLE001 - the outermost edge: one line, an exit code
            line, code = describe_unexpected(exc)
            print(line, file=sys.stderr)
            if os.environ.get("ENVROUTER_DEBUG"):
                raise
            sys.exit(code)

    return wrapper  # type: ignore[return-value]


class CommandGroup(typer.Typer):
    """A command group (a Typer app) whose every command reports its errors the one way: each
    command it registers is wrapped in `handle_errors`."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        register = super().command(*args, **kwargs)

        def decorator(func: F) -> F:
            return register(handle_errors(func))

        return decorator


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def describe_unexpected(exc: Exception) -> tuple[str, int]:
    """The line and exit code for an error that is not one of the project's own: the database
    (connection, missing tables), a migration, a file; anything else is a bug."""
    module = type(exc).__module__
    if module.startswith("sqlalchemy"):
        orig = getattr(exc, "orig", None)
        reason = _first_line(orig if orig is not None else exc)
        hint = ""
        if "no such table" in reason or "does not exist" in reason:
            hint = "; run: envrouter db upgrade"
        return f"failed: database: {reason}{hint}", EXIT_FAILED
    if module.startswith("alembic"):
        return f"error: database migration: {_first_line(exc)}", EXIT_USAGE
    if isinstance(exc, OSError):
        return f"failed: {_first_line(exc)}", EXIT_FAILED
    return (
        f"error: unexpected {type(exc).__name__}: {_first_line(exc)} "
        "(a bug: ENVROUTER_DEBUG=1 shows the traceback)",
        EXIT_FAILED,
    )


def open_database(url: str | None):  # noqa: ANN201
    """The database of a command that uses an existing schema (every command but `db` and
    `serve`): never creates one, and says what to run when the schema is missing or old."""
    from envrouter.db import migrate
    from envrouter.db.engine import Database

    return Database(migrate.require_head(url))


def confirm(question: str, *, yes: bool) -> None:
    """Go on with --yes, or when the operator says so at a terminal; without a terminal
    (scripts, CI) refuse instead of waiting for an answer that never comes."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise ValidationError("confirmation", "--yes", "stdin is not a terminal: pass --yes")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        print("nothing changed", file=sys.stderr)
        sys.exit(EXIT_FAILED)


def require_root(what: str) -> None:
    import os

    if os.geteuid() != 0:
        print(f"error: {what} needs root (it changes network namespaces)", file=sys.stderr)
        sys.exit(EXIT_USAGE)
