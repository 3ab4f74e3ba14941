"""What every command group shares: error reporting and exit codes (chosen only here)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from envrouter.errors import ConflictError, InfraError, NotFoundError, ValidationError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_FAILED = 1  # the world failed: infrastructure, a check, a degraded state
EXIT_USAGE = 2  # bad input: the message names the object and field


def handle_errors(func: F) -> F:
    """Turn the project's errors into one line on stderr and a meaningful exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (ValidationError, ConflictError, NotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(EXIT_USAGE)
        except InfraError as exc:
            print(f"failed: {exc}", file=sys.stderr)
            sys.exit(EXIT_FAILED)

    return wrapper  # type: ignore[return-value]


def require_root(what: str) -> None:
    import os

    if os.geteuid() != 0:
        print(f"error: {what} needs root (it changes network namespaces)", file=sys.stderr)
        sys.exit(EXIT_USAGE)
