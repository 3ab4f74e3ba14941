"""The project's two kinds of error.

`ValidationError` is bad input: it always names the object and the field. `InfraError` is the
world failing under us (a missing bridge, a daemon that does not start, netlink refusing).
Exit codes are chosen only at the outermost entry point (the CLI, the API, the OCF agents).
"""

from __future__ import annotations


class EnvrouterError(Exception):
    """Base of every error the project raises on purpose."""


class FieldError(EnvrouterError):
    """An error about one field of one object: `obj` (e.g. "network 'public'"), `field` the
    attribute at fault (e.g. "cidr"), `reason` a sentence an operator can act on."""

    def __init__(self, obj: str, field: str, reason: str) -> None:
        self.obj = obj
        self.field = field
        self.reason = reason
        super().__init__(f"{obj}: {field}: {reason}")

    def as_dict(self) -> dict[str, str]:
        return {"object": self.obj, "field": self.field, "reason": self.reason}


class ValidationError(FieldError):
    """Bad input (the API's 422)."""


class NotFoundError(EnvrouterError):
    """A named object does not exist."""

    def __init__(self, kind: str, key: object) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} not found")


class ConflictError(FieldError):
    """The request is well formed but clashes with the current state (an address held twice,
    a name taken, a range exhausted; the API's 409)."""


class InfraError(EnvrouterError):
    """Something below us failed: the kernel, a daemon, a file, the cluster."""
